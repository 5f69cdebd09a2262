//! Unit tests of the cors engine: origin rules, preflight checks, credentials, Vary.

use super::*;

fn engine(f: impl FnOnce(&mut CorsConfig)) -> CorsEngine {
    let mut cfg = CorsConfig {
        allow_origins: vec!["https://shop.example.com".into()],
        ..CorsConfig::default()
    };
    f(&mut cfg);
    CorsEngine::compile(&cfg).unwrap()
}

fn allowed<'a>(a: PreflightAnswer<'a>) -> CorsHeaders<'a> {
    a.unwrap_or_else(|r| panic!("rejected: {r:?}"))
}

fn rejected(a: PreflightAnswer<'_>) -> PreflightReject {
    a.expect_err("allowed")
}

#[test]
fn exact_origin_is_reflected_with_vary() {
    let e = engine(|_| {});
    let h = e.response_headers(Some(b"https://shop.example.com"));
    assert_eq!(
        h.get("Access-Control-Allow-Origin"),
        Some(&b"https://shop.example.com"[..])
    );
    assert_eq!(h.get("Vary"), Some(&b"Origin"[..]));
    assert_eq!(h.get("Access-Control-Allow-Credentials"), None);
    // Case-insensitive scheme/host.
    assert!(e
        .response_headers(Some(b"HTTPS://Shop.Example.com"))
        .get("Access-Control-Allow-Origin")
        .is_some());
    // Other origins get only Vary.
    for other in [
        &b"https://evil.com"[..],
        b"http://shop.example.com",
        b"https://shop.example.com:8443",
        b"null",
    ] {
        let h = e.response_headers(Some(other));
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![("Vary", &b"Origin"[..])],
            "{:?}",
            other
        );
    }
    assert_eq!(e.response_headers(None).iter().count(), 1);
}

#[test]
fn star_without_credentials_sends_star_and_no_vary() {
    let e = engine(|c| c.allow_origins = vec!["*".into()]);
    let h = e.response_headers(Some(b"https://anything.test"));
    assert_eq!(h.get("Access-Control-Allow-Origin"), Some(&b"*"[..]));
    assert_eq!(h.get("Vary"), None);
    assert!(e.response_headers(None).is_empty());
}

#[test]
fn star_with_credentials_reflects_the_origin() {
    let e = engine(|c| {
        c.allow_origins = vec!["*".into()];
        c.allow_credentials = true;
    });
    let h = e.response_headers(Some(b"https://a.test"));
    assert_eq!(
        h.get("Access-Control-Allow-Origin"),
        Some(&b"https://a.test"[..])
    );
    assert_eq!(
        h.get("Access-Control-Allow-Credentials"),
        Some(&b"true"[..])
    );
    assert_eq!(h.get("Vary"), Some(&b"Origin"[..]));
}

#[test]
fn wildcard_subdomains() {
    let e = engine(|c| {
        c.allow_origins = vec![
            "https://*.example.com".into(),
            "http://*.dev.test:8080".into(),
        ]
    });
    let ok = |o: &[u8]| {
        e.response_headers(Some(o))
            .get("Access-Control-Allow-Origin")
            .is_some()
    };
    assert!(ok(b"https://a.example.com"));
    assert!(ok(b"https://a.b.example.com"));
    assert!(ok(b"https://A-1.Example.COM"));
    assert!(!ok(b"https://example.com"));
    assert!(!ok(b"https://.example.com"));
    assert!(!ok(b"https://evilexample.com"));
    assert!(!ok(b"https://a.example.com.evil.com"));
    assert!(!ok(b"http://a.example.com"));
    assert!(!ok(b"https://a.example.com:8443"));
    assert!(!ok(b"https://a/b.example.com"));
    assert!(ok(b"http://x.dev.test:8080"));
    assert!(!ok(b"http://x.dev.test"));
    assert!(!ok(b"http://x.dev.test:80801"));
}

#[test]
fn preflight_allows_listed_methods_and_headers() {
    let e = engine(|c| {
        c.allow_methods = vec!["GET".into(), "PUT".into(), "DELETE".into()];
        c.allow_headers = vec!["Content-Type".into(), "X-Request-Id".into()];
        c.max_age = 3600;
    });
    let o = b"https://shop.example.com";
    let h = allowed(e.preflight(o, b"PUT", Some(b"content-type, x-request-id")));
    assert_eq!(h.get("Access-Control-Allow-Origin"), Some(&o[..]));
    assert_eq!(
        h.get("Access-Control-Allow-Methods"),
        Some(&b"GET, PUT, DELETE"[..])
    );
    assert_eq!(
        h.get("Access-Control-Allow-Headers"),
        Some(&b"Content-Type, X-Request-Id"[..])
    );
    assert_eq!(h.get("Access-Control-Max-Age"), Some(&b"3600"[..]));
    assert_eq!(h.get("Vary"), Some(&b"Origin"[..]));
    // Safelisted methods always pass; empty list items are ignored.
    allowed(e.preflight(o, b"POST", None));
    allowed(e.preflight(o, b"GET", Some(b" , Content-Type ,")));
    assert_eq!(
        rejected(e.preflight(o, b"PATCH", None)),
        PreflightReject::MethodNotAllowed
    );
    assert_eq!(
        rejected(e.preflight(o, b"put", None)),
        PreflightReject::MethodNotAllowed
    );
    assert_eq!(
        rejected(e.preflight(o, b"PUT", Some(b"content-type, x-secret"))),
        PreflightReject::HeaderNotAllowed
    );
    assert_eq!(
        rejected(e.preflight(b"https://evil.com", b"GET", None)),
        PreflightReject::OriginNotAllowed
    );
}

#[test]
fn preflight_stars() {
    let open = engine(|c| {
        c.allow_origins = vec!["*".into()];
        c.allow_methods = vec!["*".into()];
        c.allow_headers = vec!["*".into()];
        c.max_age = 0;
    });
    let h = allowed(open.preflight(b"https://x.test", b"PATCH", Some(b"x-anything")));
    assert_eq!(h.get("Access-Control-Allow-Origin"), Some(&b"*"[..]));
    assert_eq!(h.get("Access-Control-Allow-Methods"), Some(&b"*"[..]));
    assert_eq!(h.get("Access-Control-Allow-Headers"), Some(&b"*"[..]));
    assert_eq!(h.get("Access-Control-Max-Age"), None);
    assert_eq!(h.get("Vary"), None);

    // With credentials the stars are reflected instead.
    let creds = engine(|c| {
        c.allow_methods = vec!["*".into()];
        c.allow_headers = vec!["*".into()];
        c.allow_credentials = true;
    });
    let h = allowed(creds.preflight(b"https://shop.example.com", b"PATCH", Some(b"x-a, x-b")));
    assert_eq!(h.get("Access-Control-Allow-Methods"), Some(&b"PATCH"[..]));
    assert_eq!(
        h.get("Access-Control-Allow-Headers"),
        Some(&b"x-a, x-b"[..])
    );
    assert_eq!(
        h.get("Access-Control-Allow-Credentials"),
        Some(&b"true"[..])
    );
    assert_eq!(
        h.get("Access-Control-Allow-Origin"),
        Some(&b"https://shop.example.com"[..])
    );
}

#[test]
fn expose_headers_on_actual_responses() {
    let e = engine(|c| c.expose_headers = vec!["X-Request-Id".into(), "ETag".into()]);
    let h = e.response_headers(Some(b"https://shop.example.com"));
    assert_eq!(
        h.get("Access-Control-Expose-Headers"),
        Some(&b"X-Request-Id, ETag"[..])
    );
}

#[test]
fn preflight_detection() {
    assert!(CorsEngine::is_preflight(
        b"OPTIONS",
        Some(b"https://a"),
        Some(b"PUT")
    ));
    assert!(!CorsEngine::is_preflight(
        b"OPTIONS",
        Some(b"https://a"),
        None
    ));
    assert!(!CorsEngine::is_preflight(b"OPTIONS", None, Some(b"PUT")));
    assert!(!CorsEngine::is_preflight(
        b"GET",
        Some(b"https://a"),
        Some(b"PUT")
    ));
}

#[test]
fn config_validation() {
    let bad = |f: fn(&mut CorsConfig)| {
        let mut c = CorsConfig {
            allow_origins: vec!["https://a.test".into()],
            ..CorsConfig::default()
        };
        f(&mut c);
        CorsEngine::compile(&c).unwrap_err().path
    };
    assert_eq!(bad(|c| c.allow_origins.clear()), "allow_origins");
    assert_eq!(
        bad(|c| c.allow_origins.push("a.test".into())),
        "allow_origins[1]"
    );
    assert_eq!(
        bad(|c| c.allow_origins.push("https://a.test/path".into())),
        "allow_origins[1]"
    );
    assert_eq!(
        bad(|c| c.allow_origins.push("https://a.*.test".into())),
        "allow_origins[1]"
    );
    assert_eq!(
        bad(|c| c.allow_origins.push("https://*.".into())),
        "allow_origins[1]"
    );
    assert_eq!(
        bad(|c| c.allow_origins.push("https://a.test:99999".into())),
        "allow_origins[1]"
    );
    assert_eq!(
        bad(|c| c.allow_methods.push("BAD METHOD".into())),
        "allow_methods[3]"
    );
    assert_eq!(
        bad(|c| c.allow_headers.push(String::new())),
        "allow_headers[0]"
    );
    assert_eq!(
        bad(|c| {
            c.expose_headers = vec!["*".into()];
            c.allow_credentials = true;
        }),
        "expose_headers"
    );
    let ok = CorsConfig {
        allow_origins: vec!["http://[::1]:8080".into(), "http://localhost:3000".into()],
        ..CorsConfig::default()
    };
    let e = CorsEngine::compile(&ok).unwrap();
    assert!(e
        .response_headers(Some(b"http://[::1]:8080"))
        .get("Access-Control-Allow-Origin")
        .is_some());
    assert!(toml::from_str::<CorsConfig>("origins = []").is_err());
}

#[test]
fn documented_example_compiles() {
    let cfg: CorsConfig = crate::modules::ip_list::tests::doc_example(
        "cors",
        include_str!("../../../../docs/modules/cors.md"),
    );
    let e = CorsEngine::compile(&cfg).unwrap();
    let h = e.response_headers(Some(b"https://app.example.com"));
    assert_eq!(
        h.get("Access-Control-Allow-Credentials"),
        Some(&b"true"[..])
    );
}

#[test]
fn answers_do_not_allocate() {
    let e = engine(|c| {
        c.allow_origins.push("https://*.example.com".into());
        c.allow_headers = vec!["Content-Type".into()];
        c.allow_credentials = true;
    });
    let (n, ok) = crate::modules::ip_list::tests::allocations_during(|| {
        let a = e
            .preflight(b"https://a.example.com", b"PUT", Some(b"content-type"))
            .is_err();
        let b = e
            .response_headers(Some(b"https://shop.example.com"))
            .iter()
            .count();
        (a, b)
    });
    assert_eq!(ok, (true, 3));
    assert_eq!(n, 0);
}
