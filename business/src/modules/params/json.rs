//! A top-level JSON object scanner: finds each field's key and raw value in a request body
//! without building a tree or allocating.
//!
//! Body parameters only concern top-level fields, so the scanner checks the top level
//! strictly (braces, string keys, colons, commas, scalar tokens) and skips nested objects and
//! arrays by counting brackets outside strings. Malformed nesting the count cannot see (`[}`)
//! is left to the upstream's parser, which receives the same bytes; everything a field's value
//! is judged on is validated here.

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    String,
    Number,
    Bool,
    Null,
    Object,
    Array,
}

/// One top-level field: the key's raw content (between the quotes, escapes not decoded) and
/// the value's raw bytes (a string value keeps its quotes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'b> {
    pub key: &'b [u8],
    pub kind: JsonKind,
    pub value: &'b [u8],
}

/// The body is not a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotAnObject;

/// Calls `f` for every top-level field of the object in `body`, in order.
pub(crate) fn for_each_field<'b>(
    body: &'b [u8],
    mut f: impl FnMut(Field<'b>),
) -> Result<(), NotAnObject> {
    let mut p = Cursor { s: body, i: 0 };
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.eat(b'}') {
        return p.end();
    }
    loop {
        p.ws();
        let key = p.string()?;
        let key = key.get(1..key.len() - 1).ok_or(NotAnObject)?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let (kind, value) = p.value()?;
        f(Field { key, kind, value });
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.expect(b'}')?;
        return p.end();
    }
}

struct Cursor<'b> {
    s: &'b [u8],
    i: usize,
}

impl<'b> Cursor<'b> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, b: u8) -> Result<(), NotAnObject> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(NotAnObject)
        }
    }

    fn end(&mut self) -> Result<(), NotAnObject> {
        self.ws();
        if self.i == self.s.len() {
            Ok(())
        } else {
            Err(NotAnObject)
        }
    }

    /// A string token including its quotes; escapes are checked for shape only.
    fn string(&mut self) -> Result<&'b [u8], NotAnObject> {
        let start = self.i;
        self.expect(b'"')?;
        loop {
            match self.peek() {
                None => return Err(NotAnObject),
                Some(b'"') => {
                    self.i += 1;
                    return self.s.get(start..self.i).ok_or(NotAnObject);
                }
                Some(b'\\') => self.i += 2,
                Some(c) if c < 0x20 => return Err(NotAnObject),
                Some(_) => self.i += 1,
            }
        }
    }

    fn value(&mut self) -> Result<(JsonKind, &'b [u8]), NotAnObject> {
        let start = self.i;
        let kind = match self.peek().ok_or(NotAnObject)? {
            b'"' => {
                let s = self.string()?;
                return Ok((JsonKind::String, s));
            }
            b'{' | b'[' => {
                let kind = if self.peek() == Some(b'{') {
                    JsonKind::Object
                } else {
                    JsonKind::Array
                };
                self.skip_nested()?;
                kind
            }
            b't' => self.word(b"true", JsonKind::Bool)?,
            b'f' => self.word(b"false", JsonKind::Bool)?,
            b'n' => self.word(b"null", JsonKind::Null)?,
            b'-' | b'0'..=b'9' => {
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.i += 1;
                }
                let token = self.s.get(start..self.i).ok_or(NotAnObject)?;
                if !is_json_number(token) {
                    return Err(NotAnObject);
                }
                JsonKind::Number
            }
            _ => return Err(NotAnObject),
        };
        Ok((kind, self.s.get(start..self.i).ok_or(NotAnObject)?))
    }

    fn word(&mut self, w: &[u8], kind: JsonKind) -> Result<JsonKind, NotAnObject> {
        if self.s.get(self.i..self.i + w.len()) == Some(w) {
            self.i += w.len();
            Ok(kind)
        } else {
            Err(NotAnObject)
        }
    }

    fn skip_nested(&mut self) -> Result<(), NotAnObject> {
        let mut depth = 0usize;
        loop {
            match self.peek().ok_or(NotAnObject)? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
    }
}

/// The JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
pub(crate) fn is_json_number(t: &[u8]) -> bool {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match t.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == t.len()
}

/// Decodes the content of a JSON string (between the quotes) into `out`; `None` when an
/// escape is invalid or `out` is too short (the decoded text is never longer than `raw`).
pub(crate) fn unescape(raw: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut i = 0;
    let mut n = 0;
    let mut put = |bytes: &[u8], n: &mut usize| -> Option<()> {
        out.get_mut(*n..*n + bytes.len())?.copy_from_slice(bytes);
        *n += bytes.len();
        Some(())
    };
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            put(&[b], &mut n)?;
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1)?;
        i += 2;
        let simple = match e {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hi = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                let c = if (0xd800..0xdc00).contains(&hi) {
                    // A high surrogate must be followed by `\uDC00`..`\uDFFF`.
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return None;
                    }
                    let lo = hex4(raw.get(i + 2..i + 6)?)?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return None;
                    }
                    i += 6;
                    char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))?
                } else {
                    char::from_u32(hi)?
                };
                let mut tmp = [0u8; 4];
                put(c.encode_utf8(&mut tmp).as_bytes(), &mut n)?;
                continue;
            }
            _ => return None,
        };
        put(&[simple], &mut n)?;
    }
    Some(n)
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    if s.starts_with('+') {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Result<Vec<(String, JsonKind, String)>, NotAnObject> {
        let mut out = Vec::new();
        for_each_field(body.as_bytes(), |f| {
            out.push((
                String::from_utf8(f.key.to_vec()).unwrap(),
                f.kind,
                String::from_utf8(f.value.to_vec()).unwrap(),
            ))
        })?;
        Ok(out)
    }

    #[test]
    fn top_level_fields_in_order() {
        let got = fields(
            r#" { "a": 1, "b" : "x\"y", "c": {"a": [1, {"z": "}"}]}, "d": [1,2], "e": true,
                 "f": false, "g": null, "h": -1.5e3 } "#,
        )
        .unwrap();
        let kinds: Vec<_> = got.iter().map(|(k, kind, _)| (k.as_str(), *kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("a", JsonKind::Number),
                ("b", JsonKind::String),
                ("c", JsonKind::Object),
                ("d", JsonKind::Array),
                ("e", JsonKind::Bool),
                ("f", JsonKind::Bool),
                ("g", JsonKind::Null),
                ("h", JsonKind::Number),
            ]
        );
        assert_eq!(got[1].2, r#""x\"y""#);
        assert_eq!(got[2].2, r#"{"a": [1, {"z": "}"}]}"#);
        assert_eq!(fields("{}").unwrap(), vec![]);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            "",
            "[]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":1} x",
            "{a:1}",
            "{\"a\":tru}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":\"x}",
            "{\"a\":[1,2}",
            "{\"a\":\"\n\"}",
            "{\"a\":--1}",
        ] {
            assert_eq!(fields(bad), Err(NotAnObject), "{bad:?}");
        }
    }

    #[test]
    fn every_truncation_of_a_valid_body_is_refused_without_panicking() {
        let body = r#"{"id": 42, "name": "O'Brien \u00e9", "tags": ["a", {"b": "]"}], "ok": true}"#;
        assert!(fields(body).is_ok());
        for cut in 0..body.len() {
            assert!(fields(&body[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn numbers() {
        for ok in ["0", "-0", "12", "-3.25", "1e9", "1E+2", "2.5e-3"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1-2", "0x10"] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn unescaping() {
        let mut buf = [0u8; 64];
        let mut un = |s: &str| unescape(s.as_bytes(), &mut buf).map(|n| buf[..n].to_vec());
        assert_eq!(un(r#"a\"b\\c\/d\n"#).unwrap(), b"a\"b\\c/d\n");
        assert_eq!(un(r"\u00e9\u20ac").unwrap(), "é€".as_bytes());
        assert_eq!(un(r"\ud83d\ude00").unwrap(), "😀".as_bytes());
        assert_eq!(un(r"\u003cscript"), Some(b"<script".to_vec()));
        for bad in [r"\x", r"\u12", r"\ud83d", r"\ud83d\u0041", r"\u+123", "\\"] {
            assert_eq!(un(bad), None, "{bad}");
        }
        let mut tiny = [0u8; 2];
        assert_eq!(unescape(b"abc", &mut tiny), None);
    }
}
