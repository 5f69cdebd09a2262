//! SNI table and server-settings tests on certificates made at test time.

use super::*;
use rcgen::{CertifiedKey as Made, KeyPair};

fn make(names: &[&str]) -> Made {
    rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
}

fn settings() -> ServerSettings<'static> {
    static NO_CLIENT_CERTS: std::sync::OnceLock<Vec<ClientPolicy<'static>>> =
        std::sync::OnceLock::new();
    ServerSettings {
        versions: &[],
        ciphers: &[],
        policies: NO_CLIENT_CERTS.get_or_init(|| {
            vec![ClientPolicy {
                mode: ClientCerts::None,
                ca: "",
                ca_field: "tls.client_ca".into(),
            }]
        }),
    }
}

fn input<'a>(cert: &'a str, key: &'a str, snis: &'a [String], default: bool) -> CertInput<'a> {
    CertInput {
        cert,
        key,
        snis,
        default,
    }
}

#[test]
fn exact_beats_wildcard_and_default_catches_the_rest() {
    let a = make(&["api.example.com"]);
    let w = make(&["*.example.com"]);
    let d = make(&["fallback.test"]);
    let (ap, ak) = (a.cert.pem(), a.key_pair.serialize_pem());
    let (wp, wk) = (w.cert.pem(), w.key_pair.serialize_pem());
    let (dp, dk) = (d.cert.pem(), d.key_pair.serialize_pem());
    let certs = [
        input(&wp, &wk, &[], false),
        input(&ap, &ak, &[], false),
        input(&dp, &dk, &[], true),
    ];
    let versions = ["1.2".to_string(), "1.3".to_string()];
    let s = ServerSettings {
        versions: &versions,
        ..settings()
    };
    let built = build_server(&certs, &s, None).unwrap();
    let mut table = SniTable::default();
    for (c, k) in certs.iter().zip(&built.keys) {
        for n in san_names(k) {
            table.add(&n, k);
        }
        if c.default {
            table.default = Some(k.clone());
        }
    }
    let leaf = |k: Option<Arc<CertifiedKey>>| k.unwrap().cert[0].clone();
    assert_eq!(
        leaf(table.lookup(Some("api.example.com"))),
        built.keys[1].cert[0]
    );
    assert_eq!(
        leaf(table.lookup(Some("www.example.com"))),
        built.keys[0].cert[0]
    );
    // One label only: a deeper name and the bare suffix fall to the default.
    assert_eq!(
        leaf(table.lookup(Some("a.b.example.com"))),
        built.keys[2].cert[0]
    );
    assert_eq!(
        leaf(table.lookup(Some("example.com"))),
        built.keys[2].cert[0]
    );
    assert_eq!(leaf(table.lookup(None)), built.keys[2].cert[0]);
}

#[test]
fn bad_inputs_name_their_field() {
    let a = make(&["a.test"]);
    let other = KeyPair::generate().unwrap();
    let (ap, ak, ok) = (
        a.cert.pem(),
        a.key_pair.serialize_pem(),
        other.serialize_pem(),
    );
    let versions = ["1.3".to_string()];
    let s = ServerSettings {
        versions: &versions,
        ..settings()
    };
    let err = |certs: &[CertInput]| build_server(certs, &s, None).err().unwrap()[0].clone();
    assert_eq!(
        err(&[input("junk", &ak, &[], false)]).field,
        "certificates[0].cert"
    );
    assert_eq!(
        err(&[input(&ap, "junk", &[], false)]).field,
        "certificates[0].key"
    );
    let e = err(&[input(&ap, &ok, &[], false)]);
    assert_eq!(e.field, "certificates[0].key");
    assert!(e.message.contains("does not match"), "{e:?}");
    let ciphers = ["TLS_NOPE".to_string()];
    let s2 = ServerSettings {
        versions: &versions,
        ciphers: &ciphers,
        ..settings()
    };
    let e = build_server(&[input(&ap, &ak, &[], false)], &s2, None)
        .err()
        .unwrap();
    assert_eq!(e[0].field, "tls.ciphers[0]");
    // TLS 1.2 suites only with TLS 1.3 only: nothing left to negotiate.
    let ciphers = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".to_string()];
    let s3 = ServerSettings {
        versions: &versions,
        ciphers: &ciphers,
        ..settings()
    };
    let e = build_server(&[input(&ap, &ak, &[], false)], &s3, None)
        .err()
        .unwrap();
    assert_eq!(e[0].field, "tls.ciphers");
}

#[test]
fn unchanged_entries_reuse_loaded_keys() {
    let a = make(&["a.test"]);
    let (ap, ak) = (a.cert.pem(), a.key_pair.serialize_pem());
    let versions = ["1.2".to_string(), "1.3".to_string()];
    let s = ServerSettings {
        versions: &versions,
        ..settings()
    };
    let certs = [input(&ap, &ak, &[], false)];
    let first = build_server(&certs, &s, None).unwrap();
    let second = build_server(&certs, &s, Some((&certs, &first))).unwrap();
    assert!(Arc::ptr_eq(&first.keys[0], &second.keys[0]));
}
