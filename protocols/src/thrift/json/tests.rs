//! JSON <-> Thrift round trips for every type in both protocols, and the error cases: paths
//! of missing or bad fields, unions, exceptions, application exceptions, hostile replies.

use std::sync::Arc;

use serde_json::{json, Value as J};

use super::*;
use crate::thrift::codec::strip_frame;
use crate::thrift::idl::{Idl, IdlLimits};

pub(crate) const TEST_IDL: &str = include_str!("../testdata/gatehouse_test.thrift");

pub(super) fn idl() -> Arc<Idl> {
    Idl::build(
        &[("gatehouse_test.thrift".into(), TEST_IDL.into())],
        "gatehouse_test.thrift",
        &IdlLimits::default(),
    )
    .unwrap()
}

pub(super) const PROTOS: [Protocol; 2] = [Protocol::Binary, Protocol::Compact];

pub(super) fn method<'a>(idl: &'a Idl, name: &str) -> &'a Method {
    idl.service("Test").unwrap().method(name).unwrap()
}

pub(super) fn to_args(
    idl: &Idl,
    m: &str,
    body: J,
    extra: &[(&str, &str)],
    policy: &MappingPolicy,
    proto: Protocol,
) -> Result<Vec<u8>, MappingError> {
    let mut out = Vec::new();
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    encode_json_call(
        idl,
        method(idl, m),
        m,
        9,
        &body,
        extra,
        policy,
        proto,
        Transport::Buffered,
        &mut out,
    )?;
    Ok(out)
}

pub(super) fn args_json(
    idl: &Idl,
    m: &str,
    call: &[u8],
    policy: &MappingPolicy,
    proto: Protocol,
) -> J {
    let mut out = Vec::new();
    args_to_json(idl, method(idl, m), proto, call, policy, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// JSON args -> Thrift call -> JSON args.
pub(super) fn args_round_trip(m: &str, body: J, proto: Protocol) -> J {
    let idl = idl();
    let p = MappingPolicy::default();
    let call = to_args(&idl, m, body, &[], &p, proto).unwrap();
    args_json(&idl, m, &call, &p, proto)
}

/// JSON result -> Thrift reply -> JSON, with its kind.
pub(super) fn reply_round_trip(
    m: &str,
    exception: Option<&str>,
    value: &J,
    proto: Protocol,
    policy: &MappingPolicy,
) -> (ReplyKind<'static>, J) {
    let idl: &'static Idl = Box::leak(Box::new(Arc::try_unwrap(idl()).unwrap()));
    let mut msg = Vec::new();
    let json = serde_json::to_vec(value).unwrap();
    encode_json_reply(
        idl,
        method(idl, m),
        4,
        exception,
        &json,
        policy,
        proto,
        Transport::Framed,
        &mut msg,
    )
    .unwrap();
    let mut out = Vec::new();
    let kind = reply_to_json(
        idl,
        method(idl, m),
        proto,
        strip_frame(Transport::Framed, &msg).unwrap(),
        policy,
        &mut out,
    )
    .unwrap();
    (kind, serde_json::from_slice(&out).unwrap())
}

pub(super) fn everything() -> J {
    json!({
        "b": true, "y": -128, "s16": 32767, "s32": -2147483648, "s64": "9223372036854775807",
        "d": 2.5, "str": "h\u{e9}llo \"q\"\n", "bin": "AAEC/f7/", "color": "GREEN",
        "nested": [[1, 2], [], [3]], "tags": ["a", "b"],
        "by_int": {"1": "one", "-2": "minus two"},
        "by_point": [[{"x": 1, "y": 2}, "p12"]],
        "by_name": {"k": {"s": "v", "nums": [7]}},
        "choice": {"point": {"x": 0, "y": -1}},
        "by_color": {"RED": true, "BLUE": false},
        "by_long": {"9007199254740993": 0.5},
        "flags": [true, false, true, true, false, false, true, true, false, true, false, true, true, true, false, true],
        "by_bool": {"true": "AQ==", "false": ""},
        "child": {"child": {"s32": 1}}
    })
}

#[test]
fn every_type_round_trips_both_ways_in_both_protocols() {
    for proto in PROTOS {
        let back = args_round_trip("echo", json!({"a": everything()}), proto);
        assert_eq!(back, json!({"a": everything()}), "{proto:?}");
        let (kind, out) = reply_round_trip(
            "echo",
            None,
            &everything(),
            proto,
            &MappingPolicy::default(),
        );
        assert_eq!(kind, ReplyKind::Success);
        assert_eq!(out, everything(), "{proto:?}");
    }
}

#[test]
fn i64_above_2_pow_53_keeps_precision() {
    for proto in PROTOS {
        for input in [
            json!(9007199254740993u64),
            json!("9007199254740993"),
            json!(-9007199254740993i64),
        ] {
            let expect = input
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| input.to_string());
            let back = args_round_trip("find", json!({"id": input}), proto);
            assert_eq!(back, json!({"id": expect}));
            let (_, out) =
                reply_round_trip("count", None, &input, proto, &MappingPolicy::default());
            let expect = input
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| input.to_string());
            assert_eq!(out, J::String(expect));
        }
        let numbers = MappingPolicy {
            i64_as_string: false,
            ..MappingPolicy::default()
        };
        let (_, out) = reply_round_trip("count", None, &json!("9007199254740993"), proto, &numbers);
        assert_eq!(out.to_string(), "9007199254740993");
    }
}

#[test]
fn enums_take_names_or_numbers_and_give_names() {
    for proto in PROTOS {
        let back = args_round_trip(
            "echo",
            json!({"a": {"color": 10, "by_color": {"2": true}}}),
            proto,
        );
        assert_eq!(
            back,
            json!({"a": {"color": "BLUE", "by_color": {"GREEN": true}}})
        );
        let idl = idl();
        let p = MappingPolicy::default();
        let e = to_args(&idl, "echo", json!({"a": {"color": 3}}), &[], &p, proto).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("a.color", "3 is not a value of enum gatehouse_test.Color")
        );
        let e = to_args(
            &idl,
            "echo",
            json!({"a": {"color": "PINK"}}),
            &[],
            &p,
            proto,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "`PINK` is not a value of enum gatehouse_test.Color"
        );
    }
}

#[test]
fn binary_accepts_url_safe_and_unpadded_base64() {
    let back = args_round_trip("echo", json!({"a": {"bin": "-_8"}}), Protocol::Compact);
    assert_eq!(back, json!({"a": {"bin": "+/8="}}));
    let e = to_args(
        &idl(),
        "echo",
        json!({"a": {"bin": "%%"}}),
        &[],
        &MappingPolicy::default(),
        Protocol::Binary,
    )
    .unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("a.bin", "invalid base64 character")
    );
}

#[test]
fn doubles_carry_nan_and_infinity_as_strings() {
    for proto in PROTOS {
        let back = args_round_trip(
            "echo",
            json!({"a": {"d": "NaN", "by_long": {"1": "-Infinity", "2": 1e300}}}),
            proto,
        );
        assert_eq!(
            back,
            json!({"a": {"d": "NaN", "by_long": {"1": "-Infinity", "2": 1e300}}})
        );
    }
}

#[test]
fn unions_take_exactly_one_field() {
    let idl = idl();
    let p = MappingPolicy::default();
    for bad in [json!({}), json!({"num": 1, "text": "x"})] {
        let e = to_args(&idl, "pick", json!({"c": bad}), &[], &p, Protocol::Binary).unwrap_err();
        assert_eq!(e.path, "c");
        assert!(
            e.message.starts_with("a union takes exactly one field"),
            "{e}"
        );
    }
    // A null member does not count.
    let back = args_round_trip(
        "pick",
        json!({"c": {"num": null, "text": "x"}}),
        Protocol::Compact,
    );
    assert_eq!(back, json!({"c": {"text": "x"}}));
}

#[test]
fn missing_required_fields_are_named_by_path() {
    let idl = idl();
    let p = MappingPolicy::default();
    let cases = [
        (json!({"p": {"x": 1, "y": 2}, "c": "RED"}), "dx"),
        (json!({"p": {"x": 1}, "dx": 1, "c": "RED"}), "p.y"),
        (json!({"p": null, "dx": 1, "c": "RED"}), "p"),
    ];
    for (body, path) in cases {
        let e = to_args(&idl, "move", body, &[], &p, Protocol::Binary).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            (path, "required field is missing")
        );
    }
    let body = json!({"a": {"by_point": [[{"x": 1, "y": 1}, "a"], [{"x": 1}, "b"]]}});
    let e = to_args(&idl, "echo", body, &[], &p, Protocol::Compact).unwrap_err();
    assert_eq!(e.path, "a.by_point[1][0].y");
    let body = json!({"a": {"by_name": {"k1": {}, "k2": {"nums": [1, "x"]}}}});
    let e = to_args(&idl, "echo", body, &[], &p, Protocol::Compact).unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        (
            "a.by_name[\"k2\"].nums[1]",
            "expected an integer, found \"x\""
        )
    );
    // Optional argument `dy` may be absent; with the default-requiredness knob off, so may `dx`.
    let lax = MappingPolicy {
        args_required_by_default: false,
        ..MappingPolicy::default()
    };
    assert!(to_args(
        &idl,
        "move",
        json!({"p": {"x": 1, "y": 2}}),
        &[],
        &lax,
        Protocol::Binary
    )
    .is_ok());
}

#[test]
fn type_errors_and_limits_name_the_field() {
    let idl = idl();
    let p = MappingPolicy::default();
    let cases = [
        (json!({"a": {"s32": 2147483648u64}}), "a.s32", "2147483648 is out of range for i32"),
        (json!({"a": {"y": 1.5}}), "a.y", "expected byte, found a fractional number"),
        (json!({"a": {"b": 1}}), "a.b", "expected bool, found a number"),
        (json!({"a": {"str": []}}), "a.str", "expected string, found an array"),
        (json!({"a": {"tags": [null]}}), "a.tags[0]", "null is not allowed in a list or set"),
        (json!({"a": {"by_int": {"x": "s"}}}), "a.by_int", "map key \"x\": expected an integer, found \"x\""),
        (json!({"a": {"by_point": {"k": "v"}}}), "a.by_point", "a map with struct gatehouse_test.Point (object) keys is written as [[key, value], ...]"),
        (json!({"a": {"zzz": 1}}), "a", "unknown field `zzz` in gatehouse_test.All"),
    ];
    for (body, path, msg) in cases {
        let e = to_args(&idl, "echo", body, &[], &p, Protocol::Binary).unwrap_err();
        assert_eq!((e.path.as_str(), e.message.as_str()), (path, msg));
    }
    let e = to_args(
        &idl,
        "echo",
        J::String("x".into()),
        &[],
        &p,
        Protocol::Binary,
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("expected a JSON object with the arguments"),
        "{e}"
    );
    let mut out = vec![1];
    let err = encode_json_call(
        &idl,
        method(&idl, "echo"),
        "echo",
        1,
        b"{\"a\": {",
        &[],
        &p,
        Protocol::Binary,
        Transport::Framed,
        &mut out,
    );
    assert!(err.unwrap_err().message.contains("EOF"));
    assert_eq!(out, [1], "nothing left behind on error");
    let small = MappingPolicy {
        limits: codec::Limits {
            max_container: 2,
            max_string: 3,
            ..Default::default()
        },
        ..MappingPolicy::default()
    };
    let e = to_args(
        &idl,
        "echo",
        json!({"a": {"nested": [[1, 2, 3]]}}),
        &[],
        &small,
        Protocol::Binary,
    )
    .unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("a.nested[0]", "more than 2 elements")
    );
    let e = to_args(
        &idl,
        "echo",
        json!({"a": {"str": "long"}}),
        &[],
        &small,
        Protocol::Binary,
    )
    .unwrap_err();
    assert_eq!(e.message, "string of 4 bytes exceeds the limit of 3");
}

#[test]
fn unknown_fields_can_be_ignored() {
    let idl = idl();
    let p = MappingPolicy {
        unknown_fields: UnknownFields::Ignore,
        ..MappingPolicy::default()
    };
    let call = to_args(
        &idl,
        "echo",
        json!({"a": {"zzz": {"deep": [1]}, "s32": 5}, "extra": 1}),
        &[("nope", "1")],
        &p,
        Protocol::Binary,
    )
    .unwrap();
    assert_eq!(
        args_json(&idl, "echo", &call, &p, Protocol::Binary),
        json!({"a": {"s32": 5}})
    );
}

#[test]
fn nesting_is_limited_to_64() {
    let idl = idl();
    let p = MappingPolicy::default();
    // args struct (1) + `a` (2) + n children.
    let nest = |n: usize| {
        let mut v = json!({"s32": 1});
        for _ in 0..n {
            v = json!({"child": v});
        }
        json!({"a": v})
    };
    for proto in PROTOS {
        let call = to_args(&idl, "echo", nest(62), &[], &p, proto).unwrap();
        assert_eq!(args_json(&idl, "echo", &call, &p, proto), nest(62));
        let e = to_args(&idl, "echo", nest(63), &[], &p, proto).unwrap_err();
        assert_eq!(e.message, "nested deeper than 64");
        assert!(e.path.starts_with("a.child.child."));
    }
}

#[test]
fn extra_arguments_are_coerced_from_text() {
    let idl = idl();
    let p = MappingPolicy::default();
    for proto in PROTOS {
        let extra = [
            ("dx", "-5"),
            ("c", "GREEN"),
            ("dy", "7"),
            ("p", "{\"x\": 1, \"y\": 2}"),
        ];
        let call = to_args(&idl, "move", J::Null, &extra, &p, proto).unwrap();
        assert_eq!(
            args_json(&idl, "move", &call, &p, proto),
            json!({"dx": -5, "c": "GREEN", "dy": 7, "p": {"x": 1, "y": 2}})
        );
        let e = to_args(&idl, "move", json!({"dx": 1}), &[("dx", "2")], &p, proto).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            (
                "dx",
                "argument is given twice (body and request parameters)"
            )
        );
        let e = to_args(&idl, "move", J::Null, &[("dx", "abc")], &p, proto).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.message.as_str()),
            ("dx", "expected an integer, found \"abc\"")
        );
        let e = to_args(&idl, "move", J::Null, &[("zz", "1")], &p, proto).unwrap_err();
        assert_eq!(e.message, "unknown argument `zz`");
    }
}

#[test]
fn body_can_be_one_argument() {
    let idl = idl();
    let p = MappingPolicy {
        body_arg: Some("c".into()),
        ..MappingPolicy::default()
    };
    let call = to_args(
        &idl,
        "pick",
        json!({"text": "hi"}),
        &[],
        &p,
        Protocol::Compact,
    )
    .unwrap();
    assert_eq!(
        args_json(&idl, "pick", &call, &p, Protocol::Compact),
        json!({"c": {"text": "hi"}})
    );
}
