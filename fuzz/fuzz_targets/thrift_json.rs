//! Fuzz: the JSON mapping on arbitrary replies and request bodies, with the test IDL.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use protocols::thrift::codec::Protocol;
use protocols::thrift::idl::{Idl, IdlLimits};
use protocols::thrift::json::{json_to_args, reply_to_json, MappingPolicy};

const IDL: &str = include_str!("../../protocols/src/thrift/testdata/gatehouse_test.thrift");

fn idl() -> &'static Arc<Idl> {
    static IDL_SET: OnceLock<Arc<Idl>> = OnceLock::new();
    IDL_SET.get_or_init(|| {
        Idl::build(&[("t.thrift".to_string(), IDL.to_string())], "t.thrift", &IdlLimits::default())
            .expect("test IDL builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let idl = idl();
    let policy = MappingPolicy::default();
    let service = idl.service("Test").expect("service Test");
    let mut out = Vec::new();
    for method in service.methods() {
        for proto in [Protocol::Binary, Protocol::Compact] {
            out.clear();
            if reply_to_json(idl, method, proto, data, &policy, &mut out).is_err() {
                assert!(out.is_empty());
            }
            out.clear();
            if json_to_args(idl, method, data, &[], &policy, proto, &mut out).is_err() {
                assert!(out.is_empty());
            }
        }
    }
});
