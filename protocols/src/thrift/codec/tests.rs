//! Byte-level tests of the codecs: round trips in both protocols, known encodings, every
//! truncation point, hostile length claims, sequence-id rewriting.

use super::*;
use crate::thrift::error::ThriftError;

const PROTOS: [Protocol; 2] = [Protocol::Binary, Protocol::Compact];
const TRANSPORTS: [Transport; 2] = [Transport::Framed, Transport::Buffered];

/// A call whose args struct holds one field of every type, nested containers and a struct.
fn sample_call(proto: Protocol, transport: Transport, seqid: i32) -> Vec<u8> {
    let mut out = Vec::new();
    encode_call::<ThriftError>(
        proto,
        transport,
        "Svc:doIt",
        seqid,
        false,
        &Limits::default(),
        &mut out,
        |w| {
            let s = w.struct_begin();
            w.field_begin(TType::Bool, 1);
            w.bool(true);
            w.field_begin(TType::Bool, 2);
            w.bool(false);
            w.field_begin(TType::Byte, 3);
            w.byte(-7);
            w.field_begin(TType::I16, 20);
            w.i16(-300);
            w.field_begin(TType::I32, 4);
            w.i32(i32::MIN);
            w.field_begin(TType::I64, -1);
            w.i64(i64::MAX);
            w.field_begin(TType::Double, 5);
            w.double(-1.5e300);
            w.field_begin(TType::String, 6);
            w.binary(b"h\xc3\xa9llo")?;
            w.field_begin(TType::List, 7);
            w.list_begin(TType::Bool, 3)?;
            w.bool(true);
            w.bool(false);
            w.bool(true);
            w.field_begin(TType::Map, 8);
            w.map_begin(TType::I32, TType::Struct, 1)?;
            w.i32(42);
            let inner = w.struct_begin();
            w.field_begin(TType::String, 1);
            w.binary(b"x")?;
            w.struct_end(inner);
            w.field_begin(TType::Map, 9);
            w.map_begin(TType::String, TType::I32, 0)?;
            w.struct_end(s);
            Ok(())
        },
    )
    .unwrap();
    out
}

fn check_sample(proto: Protocol, body: &[u8], from: usize) {
    let mut r = Reader::new(proto, body, Limits::default());
    r.set_position(from);
    let s = r.read_struct_begin().unwrap();
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::Bool, 1)));
    assert!(r.read_bool().unwrap());
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::Bool, 2)));
    assert!(!r.read_bool().unwrap());
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::Byte, 3)));
    assert_eq!(r.read_byte().unwrap(), -7);
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::I16, 20)));
    assert_eq!(r.read_i16().unwrap(), -300);
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::I32, 4)));
    assert_eq!(r.read_i32().unwrap(), i32::MIN);
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::I64, -1)));
    assert_eq!(r.read_i64().unwrap(), i64::MAX);
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::Double, 5)));
    assert_eq!(r.read_double().unwrap(), -1.5e300);
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::String, 6)));
    assert_eq!(r.read_binary().unwrap(), b"h\xc3\xa9llo");
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::List, 7)));
    assert_eq!(r.read_list_begin().unwrap(), (TType::Bool, 3));
    assert_eq!(
        [
            r.read_bool().unwrap(),
            r.read_bool().unwrap(),
            r.read_bool().unwrap()
        ],
        [true, false, true]
    );
    r.read_container_end();
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::Map, 8)));
    assert_eq!(r.read_map_begin().unwrap(), (TType::I32, TType::Struct, 1));
    assert_eq!(r.read_i32().unwrap(), 42);
    let inner = r.read_struct_begin().unwrap();
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::String, 1)));
    assert_eq!(r.read_binary().unwrap(), b"x");
    assert_eq!(r.read_field_begin().unwrap(), None);
    r.read_struct_end(inner);
    r.read_container_end();
    assert_eq!(r.read_field_begin().unwrap(), Some((TType::Map, 9)));
    assert_eq!(r.read_map_begin().unwrap().2, 0);
    r.read_container_end();
    assert_eq!(r.read_field_begin().unwrap(), None);
    r.read_struct_end(s);
    assert_eq!(r.position(), body.len());
}

#[test]
fn every_type_round_trips_in_both_protocols_and_transports() {
    for proto in PROTOS {
        for transport in TRANSPORTS {
            let msg = sample_call(proto, transport, 77);
            let h = read_message_header(proto, transport, &msg, &Limits::default()).unwrap();
            assert_eq!(&msg[h.name.clone()], b"Svc:doIt");
            assert_eq!((h.mtype, h.seqid), (MessageType::Call, 77));
            check_sample(proto, &msg, h.body);
            assert_eq!(
                message_end(proto, transport, &msg, &Limits::default()).unwrap(),
                Some(msg.len())
            );
        }
    }
}

#[test]
fn known_header_bytes() {
    let mut out = Vec::new();
    Writer::new(Protocol::Binary, &mut out).message_begin("ab", MessageType::Call, 5);
    assert_eq!(
        out,
        [0x80, 0x01, 0x00, 0x01, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 5]
    );
    out.clear();
    Writer::new(Protocol::Compact, &mut out).message_begin("ab", MessageType::Oneway, 300);
    assert_eq!(out, [0x82, 0x81, 0xac, 0x02, 2, b'a', b'b']);
}

#[test]
fn old_unversioned_binary_header_is_read() {
    let msg = [0, 0, 0, 1, b'f', 2, 0, 0, 0, 9, 0];
    let h = read_message_header(
        Protocol::Binary,
        Transport::Buffered,
        &msg,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(
        (h.name, h.mtype, h.seqid, h.body),
        (4..5, MessageType::Reply, 9, 10)
    );
    assert_eq!(
        message_end(
            Protocol::Binary,
            Transport::Buffered,
            &msg,
            &Limits::default()
        )
        .unwrap(),
        Some(11)
    );
}

#[test]
fn every_truncation_needs_more_and_never_panics() {
    for proto in PROTOS {
        for transport in TRANSPORTS {
            let mut msg = sample_call(proto, transport, 1);
            let len = msg.len();
            // A second message right behind must not be counted in.
            msg.extend_from_slice(&sample_call(proto, transport, 2));
            for cut in 0..len {
                let scan = scan_message(proto, transport, &msg[..cut], &Limits::default()).unwrap();
                match scan {
                    Scan::NeedMore { at_least } => {
                        assert!(at_least > cut && at_least <= len, "{cut}: {at_least}")
                    }
                    Scan::Complete(n) => panic!("complete at {n} with {cut} of {len} bytes"),
                }
            }
            assert_eq!(
                message_end(proto, transport, &msg, &Limits::default()).unwrap(),
                Some(len)
            );
        }
    }
}

#[test]
fn huge_frame_claim_is_rejected_from_the_prefix() {
    let msg = [0x7f, 0xff, 0xff, 0xff, 0x80];
    let err = message_end(
        Protocol::Binary,
        Transport::Framed,
        &msg,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ThriftError::FrameTooLarge {
            claimed: 0x7fff_ffff,
            max: 16 << 20
        }
    );
    let neg = [0xff, 0xff, 0xff, 0xfe];
    assert_eq!(
        message_end(
            Protocol::Binary,
            Transport::Framed,
            &neg,
            &Limits::default()
        )
        .unwrap_err(),
        ThriftError::NegativeSize(-2)
    );
}

fn call_with_raw_field(proto: Protocol, field: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Writer::new(proto, &mut out).message_begin("m", MessageType::Call, 1);
    out.extend_from_slice(field);
    out
}

#[test]
fn huge_string_claims_cost_nothing() {
    // Binary: field 1 string claiming 2 GiB - 1, with 3 bytes present.
    let msg = call_with_raw_field(
        Protocol::Binary,
        &[11, 0, 1, 0x7f, 0xff, 0xff, 0xff, b'a', b'b', b'c'],
    );
    let err = message_end(
        Protocol::Binary,
        Transport::Buffered,
        &msg,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ThriftError::StringTooLong {
                claimed: 0x7fff_ffff,
                ..
            }
        ),
        "{err:?}"
    );
    // Even with no string limit, the message limit stops it before any wait.
    let lax = Limits {
        max_string: usize::MAX,
        ..Limits::default()
    };
    let err = message_end(Protocol::Binary, Transport::Buffered, &msg, &lax).unwrap_err();
    assert!(matches!(err, ThriftError::FrameTooLarge { .. }), "{err:?}");
    // Compact: varint 0xffffffff as a length is negative.
    let msg = call_with_raw_field(Protocol::Compact, &[0x18, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let err = message_end(
        Protocol::Compact,
        Transport::Buffered,
        &msg,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ThriftError::NegativeSize(-1));
}

#[test]
fn negative_and_huge_container_claims_are_rejected() {
    let msg = call_with_raw_field(Protocol::Binary, &[15, 0, 1, 8, 0xff, 0xff, 0xff, 0xff]);
    let err = message_end(
        Protocol::Binary,
        Transport::Buffered,
        &msg,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err, ThriftError::NegativeSize(-1));
    let msg = call_with_raw_field(Protocol::Binary, &[13, 0, 1, 8, 8, 0x10, 0, 0, 0]);
    let err = message_end(
        Protocol::Binary,
        Transport::Buffered,
        &msg,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ThriftError::ContainerTooLarge {
                claimed: 0x1000_0000,
                ..
            }
        ),
        "{err:?}"
    );
    let small = Limits {
        max_container: 3,
        ..Limits::default()
    };
    let msg = call_with_raw_field(Protocol::Compact, &[0x19, 0x45]);
    let err = message_end(Protocol::Compact, Transport::Buffered, &msg, &small).unwrap_err();
    assert_eq!(err, ThriftError::ContainerTooLarge { claimed: 4, max: 3 });
}

#[test]
fn nesting_beyond_the_depth_limit_is_rejected() {
    for proto in PROTOS {
        for depth in [64usize, 65] {
            // Args struct (depth 1) holding lists of lists: depth - 1 lists.
            let mut out = Vec::new();
            encode_call::<ThriftError>(
                proto,
                Transport::Buffered,
                "m",
                1,
                false,
                &Limits::default(),
                &mut out,
                |w| {
                    let s = w.struct_begin();
                    w.field_begin(TType::List, 1);
                    for _ in 0..depth - 2 {
                        w.list_begin(TType::List, 1)?;
                    }
                    w.list_begin(TType::I32, 0)?;
                    w.struct_end(s);
                    Ok(())
                },
            )
            .unwrap();
            let res = message_end(proto, Transport::Buffered, &out, &Limits::default());
            if depth == 64 {
                assert_eq!(res.unwrap(), Some(out.len()));
            } else {
                assert_eq!(res.unwrap_err(), ThriftError::DepthExceeded { max: 64 });
            }
        }
    }
}

#[test]
fn unframed_message_larger_than_the_limit_is_rejected() {
    let limits = Limits {
        max_frame: 64,
        ..Limits::default()
    };
    // A list of 1000 bytes claimed: 1000 > 64 bytes of message.
    let msg = call_with_raw_field(Protocol::Binary, &[15, 0, 1, 3, 0, 0, 3, 0xe8, 1, 2]);
    let err = message_end(Protocol::Binary, Transport::Buffered, &msg, &limits).unwrap_err();
    assert!(matches!(err, ThriftError::FrameTooLarge { .. }), "{err:?}");
}

#[test]
fn bad_headers_are_errors() {
    let l = Limits::default();
    assert_eq!(
        read_message_header(Protocol::Binary, Transport::Buffered, &[0x80, 2, 0, 1], &l),
        Err(ThriftError::BadVersion)
    );
    assert_eq!(
        read_message_header(Protocol::Compact, Transport::Buffered, &[0x81, 0x21], &l),
        Err(ThriftError::BadVersion)
    );
    assert_eq!(
        read_message_header(Protocol::Compact, Transport::Buffered, &[0x82, 0xa1], &l),
        Err(ThriftError::BadMessageType(5))
    );
    let varint = [0x82, 0x21, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(
        read_message_header(Protocol::Compact, Transport::Buffered, &varint, &l),
        Err(ThriftError::VarintTooLong)
    );
}

#[test]
fn seqid_rewrite_in_place_and_by_copy() {
    let l = Limits::default();
    for transport in TRANSPORTS {
        let mut msg = sample_call(Protocol::Binary, transport, 7);
        assert_eq!(
            rewrite_seqid(Protocol::Binary, transport, &mut msg, -123_456, &l).unwrap(),
            7
        );
        assert_eq!(
            read_message_header(Protocol::Binary, transport, &msg, &l)
                .unwrap()
                .seqid,
            -123_456
        );

        let mut msg = sample_call(Protocol::Compact, transport, 7);
        assert_eq!(
            rewrite_seqid(Protocol::Compact, transport, &mut msg, 100, &l).unwrap(),
            7
        );
        let err = rewrite_seqid(Protocol::Compact, transport, &mut msg, 1000, &l).unwrap_err();
        assert_eq!(err, ThriftError::SeqidWidthChanged { old: 1, new: 2 });
        assert_eq!(
            read_message_header(Protocol::Compact, transport, &msg, &l)
                .unwrap()
                .seqid,
            100
        );

        let mut copy = vec![0xaa];
        assert_eq!(
            rewrite_seqid_into(Protocol::Compact, transport, &msg, -1, &l, &mut copy).unwrap(),
            100
        );
        let copy = &copy[1..];
        assert_eq!(copy.len(), msg.len() + 4);
        let h = read_message_header(Protocol::Compact, transport, copy, &l).unwrap();
        assert_eq!(h.seqid, -1);
        check_sample(Protocol::Compact, copy, h.body);
        assert_eq!(
            message_end(Protocol::Compact, transport, copy, &l).unwrap(),
            Some(copy.len())
        );
    }
}

#[test]
fn open_containers_patch_their_headers() {
    for proto in PROTOS {
        for n in [0usize, 1, 14, 15, 16, 200, 20_000] {
            let mut out = vec![0xee];
            let mut w = Writer::new(proto, &mut out);
            let list = w.list_begin_open(TType::I32);
            for i in 0..n {
                w.i32(i as i32);
            }
            w.list_end_open(list, n).unwrap();
            let map = w.map_begin_open(TType::String, TType::Bool);
            for _ in 0..n {
                w.binary(b"k").unwrap();
                w.bool(true);
            }
            w.map_end_open(map, n).unwrap();
            let at = w.binary_begin_open();
            w.raw().extend(std::iter::repeat_n(b'z', n));
            w.binary_end_open(at).unwrap();
            out.push(0xef);

            let mut r = Reader::new(proto, &out, Limits::default());
            r.set_position(1);
            let (t, len) = r.read_list_begin().unwrap();
            assert_eq!((t, len), (TType::I32, n));
            for i in 0..n {
                assert_eq!(r.read_i32().unwrap(), i as i32);
            }
            r.read_container_end();
            let (k, v, len) = r.read_map_begin().unwrap();
            assert_eq!(len, n);
            if n > 0 {
                assert_eq!((k, v), (TType::String, TType::Bool));
            }
            for _ in 0..n {
                assert_eq!(r.read_binary().unwrap(), b"k");
                assert!(r.read_bool().unwrap());
            }
            r.read_container_end();
            assert_eq!(r.read_binary().unwrap().len(), n);
            assert_eq!(&out[r.position()..], [0xef]);
        }
    }
}

#[test]
fn compact_field_ids_use_deltas_and_long_form() {
    let mut out = Vec::new();
    let mut w = Writer::new(Protocol::Compact, &mut out);
    let s = w.struct_begin();
    for id in [1i16, 16, 40, 3, -5, 300] {
        w.field_begin(TType::Byte, id);
        w.byte(1);
    }
    w.struct_end(s);
    assert_eq!(&out[..4], [0x13, 1, 0xf3, 1]);
    let mut r = Reader::new(Protocol::Compact, &out, Limits::default());
    let s = r.read_struct_begin().unwrap();
    for id in [1i16, 16, 40, 3, -5, 300] {
        assert_eq!(r.read_field_begin().unwrap(), Some((TType::Byte, id)));
        r.read_byte().unwrap();
    }
    assert_eq!(r.read_field_begin().unwrap(), None);
    r.read_struct_end(s);
}

#[test]
fn strip_frame_and_oneway_type() {
    let mut out = Vec::new();
    encode_call::<ThriftError>(
        Protocol::Binary,
        Transport::Framed,
        "f",
        3,
        true,
        &Limits::default(),
        &mut out,
        |w| {
            let s = w.struct_begin();
            w.struct_end(s);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(&out[..4], (out.len() as i32 - 4).to_be_bytes());
    let body = strip_frame(Transport::Framed, &out).unwrap();
    let h = read_message_header(
        Protocol::Binary,
        Transport::Buffered,
        body,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(h.mtype, MessageType::Oneway);
}

#[test]
fn message_over_the_limit_is_not_written() {
    let limits = Limits {
        max_frame: 10,
        ..Limits::default()
    };
    let mut out = vec![1, 2];
    let err = encode_call::<ThriftError>(
        Protocol::Binary,
        Transport::Framed,
        "long_name",
        1,
        false,
        &limits,
        &mut out,
        |w| {
            let s = w.struct_begin();
            w.struct_end(s);
            Ok(())
        },
    )
    .unwrap_err();
    assert!(matches!(err, ThriftError::FrameTooLarge { .. }));
    assert_eq!(out, [1, 2]);
}

#[test]
fn limits_validate_and_seqid_widths() {
    assert_eq!(Limits::default().validate(), Ok(()));
    assert!(Limits {
        max_depth: 1,
        ..Limits::default()
    }
    .validate()
    .is_err());
    assert!(Limits {
        max_frame: usize::MAX,
        ..Limits::default()
    }
    .validate()
    .is_err());
    assert!(Limits {
        max_string: 0,
        ..Limits::default()
    }
    .validate()
    .is_err());
    assert_eq!(seqid_len(Protocol::Binary, -1), 4);
    for (id, len) in [
        (0, 1),
        (127, 1),
        (128, 2),
        (16_383, 2),
        (16_384, 3),
        (i32::MAX, 5),
        (-1, 5),
    ] {
        assert_eq!(seqid_len(Protocol::Compact, id), len, "{id}");
        let msg = sample_call(Protocol::Compact, Transport::Buffered, id);
        let h = read_message_header(
            Protocol::Compact,
            Transport::Buffered,
            &msg,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(h.seqid_at.len(), len);
    }
}
