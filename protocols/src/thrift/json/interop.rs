//! Interop with Apache Thrift's Python library, through vectors it encoded
//! (`testdata/python_vectors.json`, made by `testdata/interop.py generate`): every vector is
//! decoded to JSON and compared with the expected JSON, and that JSON is encoded again and
//! must give the same bytes. The ignored `python_vectors_emit` writes our encodings for the
//! script's `check` mode, which decodes them with the generated Python classes.

use serde_json::{json, Value as J};

use super::tests::{idl, TEST_IDL};
use super::*;
use crate::thrift::codec::{message_end, read_message_header, strip_frame, Limits};

const VECTORS: &str = include_str!("../testdata/python_vectors.json");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn setup(v: &J) -> (Protocol, Transport) {
    let proto = if v["protocol"] == "binary" {
        Protocol::Binary
    } else {
        Protocol::Compact
    };
    let transport = if v["transport"] == "framed" {
        Transport::Framed
    } else {
        Transport::Buffered
    };
    (proto, transport)
}

/// Our encoding of a vector's JSON (None for application exceptions, which we never write).
fn encode(idl: &Idl, v: &J) -> Option<Vec<u8>> {
    let (proto, transport) = setup(v);
    let method = idl.service("Test")?.method(v["method"].as_str()?)?;
    let seqid = v["seqid"].as_i64()? as i32;
    let text = v["json"].as_str()?.as_bytes();
    let policy = MappingPolicy::default();
    let mut out = Vec::new();
    match v["result"].as_str() {
        None => encode_json_call(
            idl,
            method,
            v["wire_name"].as_str()?,
            seqid,
            text,
            &[],
            &policy,
            proto,
            transport,
            &mut out,
        )
        .ok()?,
        Some(r) if r.starts_with("app:") => return None,
        Some(r) => {
            let field = if r == "success" { None } else { Some(r) };
            encode_json_reply(
                idl, method, seqid, field, text, &policy, proto, transport, &mut out,
            )
            .ok()?
        }
    }
    Some(out)
}

#[test]
fn python_vectors() {
    assert!(TEST_IDL.contains("service Test"));
    let idl = idl();
    let vectors: J = serde_json::from_str(VECTORS).unwrap();
    let vectors = vectors.as_array().unwrap();
    assert_eq!(vectors.len(), 36);
    let policy = MappingPolicy::default();
    for v in vectors {
        let label = format!("{} {} {}", v["name"], v["protocol"], v["transport"]);
        let (proto, transport) = setup(v);
        let bytes = unhex(v["hex"].as_str().unwrap());
        assert_eq!(
            message_end(proto, transport, &bytes, &Limits::default()).unwrap(),
            Some(bytes.len()),
            "{label}"
        );
        let h = read_message_header(proto, transport, &bytes, &Limits::default()).unwrap();
        assert_eq!(h.seqid, v["seqid"].as_i64().unwrap() as i32, "{label}");
        let body = strip_frame(transport, &bytes).unwrap();
        let method = idl
            .service("Test")
            .unwrap()
            .method(v["method"].as_str().unwrap())
            .unwrap();
        let mut out = Vec::new();
        match v["result"].as_str() {
            None => {
                args_to_json(&idl, method, proto, body, &policy, &mut out).unwrap();
            }
            Some(r) => {
                let kind = reply_to_json(&idl, method, proto, body, &policy, &mut out).unwrap();
                let expect_kind = match r {
                    "success" => ReplyKind::Success,
                    "nf" => ReplyKind::DeclaredException {
                        field: "nf",
                        type_name: "gatehouse_test.NotFound",
                    },
                    _ => ReplyKind::ApplicationException {
                        kind: AppExceptionKind::UnknownMethod,
                        message: "no method find".into(),
                    },
                };
                assert_eq!(kind, expect_kind, "{label}");
            }
        }
        let expected = v["json"].as_str().unwrap();
        if expected.is_empty() {
            assert!(out.is_empty(), "{label}");
        } else {
            let got: J = serde_json::from_slice(&out).unwrap();
            assert_eq!(got, serde_json::from_str::<J>(expected).unwrap(), "{label}");
            // Field order in the JSON is the IDL order, so our bytes must be Python's.
            assert_eq!(
                hex(&encode(&idl, v).unwrap()),
                v["hex"].as_str().unwrap(),
                "{label}"
            );
        }
    }
}

/// Writes our encodings to `$GATEHOUSE_THRIFT_EMIT` for `interop.py check`.
#[test]
#[ignore = "run by testdata/interop.py check"]
fn python_vectors_emit() {
    let Ok(path) = std::env::var("GATEHOUSE_THRIFT_EMIT") else {
        return;
    };
    let idl = idl();
    let vectors: J = serde_json::from_str(VECTORS).unwrap();
    let emitted: Vec<J> = vectors
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| {
            let bytes = encode(&idl, v)?;
            Some(json!({"name": v["name"], "protocol": v["protocol"], "transport": v["transport"], "hex": hex(&bytes)}))
        })
        .collect();
    std::fs::write(path, serde_json::to_vec(&emitted).unwrap()).unwrap();
}
