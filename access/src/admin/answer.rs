//! What an admin handler returns, and how it goes on the wire: a status, a JSON body (or
//! none), and the few header fields the admin API uses.
//!
//! Error bodies have one shape everywhere (CONTRACT.md): `{"error": {"code", "message",
//! "field"}}`, where `field` names the offending field for a 400 and is `""` otherwise.

use serde_json::{json, Value};
use std::io::{self, Write};

/// One answer of the admin API.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// JSON text; empty for 204.
    pub body: Vec<u8>,
    /// `Allow` of a 405.
    pub allow: Option<String>,
    /// `X-Gatehouse-Version`: the config version a change produced (or the current one).
    pub version: Option<u64>,
    /// Close the connection after this answer.
    pub close: bool,
    /// `Content-Type` of the body (JSON unless a handler says otherwise).
    pub content_type: &'static str,
}

impl Answer {
    /// `status` with `value` as the JSON body.
    pub fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            body: value.to_string().into_bytes(),
            allow: None,
            version: None,
            close: false,
            content_type: "application/json",
        }
    }

    /// A body-less answer (204).
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            body: Vec::new(),
            allow: None,
            version: None,
            close: false,
            content_type: "application/json",
        }
    }

    /// The error body of CONTRACT.md.
    pub fn error(status: u16, code: &str, message: impl Into<String>, field: &str) -> Answer {
        let message: String = message.into();
        Answer::json(
            status,
            &json!({"error": {"code": code, "message": message, "field": field}}),
        )
    }

    /// `status` with a non-JSON body.
    pub fn text(status: u16, body: Vec<u8>, content_type: &'static str) -> Answer {
        Answer {
            content_type,
            body,
            ..Answer::empty(status)
        }
    }

    pub fn with_version(mut self, v: u64) -> Answer {
        self.version = Some(v);
        self
    }

    pub fn closing(mut self) -> Answer {
        self.close = true;
        self
    }

    /// The error code of an error answer (tests and logs).
    pub fn code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v["error"]["code"].as_str().map(str::to_string)
    }

    /// Writes the answer; a HEAD answer (`head_only`) keeps the length but drops the body.
    pub fn write_to(&self, w: &mut impl Write, head_only: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(160 + self.body.len());
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nCache-Control: no-store\r\n",
            self.status,
            reason(self.status)
        );
        if self.status != 204 {
            let _ = write!(
                out,
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body.len()
            );
        }
        if let Some(a) = &self.allow {
            let _ = write!(out, "Allow: {a}\r\n");
        }
        if let Some(v) = self.version {
            let _ = write!(out, "X-Gatehouse-Version: {v}\r\n");
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        w.write_all(&out)?;
        w.flush()
    }
}

/// Reason phrases of the statuses the admin API sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_contract_shape() {
        let a = Answer::error(400, "invalid", "must not be empty", "paths");
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": "invalid", "message": "must not be empty", "field": "paths"}})
        );
        assert_eq!(a.code().as_deref(), Some("invalid"));
    }

    #[test]
    fn wire_form() {
        let mut out = Vec::new();
        let a = Answer::json(201, &json!({"a": 1}))
            .with_version(4)
            .closing();
        a.write_to(&mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 201 Created\r\n"), "{text}");
        assert!(text.contains("Content-Length: 7\r\n"), "{text}");
        assert!(text.contains("X-Gatehouse-Version: 4\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"a\":1}"), "{text}");
        let mut out = Vec::new();
        Answer::empty(204).write_to(&mut out, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Content-Length"), "{text}");
        let mut out = Vec::new();
        Answer::json(200, &json!({}))
            .write_to(&mut out, true)
            .unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("Content-Length: 2\r\n\r\n"));
    }
}
