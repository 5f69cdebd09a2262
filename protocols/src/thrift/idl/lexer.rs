//! Tokens of the Thrift IDL, with line numbers so every parse error names its line.
//! Follows the Apache grammar: `//`, `#` and `/* */` comments; identifiers may contain dots
//! (`shared.Point`); string literals have no escapes; integers may be hex.

/// One token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tok<'s> {
    Ident(&'s str),
    Int(i64),
    Double(f64),
    /// A literal's text without its quotes.
    Str(&'s str),
    /// One of `{ } ( ) < > [ ] , ; : = *`.
    Punct(u8),
    Eof,
}

impl Tok<'_> {
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Double(d) => format!("number {d}"),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Punct(c) => format!("`{}`", *c as char),
            Tok::Eof => "end of file".to_string(),
        }
    }
}

pub(super) struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    line: u32,
}

impl<'s> Lexer<'s> {
    pub(super) fn new(src: &'s str) -> Self {
        Self {
            src,
            pos: 0,
            line: 1,
        }
    }

    fn bytes(&self) -> &'s [u8] {
        self.src.as_bytes()
    }

    fn peek_byte(&self, ahead: usize) -> Option<u8> {
        self.bytes().get(self.pos + ahead).copied()
    }

    fn skip_space_and_comments(&mut self) -> Result<(), (u32, String)> {
        loop {
            match (self.peek_byte(0), self.peek_byte(1)) {
                (Some(b'\n'), _) => {
                    self.line += 1;
                    self.pos += 1;
                }
                (Some(b' ' | b'\t' | b'\r'), _) => self.pos += 1,
                (Some(b'#'), _) | (Some(b'/'), Some(b'/')) => {
                    while let Some(b) = self.peek_byte(0) {
                        if b == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start_line = self.line;
                    self.pos += 2;
                    loop {
                        match (self.peek_byte(0), self.peek_byte(1)) {
                            (Some(b'*'), Some(b'/')) => {
                                self.pos += 2;
                                break;
                            }
                            (Some(b), _) => {
                                if b == b'\n' {
                                    self.line += 1;
                                }
                                self.pos += 1;
                            }
                            (None, _) => return Err((start_line, "unterminated comment".into())),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token and the line it starts on.
    pub(super) fn next_token(&mut self) -> Result<(Tok<'s>, u32), (u32, String)> {
        self.skip_space_and_comments()?;
        let line = self.line;
        let Some(c) = self.peek_byte(0) else {
            return Ok((Tok::Eof, line));
        };
        let start = self.pos;
        let tok = match c {
            b'{' | b'}' | b'(' | b')' | b'<' | b'>' | b'[' | b']' | b',' | b';' | b':' | b'='
            | b'*' => {
                self.pos += 1;
                Tok::Punct(c)
            }
            b'"' | b'\'' => {
                self.pos += 1;
                let body = self.pos;
                loop {
                    match self.peek_byte(0) {
                        Some(b) if b == c => break,
                        Some(b) => {
                            if b == b'\n' {
                                self.line += 1;
                            }
                            self.pos += 1;
                        }
                        None => return Err((line, "unterminated string literal".into())),
                    }
                }
                let text = &self.src[body..self.pos];
                self.pos += 1;
                Tok::Str(text)
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while let Some(b) = self.peek_byte(0) {
                    if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Tok::Ident(&self.src[start..self.pos])
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' => self.number(line)?,
            other => {
                let shown = self.src[start..].chars().next().unwrap_or(other as char);
                return Err((line, format!("unexpected character `{shown}`")));
            }
        };
        Ok((tok, line))
    }

    fn number(&mut self, line: u32) -> Result<Tok<'s>, (u32, String)> {
        let start = self.pos;
        if matches!(self.peek_byte(0), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits = self.pos;
        if self.peek_byte(0) == Some(b'0') && matches!(self.peek_byte(1), Some(b'x' | b'X')) {
            self.pos += 2;
            while self.peek_byte(0).is_some_and(|b| b.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let neg = self.src.as_bytes().get(start) == Some(&b'-');
            let v = i64::from_str_radix(&self.src[digits + 2..self.pos], 16).map_err(|_| {
                (
                    line,
                    format!("bad hex number `{}`", &self.src[start..self.pos]),
                )
            })?;
            return Ok(Tok::Int(if neg { -v } else { v }));
        }
        let mut float = false;
        while let Some(b) = self.peek_byte(0) {
            match b {
                b'0'..=b'9' => self.pos += 1,
                b'.' => {
                    float = true;
                    self.pos += 1;
                }
                b'e' | b'E' => {
                    float = true;
                    self.pos += 1;
                    if matches!(self.peek_byte(0), Some(b'+' | b'-')) {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
        let text = &self.src[start..self.pos];
        let bad = || (line, format!("bad number `{text}`"));
        if float {
            text.parse::<f64>().map(Tok::Double).map_err(|_| bad())
        } else {
            text.parse::<i64>().map(Tok::Int).map_err(|_| bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(src: &str) -> Vec<(Tok<'_>, u32)> {
        let mut l = Lexer::new(src);
        let mut v = Vec::new();
        loop {
            let t = l.next_token().unwrap();
            if t.0 == Tok::Eof {
                return v;
            }
            v.push(t);
        }
    }

    #[test]
    fn tokens_comments_and_lines() {
        let toks = all("# hash\n// slash\n/* block\n */ struct a.B {\n 1: i32 x = -0x1F, 2:double d=1.5e3; 'q' }");
        assert_eq!(toks[0], (Tok::Ident("struct"), 4));
        assert_eq!(toks[1], (Tok::Ident("a.B"), 4));
        assert_eq!(toks[3], (Tok::Int(1), 5));
        assert!(toks.contains(&(Tok::Int(-31), 5)));
        assert!(toks.contains(&(Tok::Double(1500.0), 5)));
        assert!(toks.contains(&(Tok::Str("q"), 5)));
    }

    #[test]
    fn errors_carry_lines() {
        let mut l = Lexer::new("\n\n\"open");
        assert_eq!(l.next_token().unwrap_err().0, 3);
        let mut l = Lexer::new("\n/* open");
        assert_eq!(l.next_token().unwrap_err().0, 2);
        let mut l = Lexer::new("\n\n\n  @");
        assert_eq!(
            l.next_token().unwrap_err(),
            (4, "unexpected character `@`".to_string())
        );
    }
}
