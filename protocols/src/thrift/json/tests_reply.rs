//! Reply-side tests: declared exceptions, oneway calls, TApplicationException, missing
//! results, truncated and hostile replies.

use serde_json::{json, Value as J};

use super::tests::{everything, idl, method, reply_round_trip, to_args, PROTOS};
use super::*;
use crate::thrift::codec::{read_message_header, Writer};

#[test]
fn declared_exceptions_are_distinguishable() {
    for proto in PROTOS {
        let (kind, out) = reply_round_trip(
            "find",
            Some("denied"),
            &json!({"why": "no"}),
            proto,
            &MappingPolicy::default(),
        );
        assert_eq!(
            kind,
            ReplyKind::DeclaredException {
                field: "denied",
                type_name: "gatehouse_test.Denied"
            }
        );
        assert_eq!(out, json!({"why": "no"}));
        let (kind, out) = reply_round_trip(
            "find",
            Some("nf"),
            &json!({"what": "user", "id": 5}),
            proto,
            &MappingPolicy::default(),
        );
        assert_eq!(
            kind,
            ReplyKind::DeclaredException {
                field: "nf",
                type_name: "gatehouse_test.NotFound"
            }
        );
        assert_eq!(out, json!({"what": "user", "id": "5"}));
        let (kind, out) = reply_round_trip(
            "find",
            None,
            &json!("found"),
            proto,
            &MappingPolicy::default(),
        );
        assert_eq!((kind, out), (ReplyKind::Success, json!("found")));
        let (kind, out) =
            reply_round_trip("ping", None, &J::Null, proto, &MappingPolicy::default());
        assert_eq!((kind, out), (ReplyKind::Success, J::Null));
    }
}

#[test]
fn oneway_calls_use_the_oneway_message_type() {
    let idl = idl();
    let call = to_args(
        &idl,
        "fire",
        json!({"msg": "boom"}),
        &[],
        &MappingPolicy::default(),
        Protocol::Binary,
    )
    .unwrap();
    let h = read_message_header(
        Protocol::Binary,
        Transport::Buffered,
        &call,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(h.mtype, MessageType::Oneway);
}

fn app_exception(proto: Protocol, name: &str, kind: i32, message: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    let mut w = Writer::new(proto, &mut msg);
    w.message_begin(name, MessageType::Exception, 4);
    let s = w.struct_begin();
    w.field_begin(codec::TType::String, 1);
    w.binary(message.as_bytes()).unwrap();
    w.field_begin(codec::TType::I32, 2);
    w.i32(kind);
    w.struct_end(s);
    msg
}

#[test]
fn application_exceptions_and_bad_replies() {
    let idl = idl();
    let p = MappingPolicy::default();
    for proto in PROTOS {
        let m = method(&idl, "find");
        let mut out = Vec::new();
        let kind = reply_to_json(
            &idl,
            m,
            proto,
            &app_exception(proto, "Test:find", 1, "no such method"),
            &p,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            kind,
            ReplyKind::ApplicationException {
                kind: AppExceptionKind::UnknownMethod,
                message: "no such method".into()
            }
        );
        assert!(out.is_empty());
        let err = reply_to_json(
            &idl,
            m,
            proto,
            &app_exception(proto, "other", 6, "x"),
            &p,
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err, ThriftError::Unexpected("reply names another method"));

        // A reply with an empty result struct to a non-void method.
        let mut msg = Vec::new();
        codec::encode_message::<ThriftError>(
            proto,
            Transport::Buffered,
            "find",
            MessageType::Reply,
            1,
            &Default::default(),
            &mut msg,
            |w| {
                let s = w.struct_begin();
                w.struct_end(s);
                Ok(())
            },
        )
        .unwrap();
        let kind = reply_to_json(&idl, m, proto, &msg, &p, &mut out).unwrap();
        assert!(matches!(
            kind,
            ReplyKind::ApplicationException {
                kind: AppExceptionKind::MissingResult,
                ..
            }
        ));

        // Every truncation of a real reply is an error, never a panic or partial output.
        let mut full = Vec::new();
        encode_json_reply(
            &idl,
            method(&idl, "echo"),
            1,
            None,
            &serde_json::to_vec(&everything()).unwrap(),
            &p,
            proto,
            Transport::Buffered,
            &mut full,
        )
        .unwrap();
        for cut in 0..full.len() {
            let mut out = Vec::new();
            assert!(
                reply_to_json(
                    &idl,
                    method(&idl, "echo"),
                    proto,
                    &full[..cut],
                    &p,
                    &mut out
                )
                .is_err(),
                "{cut}"
            );
            assert!(out.is_empty());
        }
    }
}

#[test]
fn hostile_replies_cost_no_allocation() {
    let idl = idl();
    let p = MappingPolicy::default();
    let m = method(&idl, "find");
    // Binary reply: result field 0 string claiming 2 GiB.
    let mut msg = Vec::new();
    Writer::new(Protocol::Binary, &mut msg).message_begin("find", MessageType::Reply, 1);
    msg.extend_from_slice(&[11, 0, 0, 0x7f, 0xff, 0xff, 0xff, b'x']);
    let mut out = Vec::new();
    let err = reply_to_json(&idl, m, Protocol::Binary, &msg, &p, &mut out).unwrap_err();
    assert!(matches!(err, ThriftError::StringTooLong { .. }), "{err:?}");
    assert_eq!(out.capacity(), 0);
    // Compact reply: negative list size in a skipped unknown field.
    let mut msg = Vec::new();
    Writer::new(Protocol::Compact, &mut msg).message_begin("find", MessageType::Reply, 1);
    msg.extend_from_slice(&[0x59, 0xf9, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let err = reply_to_json(&idl, m, Protocol::Compact, &msg, &p, &mut out).unwrap_err();
    assert_eq!(err, ThriftError::NegativeSize(-1));
}

#[test]
fn json_answers_are_capped() {
    let small = MappingPolicy {
        max_json_bytes: 64,
        ..MappingPolicy::default()
    };
    for proto in PROTOS {
        let idl = idl();
        let echo = method(&idl, "echo");
        let mut reply = Vec::new();
        let big = json!({"nested": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]]});
        encode_json_reply(
            &idl,
            echo,
            1,
            None,
            &serde_json::to_vec(&big).unwrap(),
            &small,
            proto,
            Transport::Buffered,
            &mut reply,
        )
        .unwrap();
        let mut out = Vec::new();
        let err = reply_to_json(&idl, echo, proto, &reply, &small, &mut out).unwrap_err();
        assert_eq!(err, ThriftError::JsonTooLarge { max: 64 });
        assert!(out.is_empty());
        reply_to_json(
            &idl,
            echo,
            proto,
            &reply,
            &MappingPolicy::default(),
            &mut out,
        )
        .unwrap();
        assert_eq!(serde_json::from_slice::<J>(&out).unwrap(), big);
    }
}
