//! Turns parsed files into an [`Idl`]: finds included files among the uploaded ones, gives
//! every struct and enum an id, resolves type names (typedef chains included), numbers enums,
//! and flattens service inheritance. Runs once per config version, so clarity wins over speed.

use std::collections::HashMap;

use super::parser::{self, DefKind, Document, FieldAst, StructKw, TypeRef};
use super::{
    EnumDef, EnumId, Field, Idl, IdlError, IdlLimits, Method, Requiredness, Service, StructDef,
    StructId, StructKind, Ty,
};

/// Longest typedef chain or `extends` chain; longer ones are almost surely cycles.
const MAX_CHAIN: usize = 64;

#[derive(Clone, Copy)]
enum Sym {
    Typedef(usize),
    Struct(StructId),
    Enum(EnumId),
    Service(usize),
    Const,
}

struct FileCtx {
    name: String,
    /// File name without directory and `.thrift`: the prefix other files use for its names.
    stem: String,
    doc: Document,
    /// Include prefix -> file index.
    includes: HashMap<String, usize>,
    symbols: HashMap<String, Sym>,
}

fn err(file: &str, line: u32, message: impl Into<String>) -> IdlError {
    IdlError {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

fn stem(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.strip_suffix(".thrift").unwrap_or(base).to_string()
}

/// Joins `rel` to the directory of `from` and folds `.`/`..`.
fn join(from: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for p in rel.split('/') {
        match p {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Finds an included file among the uploaded ones: relative to the including file, then as
/// written, then by a base name that only one uploaded file has.
fn find_include(names: &HashMap<&str, usize>, from: &str, path: &str) -> Option<usize> {
    if let Some(&i) = names
        .get(join(from, path).as_str())
        .or_else(|| names.get(path))
    {
        return Some(i);
    }
    let base = path.rsplit('/').next().unwrap_or(path);
    let mut found = names
        .iter()
        .filter(|(n, _)| n.rsplit('/').next() == Some(base));
    match (found.next(), found.next()) {
        (Some((_, &i)), None) => Some(i),
        _ => None,
    }
}

pub(super) fn build(
    files: &[(String, String)],
    main: &str,
    limits: &IdlLimits,
) -> Result<Idl, IdlError> {
    if files.len() > limits.max_files {
        return Err(err(
            main,
            0,
            format!(
                "{} files, more than the limit of {}",
                files.len(),
                limits.max_files
            ),
        ));
    }
    let total: usize = files.iter().map(|(_, t)| t.len()).sum();
    if total > limits.max_total_bytes {
        return Err(err(
            main,
            0,
            format!(
                "{total} bytes of IDL, more than the limit of {}",
                limits.max_total_bytes
            ),
        ));
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, (name, _)) in files.iter().enumerate() {
        if names.insert(name.as_str(), i).is_some() {
            return Err(err(name, 0, "file uploaded twice"));
        }
    }
    let main_idx = *names
        .get(main)
        .ok_or_else(|| err(main, 0, "main file is not among the uploaded files"))?;

    let mut ctx: Vec<FileCtx> = Vec::with_capacity(files.len());
    let (mut includes, mut defs) = (0usize, 0usize);
    for (name, text) in files {
        let doc = parser::parse(text).map_err(|(line, m)| err(name, line, m))?;
        includes += doc.includes.len();
        defs += doc.defs.len();
        if includes > limits.max_includes {
            return Err(err(
                name,
                0,
                format!("more than {} includes in the set", limits.max_includes),
            ));
        }
        if defs > limits.max_definitions {
            return Err(err(
                name,
                0,
                format!(
                    "more than {} definitions in the set",
                    limits.max_definitions
                ),
            ));
        }
        ctx.push(FileCtx {
            name: name.clone(),
            stem: stem(name),
            doc,
            includes: HashMap::new(),
            symbols: HashMap::new(),
        });
    }

    // Includes, then symbols (ids for every struct/enum/service, enums numbered).
    let mut structs: Vec<StructDef> = Vec::new();
    let mut enums: Vec<EnumDef> = Vec::new();
    let mut service_defs: Vec<(usize, usize)> = Vec::new(); // (file, def index)
    for f in 0..ctx.len() {
        let mut incs = HashMap::new();
        for (path, line) in &ctx[f].doc.includes {
            let i = find_include(&names, &ctx[f].name, path).ok_or_else(|| {
                err(
                    &ctx[f].name,
                    *line,
                    format!("included file \"{path}\" was not uploaded"),
                )
            })?;
            incs.insert(ctx[i].stem.clone(), i);
        }
        let mut symbols = HashMap::new();
        for (d, def) in ctx[f].doc.defs.iter().enumerate() {
            let qualified = format!("{}.{}", ctx[f].stem, def.name);
            let sym = match &def.kind {
                DefKind::Typedef(_) => Sym::Typedef(d),
                DefKind::Const => Sym::Const,
                DefKind::Struct(kw, _) => {
                    let kind = match kw {
                        StructKw::Struct => StructKind::Struct,
                        StructKw::Union => StructKind::Union,
                        StructKw::Exception => StructKind::Exception,
                    };
                    structs.push(StructDef::new(qualified, kind, Vec::new()));
                    Sym::Struct(StructId(structs.len() as u32 - 1))
                }
                DefKind::Enum(values) => {
                    enums.push(EnumDef {
                        name: qualified,
                        values: number_enum(&ctx[f].name, values)?,
                    });
                    Sym::Enum(EnumId(enums.len() as u32 - 1))
                }
                DefKind::Service { .. } => {
                    service_defs.push((f, d));
                    Sym::Service(service_defs.len() - 1)
                }
            };
            if symbols.insert(def.name.clone(), sym).is_some() {
                return Err(err(
                    &ctx[f].name,
                    def.line,
                    format!("`{}` is defined twice", def.name),
                ));
            }
        }
        ctx[f].includes = incs;
        ctx[f].symbols = symbols;
    }

    let r = Resolver { ctx: &ctx };
    // Struct fields.
    for (f, file) in ctx.iter().enumerate() {
        for def in &file.doc.defs {
            if let DefKind::Struct(_, fields) = &def.kind {
                let Some(Sym::Struct(id)) = file.symbols.get(&def.name) else {
                    continue;
                };
                structs[id.0 as usize].set_fields(r.fields(f, fields)?);
            }
        }
    }

    // Services, bases first.
    let mut done: Vec<Option<HashMap<String, Method>>> = vec![None; service_defs.len()];
    let mut services = Vec::with_capacity(service_defs.len());
    for s in 0..service_defs.len() {
        r.service(s, &service_defs, &mut structs, &mut done, 0)?;
    }
    let mut plain_count: HashMap<&str, usize> = HashMap::new();
    for &(f, d) in &service_defs {
        *plain_count
            .entry(ctx[f].doc.defs[d].name.as_str())
            .or_default() += 1;
    }
    let mut service_names = HashMap::new();
    for (s, &(f, d)) in service_defs.iter().enumerate() {
        let plain = ctx[f].doc.defs[d].name.as_str();
        let qualified = format!("{}.{}", ctx[f].stem, plain);
        if f == main_idx || plain_count.get(plain) == Some(&1) {
            service_names.insert(plain.to_string(), s);
        }
        service_names.entry(qualified.clone()).or_insert(s);
        services.push(Service {
            name: qualified,
            methods: done[s].take().unwrap_or_default(),
        });
    }
    Ok(Idl {
        structs,
        enums,
        services,
        service_names,
    })
}

fn number_enum(
    file: &str,
    values: &[(String, Option<i64>, u32)],
) -> Result<Vec<(String, i32)>, IdlError> {
    let mut out: Vec<(String, i32)> = Vec::with_capacity(values.len());
    let mut next: i64 = 0;
    for (name, explicit, line) in values {
        let v = explicit.unwrap_or(next);
        let v32 = i32::try_from(v)
            .map_err(|_| err(file, *line, format!("enum value {v} out of i32 range")))?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(err(
                file,
                *line,
                format!("enum value `{name}` is defined twice"),
            ));
        }
        out.push((name.clone(), v32));
        next = v + 1;
    }
    Ok(out)
}

struct Resolver<'a> {
    ctx: &'a [FileCtx],
}

impl Resolver<'_> {
    /// A name as seen from file `f`: local, or `include.Name`.
    fn lookup(&self, f: usize, name: &str) -> Option<(usize, Sym)> {
        let file = &self.ctx[f];
        if let Some(&s) = file.symbols.get(name) {
            return Some((f, s));
        }
        let (prefix, rest) = name.split_once('.')?;
        let &inc = file.includes.get(prefix)?;
        self.ctx[inc].symbols.get(rest).map(|&s| (inc, s))
    }

    fn ty(&self, f: usize, t: &TypeRef, chain: usize) -> Result<Ty, IdlError> {
        Ok(match t {
            TypeRef::Bool => Ty::Bool,
            TypeRef::Byte => Ty::Byte,
            TypeRef::I16 => Ty::I16,
            TypeRef::I32 => Ty::I32,
            TypeRef::I64 => Ty::I64,
            TypeRef::Double => Ty::Double,
            TypeRef::String => Ty::String,
            TypeRef::Binary => Ty::Binary,
            TypeRef::List(e) => Ty::List(Box::new(self.ty(f, e, chain)?)),
            TypeRef::Set(e) => Ty::Set(Box::new(self.ty(f, e, chain)?)),
            TypeRef::Map(k, v) => Ty::Map(
                Box::new(self.ty(f, k, chain)?),
                Box::new(self.ty(f, v, chain)?),
            ),
            TypeRef::Named(name, line) => {
                let file = &self.ctx[f].name;
                match self.lookup(f, name) {
                    None => return Err(err(file, *line, format!("unknown type `{name}`"))),
                    Some((_, Sym::Struct(id))) => Ty::Struct(id),
                    Some((_, Sym::Enum(id))) => Ty::Enum(id),
                    Some((tf, Sym::Typedef(d))) => {
                        if chain >= MAX_CHAIN {
                            return Err(err(
                                file,
                                *line,
                                format!(
                                    "typedef `{name}` is cyclic or chained deeper than {MAX_CHAIN}"
                                ),
                            ));
                        }
                        let DefKind::Typedef(target) = &self.ctx[tf].doc.defs[d].kind else {
                            return Err(err(file, *line, format!("`{name}` is not a type")));
                        };
                        self.ty(tf, target, chain + 1)?
                    }
                    Some((_, Sym::Service(_) | Sym::Const)) => {
                        return Err(err(file, *line, format!("`{name}` is not a type")))
                    }
                }
            }
        })
    }

    fn fields(&self, f: usize, asts: &[FieldAst]) -> Result<Vec<Field>, IdlError> {
        let mut out: Vec<Field> = Vec::with_capacity(asts.len());
        for a in asts {
            let file = &self.ctx[f].name;
            if out.iter().any(|o| o.id == a.id) {
                return Err(err(
                    file,
                    a.line,
                    format!("field id {} is used twice", a.id),
                ));
            }
            if out.iter().any(|o| o.name == a.name) {
                return Err(err(
                    file,
                    a.line,
                    format!("field `{}` is defined twice", a.name),
                ));
            }
            out.push(Field {
                id: a.id,
                name: a.name.clone(),
                ty: self.ty(f, &a.ty, 0)?,
                req: a.req,
            });
        }
        Ok(out)
    }

    /// Resolves service `s` (its bases first) into `done[s]`.
    fn service(
        &self,
        s: usize,
        defs: &[(usize, usize)],
        structs: &mut Vec<StructDef>,
        done: &mut [Option<HashMap<String, Method>>],
        chain: usize,
    ) -> Result<(), IdlError> {
        if done[s].is_some() {
            return Ok(());
        }
        let (f, d) = defs[s];
        let file = &self.ctx[f];
        let def = &file.doc.defs[d];
        let DefKind::Service { extends, functions } = &def.kind else {
            return Ok(());
        };
        if chain >= MAX_CHAIN {
            return Err(err(
                &file.name,
                def.line,
                "`extends` is cyclic or chained too deep",
            ));
        }
        let mut methods = HashMap::new();
        if let Some((base, line)) = extends {
            let Some((_, Sym::Service(b))) = self.lookup(f, base) else {
                return Err(err(&file.name, *line, format!("unknown service `{base}`")));
            };
            self.service(b, defs, structs, done, chain + 1)?;
            if let Some(inherited) = &done[b] {
                methods = inherited.clone();
            }
        }
        let qualified = format!("{}.{}", file.stem, def.name);
        let mut own: Vec<&str> = Vec::new();
        for func in functions {
            if own.contains(&func.name.as_str()) {
                return Err(err(
                    &file.name,
                    func.line,
                    format!("method `{}` is defined twice", func.name),
                ));
            }
            own.push(&func.name);
            if func.oneway && (func.ret.is_some() || !func.throws.is_empty()) {
                return Err(err(
                    &file.name,
                    func.line,
                    format!("oneway method `{}` must be void without throws", func.name),
                ));
            }
            let args = self.fields(f, &func.args)?;
            let mut result = Vec::new();
            let returns = match &func.ret {
                Some(t) => {
                    let ty = self.ty(f, t, 0)?;
                    result.push(Field {
                        id: 0,
                        name: "success".into(),
                        ty: ty.clone(),
                        req: Requiredness::Optional,
                    });
                    Some(ty)
                }
                None => None,
            };
            for ex in self.fields(f, &func.throws)? {
                let is_exception = matches!(ex.ty, Ty::Struct(id) if structs[id.0 as usize].kind == StructKind::Exception);
                let line = func
                    .throws
                    .iter()
                    .find(|a| a.id == ex.id)
                    .map_or(func.line, |a| a.line);
                if !is_exception {
                    return Err(err(
                        &file.name,
                        line,
                        format!("`{}` in throws is not an exception", ex.name),
                    ));
                }
                if ex.id == 0 || result.iter().any(|r: &Field| r.name == ex.name) {
                    return Err(err(
                        &file.name,
                        line,
                        format!(
                            "throws field `{}` needs a non-zero id and a name other than `success`",
                            ex.name
                        ),
                    ));
                }
                result.push(Field {
                    req: Requiredness::Optional,
                    ..ex
                });
            }
            structs.push(StructDef::new(
                format!("{qualified}.{}_args", func.name),
                StructKind::Args,
                args,
            ));
            let args_id = StructId(structs.len() as u32 - 1);
            structs.push(StructDef::new(
                format!("{qualified}.{}_result", func.name),
                StructKind::Result,
                result,
            ));
            let result_id = StructId(structs.len() as u32 - 1);
            methods.insert(
                func.name.clone(),
                Method {
                    name: func.name.clone(),
                    oneway: func.oneway,
                    args: args_id,
                    result: result_id,
                    returns,
                    declared_in: qualified.clone(),
                },
            );
        }
        done[s] = Some(methods);
        Ok(())
    }
}
