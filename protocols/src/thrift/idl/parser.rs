//! Parses one .thrift file into a syntax tree that keeps line numbers; names stay unresolved
//! (that is `resolve.rs`'s job, across files). Hand-written recursive descent over the Apache
//! grammar: a parser crate would not give a line for every definition and field, which we need
//! to name the line of a resolution error ("unknown type `Foo`"). Constants, namespaces,
//! annotations and default values are parsed and dropped: the gateway does not need them.

use super::lexer::{Lexer, Tok};
use super::Requiredness;

/// Nesting bound for types (`list<list<...>>`) and constant values, so a hostile file cannot
/// overflow the stack.
const MAX_NESTING: usize = 64;

#[derive(Debug)]
pub(super) struct Document {
    /// Included paths with the line of their `include`.
    pub includes: Vec<(String, u32)>,
    pub defs: Vec<Def>,
}

#[derive(Debug)]
pub(super) struct Def {
    pub name: String,
    pub line: u32,
    pub kind: DefKind,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum StructKw {
    Struct,
    Union,
    Exception,
}

#[derive(Debug)]
pub(super) enum DefKind {
    Typedef(TypeRef),
    Enum(Vec<(String, Option<i64>, u32)>),
    Struct(StructKw, Vec<FieldAst>),
    Service {
        extends: Option<(String, u32)>,
        functions: Vec<FunctionAst>,
    },
    Const,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum TypeRef {
    Bool,
    Byte,
    I16,
    I32,
    I64,
    Double,
    String,
    Binary,
    List(Box<TypeRef>),
    Set(Box<TypeRef>),
    Map(Box<TypeRef>, Box<TypeRef>),
    Named(String, u32),
}

#[derive(Debug)]
pub(super) struct FieldAst {
    pub id: i16,
    pub name: String,
    pub ty: TypeRef,
    pub req: Requiredness,
    pub line: u32,
}

#[derive(Debug)]
pub(super) struct FunctionAst {
    pub name: String,
    pub line: u32,
    pub oneway: bool,
    /// `None` for `void`.
    pub ret: Option<TypeRef>,
    pub args: Vec<FieldAst>,
    pub throws: Vec<FieldAst>,
}

/// A parse error: line and message (the file name is added by the caller).
pub(super) type ParseError = (u32, String);

pub(super) fn parse(src: &str) -> Result<Document, ParseError> {
    let mut p = Parser {
        lex: Lexer::new(src),
        peeked: None,
    };
    p.document()
}

struct Parser<'s> {
    lex: Lexer<'s>,
    peeked: Option<(Tok<'s>, u32)>,
}

impl<'s> Parser<'s> {
    fn peek(&mut self) -> Result<(Tok<'s>, u32), ParseError> {
        if let Some(t) = self.peeked {
            return Ok(t);
        }
        let t = self.lex.next_token()?;
        self.peeked = Some(t);
        Ok(t)
    }

    fn next(&mut self) -> Result<(Tok<'s>, u32), ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    fn expect_punct(&mut self, c: u8) -> Result<u32, ParseError> {
        match self.next()? {
            (Tok::Punct(p), line) if p == c => Ok(line),
            (t, line) => Err((
                line,
                format!("expected `{}`, found {}", c as char, t.describe()),
            )),
        }
    }

    fn eat_punct(&mut self, c: u8) -> Result<bool, ParseError> {
        if self.peek()?.0 == Tok::Punct(c) {
            self.peeked = None;
            return Ok(true);
        }
        Ok(false)
    }

    fn eat_ident(&mut self, word: &str) -> Result<bool, ParseError> {
        if self.peek()?.0 == Tok::Ident(word) {
            self.peeked = None;
            return Ok(true);
        }
        Ok(false)
    }

    fn ident(&mut self, what: &str) -> Result<(&'s str, u32), ParseError> {
        match self.next()? {
            (Tok::Ident(s), line) => Ok((s, line)),
            (t, line) => Err((line, format!("expected {what}, found {}", t.describe()))),
        }
    }

    fn literal(&mut self, what: &str) -> Result<(&'s str, u32), ParseError> {
        match self.next()? {
            (Tok::Str(s), line) => Ok((s, line)),
            (t, line) => Err((line, format!("expected {what}, found {}", t.describe()))),
        }
    }

    fn list_separator(&mut self) -> Result<(), ParseError> {
        if !self.eat_punct(b',')? {
            self.eat_punct(b';')?;
        }
        Ok(())
    }

    /// `( key = "value", flag, ... )`, if present.
    fn annotations(&mut self) -> Result<(), ParseError> {
        if !self.eat_punct(b'(')? {
            return Ok(());
        }
        while !self.eat_punct(b')')? {
            self.ident("an annotation name")?;
            if self.eat_punct(b'=')? {
                self.literal("an annotation value")?;
            }
            self.list_separator()?;
        }
        Ok(())
    }

    fn document(&mut self) -> Result<Document, ParseError> {
        let mut doc = Document {
            includes: Vec::new(),
            defs: Vec::new(),
        };
        loop {
            let (tok, line) = self.next()?;
            let word = match tok {
                Tok::Eof => return Ok(doc),
                Tok::Ident(w) => w,
                other => {
                    return Err((
                        line,
                        format!("expected a definition, found {}", other.describe()),
                    ))
                }
            };
            match word {
                "include" => {
                    let (path, _) = self.literal("an include path")?;
                    doc.includes.push((path.to_string(), line));
                }
                "cpp_include" => {
                    self.literal("an include path")?;
                }
                "namespace" => {
                    if !self.eat_punct(b'*')? {
                        self.ident("a namespace scope")?;
                    }
                    self.ident("a namespace")?;
                    self.annotations()?;
                }
                "const" => {
                    self.field_type(0)?;
                    let (name, _) = self.ident("a constant name")?;
                    self.expect_punct(b'=')?;
                    self.const_value(0)?;
                    self.list_separator()?;
                    doc.defs.push(Def {
                        name: name.to_string(),
                        line,
                        kind: DefKind::Const,
                    });
                }
                "typedef" => {
                    let ty = self.field_type(0)?;
                    let (name, _) = self.ident("a typedef name")?;
                    self.annotations()?;
                    self.list_separator()?;
                    doc.defs.push(Def {
                        name: name.to_string(),
                        line,
                        kind: DefKind::Typedef(ty),
                    });
                }
                "enum" => {
                    let (name, _) = self.ident("an enum name")?;
                    let values = self.enum_body()?;
                    self.annotations()?;
                    doc.defs.push(Def {
                        name: name.to_string(),
                        line,
                        kind: DefKind::Enum(values),
                    });
                }
                "struct" | "union" | "exception" => {
                    let kw = match word {
                        "struct" => StructKw::Struct,
                        "union" => StructKw::Union,
                        _ => StructKw::Exception,
                    };
                    let (name, _) = self.ident("a type name")?;
                    self.eat_ident("xsd_all")?;
                    self.expect_punct(b'{')?;
                    let fields = self.fields(b'}')?;
                    self.annotations()?;
                    doc.defs.push(Def {
                        name: name.to_string(),
                        line,
                        kind: DefKind::Struct(kw, fields),
                    });
                }
                "service" => {
                    let (name, _) = self.ident("a service name")?;
                    let extends = if self.eat_ident("extends")? {
                        let (base, l) = self.ident("a service name")?;
                        Some((base.to_string(), l))
                    } else {
                        None
                    };
                    self.expect_punct(b'{')?;
                    let mut functions = Vec::new();
                    while !self.eat_punct(b'}')? {
                        functions.push(self.function()?);
                    }
                    self.annotations()?;
                    doc.defs.push(Def {
                        name: name.to_string(),
                        line,
                        kind: DefKind::Service { extends, functions },
                    });
                }
                "senum" => return Err((line, "`senum` is not supported".into())),
                other => return Err((line, format!("expected a definition, found `{other}`"))),
            }
        }
    }

    fn enum_body(&mut self) -> Result<Vec<(String, Option<i64>, u32)>, ParseError> {
        self.expect_punct(b'{')?;
        let mut values = Vec::new();
        while !self.eat_punct(b'}')? {
            let (name, line) = self.ident("an enum value name")?;
            let value = if self.eat_punct(b'=')? {
                match self.next()? {
                    (Tok::Int(v), _) => Some(v),
                    (t, l) => {
                        return Err((l, format!("expected an integer, found {}", t.describe())))
                    }
                }
            } else {
                None
            };
            self.annotations()?;
            self.list_separator()?;
            values.push((name.to_string(), value, line));
        }
        Ok(values)
    }

    /// Fields up to the closing `close` (`}` for structs, `)` for arguments and throws).
    fn fields(&mut self, close: u8) -> Result<Vec<FieldAst>, ParseError> {
        let mut fields = Vec::new();
        let mut auto_id: i16 = 0;
        while !self.eat_punct(close)? {
            let (first, line) = self.peek()?;
            let id = if let Tok::Int(v) = first {
                self.peeked = None;
                self.expect_punct(b':')?;
                i16::try_from(v).map_err(|_| (line, format!("field id {v} out of range")))?
            } else {
                // Apache gives fields without an id negative ids, counting down from -1.
                auto_id -= 1;
                auto_id
            };
            let req = if self.eat_ident("required")? {
                Requiredness::Required
            } else if self.eat_ident("optional")? {
                Requiredness::Optional
            } else {
                Requiredness::Default
            };
            let ty = self.field_type(0)?;
            let (name, _) = self.ident("a field name")?;
            if self.eat_punct(b'=')? {
                self.const_value(0)?;
            }
            for xsd in ["xsd_optional", "xsd_nillable"] {
                self.eat_ident(xsd)?;
            }
            self.annotations()?;
            self.list_separator()?;
            fields.push(FieldAst {
                id,
                name: name.to_string(),
                ty,
                req,
                line,
            });
        }
        Ok(fields)
    }

    fn function(&mut self) -> Result<FunctionAst, ParseError> {
        let oneway = self.eat_ident("oneway")? || self.eat_ident("async")?;
        let (tok, line) = self.peek()?;
        let ret = if tok == Tok::Ident("void") {
            self.peeked = None;
            None
        } else {
            Some(self.field_type(0)?)
        };
        let (name, _) = self.ident("a function name")?;
        self.expect_punct(b'(')?;
        let args = self.fields(b')')?;
        let throws = if self.eat_ident("throws")? {
            self.expect_punct(b'(')?;
            self.fields(b')')?
        } else {
            Vec::new()
        };
        self.annotations()?;
        self.list_separator()?;
        Ok(FunctionAst {
            name: name.to_string(),
            line,
            oneway,
            ret,
            args,
            throws,
        })
    }

    fn field_type(&mut self, depth: usize) -> Result<TypeRef, ParseError> {
        let (word, line) = self.ident("a type")?;
        if depth >= MAX_NESTING {
            return Err((line, format!("types nested deeper than {MAX_NESTING}")));
        }
        let ty = match word {
            "bool" => TypeRef::Bool,
            "byte" | "i8" => TypeRef::Byte,
            "i16" => TypeRef::I16,
            "i32" => TypeRef::I32,
            "i64" => TypeRef::I64,
            "double" => TypeRef::Double,
            "string" | "slist" => TypeRef::String,
            "binary" => TypeRef::Binary,
            "uuid" => return Err((line, "type `uuid` is not supported".into())),
            "map" => {
                self.cpp_type()?;
                self.expect_punct(b'<')?;
                let k = self.field_type(depth + 1)?;
                self.expect_punct(b',')?;
                let v = self.field_type(depth + 1)?;
                self.expect_punct(b'>')?;
                TypeRef::Map(Box::new(k), Box::new(v))
            }
            "set" => {
                self.cpp_type()?;
                self.expect_punct(b'<')?;
                let e = self.field_type(depth + 1)?;
                self.expect_punct(b'>')?;
                TypeRef::Set(Box::new(e))
            }
            "list" => {
                self.expect_punct(b'<')?;
                let e = self.field_type(depth + 1)?;
                self.expect_punct(b'>')?;
                self.cpp_type()?;
                TypeRef::List(Box::new(e))
            }
            named => TypeRef::Named(named.to_string(), line),
        };
        self.annotations()?;
        Ok(ty)
    }

    fn cpp_type(&mut self) -> Result<(), ParseError> {
        if self.eat_ident("cpp_type")? {
            self.literal("a C++ type")?;
        }
        Ok(())
    }

    fn const_value(&mut self, depth: usize) -> Result<(), ParseError> {
        let (tok, line) = self.next()?;
        if depth >= MAX_NESTING {
            return Err((line, format!("constants nested deeper than {MAX_NESTING}")));
        }
        match tok {
            Tok::Int(_) | Tok::Double(_) | Tok::Str(_) | Tok::Ident(_) => Ok(()),
            Tok::Punct(b'[') => {
                while !self.eat_punct(b']')? {
                    self.const_value(depth + 1)?;
                    self.list_separator()?;
                }
                Ok(())
            }
            Tok::Punct(b'{') => {
                while !self.eat_punct(b'}')? {
                    self.const_value(depth + 1)?;
                    self.expect_punct(b':')?;
                    self.const_value(depth + 1)?;
                    self.list_separator()?;
                }
                Ok(())
            }
            other => Err((
                line,
                format!("expected a constant value, found {}", other.describe()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_definition() {
        let src = r#"
            include "shared.thrift"
            cpp_include "<x>"
            namespace * demo.api
            namespace py demo (a = "b")
            const i32 MAX = 10;
            const map<string, list<i32>> M = {"a": [1, 2], "b": []}
            typedef map<i32, string> (x = "y") Names
            enum Color { RED, GREEN = 5 (deprecated), BLUE }
            struct Point { 1: required i32 x = 0, 2: optional double y; string label }
            union U { 1: i32 a 2: string b }
            exception Oops { 1: string why }
            service S extends shared.Base {
              oneway void ping(),
              list<Point> find(1: Point near, 2: i32 limit = 10) throws (1: Oops oops);
            } (ann = "1")
        "#;
        let doc = parse(src).unwrap();
        assert_eq!(doc.includes, vec![("shared.thrift".to_string(), 2)]);
        let names: Vec<_> = doc.defs.iter().map(|d| (d.name.as_str(), d.line)).collect();
        assert_eq!(
            names,
            [
                ("MAX", 6),
                ("M", 7),
                ("Names", 8),
                ("Color", 9),
                ("Point", 10),
                ("U", 11),
                ("Oops", 12),
                ("S", 13)
            ]
        );
        let DefKind::Struct(StructKw::Struct, fields) = &doc.defs[4].kind else {
            panic!()
        };
        assert_eq!(fields.iter().map(|f| f.id).collect::<Vec<_>>(), [1, 2, -1]);
        assert_eq!(fields[0].req, Requiredness::Required);
        assert_eq!(fields[1].req, Requiredness::Optional);
        let DefKind::Service { extends, functions } = &doc.defs[7].kind else {
            panic!()
        };
        assert_eq!(extends.as_ref().unwrap().0, "shared.Base");
        assert!(functions[0].oneway && functions[0].ret.is_none());
        assert_eq!(
            functions[1].ret,
            Some(TypeRef::List(Box::new(TypeRef::Named("Point".into(), 15))))
        );
        assert_eq!(functions[1].throws.len(), 1);
        let DefKind::Enum(values) = &doc.defs[3].kind else {
            panic!()
        };
        assert_eq!(
            values.iter().map(|v| v.1).collect::<Vec<_>>(),
            [None, Some(5), None]
        );
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            parse("struct A {\n 1: i32 x\n 2 i32 y }").unwrap_err(),
            (3, "expected `:`, found `i32`".to_string())
        );
        assert_eq!(parse("\n\nfoo").unwrap_err().0, 3);
        assert_eq!(
            parse("struct A { 1: i32 }").unwrap_err(),
            (1, "expected a field name, found `}`".to_string())
        );
        assert_eq!(
            parse("struct A { 70000: i32 x }").unwrap_err().1,
            "field id 70000 out of range"
        );
        let deep = format!("typedef {}i32{} T", "list<".repeat(70), ">".repeat(70));
        assert!(parse(&deep).unwrap_err().1.contains("nested deeper"));
        let deep = format!("const list<i32> C = {}{}", "[".repeat(70), "]".repeat(70));
        assert!(parse(&deep).unwrap_err().1.contains("nested deeper"));
    }
}
