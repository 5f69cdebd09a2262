//! Unit tests of the params engine: every type and rule, every location, error messages.

use super::*;

fn engine(toml_params: &str) -> ParamsEngine {
    let cfg: ParamsConfig = toml::from_str(toml_params).unwrap();
    ParamsEngine::compile(&cfg).unwrap()
}

type Headers<'a> = std::iter::Copied<std::slice::Iter<'a, (&'a [u8], &'a [u8])>>;

struct Req<'a> {
    path: &'a [(&'a str, &'a [u8])],
    query: &'a [u8],
    headers: &'a [(&'a [u8], &'a [u8])],
    body: &'a [u8],
}

const EMPTY: Req<'static> = Req {
    path: &[],
    query: b"",
    headers: &[],
    body: b"",
};

/// `Ok(())` or `Err((field, message))`.
fn run(e: &ParamsEngine, r: &Req<'_>) -> Result<(), (String, String)> {
    let mut scratch = e.scratch();
    let path = r.path;
    let input: ParamInput<'_, _, Headers<'_>> = ParamInput {
        path_param: |name: &str| path.iter().find(|(n, _)| *n == name).map(|(_, v)| *v),
        query: r.query,
        headers: r.headers.iter().copied(),
        body: r.body,
    };
    e.check(&input, &mut scratch)
        .map_err(|v| (v.field().to_string(), v.to_string()))
}

fn q(e: &ParamsEngine, query: &str) -> Result<(), (String, String)> {
    run(
        e,
        &Req {
            query: query.as_bytes(),
            ..EMPTY
        },
    )
}

fn body(e: &ParamsEngine, b: &str) -> Result<(), (String, String)> {
    run(
        e,
        &Req {
            body: b.as_bytes(),
            ..EMPTY
        },
    )
}

fn err(field: &str, msg: &str) -> Result<(), (String, String)> {
    Err((field.to_string(), msg.to_string()))
}

#[test]
fn required_query_int_with_range() {
    let e = engine(
        r#"[[params]]
name = "page"
in = "query"
required = true
type = "int"
min = 1
max = 100"#,
    );
    assert_eq!(q(&e, "page=3"), Ok(()));
    assert_eq!(q(&e, "x=1&page=100&y"), Ok(()));
    assert_eq!(q(&e, ""), err("page", "is required"));
    assert_eq!(q(&e, "pages=1"), err("page", "is required"));
    assert_eq!(q(&e, "page=abc"), err("page", "must be an int"));
    assert_eq!(q(&e, "page="), err("page", "must be an int"));
    assert_eq!(q(&e, "page=1.5"), err("page", "must be an int"));
    assert_eq!(q(&e, "page=+1"), err("page", "must be an int"));
    assert_eq!(q(&e, "page=0"), err("page", "must be >= 1"));
    assert_eq!(q(&e, "page=101"), err("page", "must be <= 100"));
    assert_eq!(
        q(&e, "page=99999999999999999999"),
        err("page", "must be an int")
    );
    // Every occurrence is checked.
    assert_eq!(q(&e, "page=1&page=x"), err("page", "must be an int"));
    // Keys and values are percent-decoded, `+` is a space.
    assert_eq!(q(&e, "pa%67e=%35"), Ok(()));
    assert_eq!(q(&e, "page=%2B5"), err("page", "must be an int"));
}

#[test]
fn number_bool_enum_string_in_query() {
    let e = engine(
        r#"[[params]]
name = "price"
in = "query"
type = "number"
min = 0
max = 1000.5
[[params]]
name = "in_stock"
in = "query"
type = "bool"
[[params]]
name = "sort"
in = "query"
type = "enum"
values = ["price", "name"]
[[params]]
name = "q"
in = "query"
min_len = 2
max_len = 5"#,
    );
    assert_eq!(
        q(&e, "price=19.99&in_stock=true&sort=name&q=caf%C3%A9"),
        Ok(())
    );
    assert_eq!(q(&e, "price=-1"), err("price", "must be >= 0"));
    assert_eq!(q(&e, "price=1000.6"), err("price", "must be <= 1000.5"));
    assert_eq!(q(&e, "price=1e2"), Ok(()));
    for bad in [
        "price=NaN",
        "price=inf",
        "price=.5",
        "price=0x1",
        "price=1,5",
    ] {
        assert_eq!(q(&e, bad), err("price", "must be a number"), "{bad}");
    }
    assert_eq!(
        q(&e, "in_stock=yes"),
        err("in_stock", "must be true or false")
    );
    assert_eq!(
        q(&e, "sort=date"),
        err("sort", "must be one of: price, name")
    );
    assert_eq!(
        q(&e, "sort=Price"),
        err("sort", "must be one of: price, name")
    );
    assert_eq!(q(&e, "q=a"), err("q", "must be at least 2 characters"));
    // Lengths count characters: five accented letters are five, not ten.
    assert_eq!(q(&e, "q=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"), Ok(()));
    assert_eq!(q(&e, "q=abcdef"), err("q", "must be at most 5 characters"));
    assert_eq!(q(&e, "q=%FF%FE"), err("q", "must be valid UTF-8 text"));
    // Optional parameters may be absent.
    assert_eq!(q(&e, ""), Ok(()));
}

#[test]
fn pattern_is_a_search_unless_anchored() {
    let e = engine(
        r#"[[params]]
name = "sku"
in = "query"
pattern = "^[A-Z]{3}-[0-9]{4}$"
[[params]]
name = "email"
in = "query"
pattern = "@""#,
    );
    assert_eq!(q(&e, "sku=ABC-1234&email=o%27brien%40example.com"), Ok(()));
    assert_eq!(
        q(&e, "sku=ABC-12345"),
        err("sku", "does not match the expected pattern")
    );
    assert_eq!(
        q(&e, "email=nobody"),
        err("email", "does not match the expected pattern")
    );
}

#[test]
fn path_params_are_decoded() {
    let e = engine(
        r#"[[params]]
name = "id"
in = "path"
required = true
type = "int"
[[params]]
name = "slug"
in = "path"
pattern = "^[a-z ]+$""#,
    );
    let ok = Req {
        path: &[("id", b"42"), ("slug", b"red%20shirt")],
        ..EMPTY
    };
    assert_eq!(run(&e, &ok), Ok(()));
    let bad = Req {
        path: &[("id", b"4x2")],
        ..EMPTY
    };
    assert_eq!(run(&e, &bad), err("id", "must be an int"));
    assert_eq!(run(&e, &EMPTY), err("id", "is required"));
    let plus = Req {
        path: &[("id", b"1"), ("slug", b"red+shirt")],
        ..EMPTY
    };
    assert_eq!(
        run(&e, &plus),
        err("slug", "does not match the expected pattern")
    );
}

#[test]
fn headers_match_names_case_insensitively() {
    let e = engine(
        r#"[[params]]
name = "X-Tenant"
in = "header"
required = true
type = "enum"
values = ["eu", "us"]"#,
    );
    let ok = Req {
        headers: &[(b"x-tenant", b"eu")],
        ..EMPTY
    };
    assert_eq!(run(&e, &ok), Ok(()));
    let bad = Req {
        headers: &[(b"X-TENANT", b"eu"), (b"x-tenant", b"asia")],
        ..EMPTY
    };
    assert_eq!(run(&e, &bad), err("X-Tenant", "must be one of: eu, us"));
    let missing = Req {
        headers: &[(b"x-other", b"eu")],
        ..EMPTY
    };
    assert_eq!(run(&e, &missing), err("X-Tenant", "is required"));
}

#[test]
fn json_body_fields_by_type() {
    let e = engine(
        r#"[[params]]
name = "qty"
in = "body"
required = true
type = "int"
min = 1
[[params]]
name = "price"
in = "body"
type = "number"
[[params]]
name = "gift"
in = "body"
type = "bool"
[[params]]
name = "name"
in = "body"
max_len = 10
[[params]]
name = "size"
in = "body"
type = "enum"
values = ["S", "M", "L"]"#,
    );
    assert_eq!(
        body(
            &e,
            r#"{"qty": 2, "price": 9.5, "gift": false, "name": "O'Brien", "size": "M", "x": {"qty": "no"}}"#
        ),
        Ok(())
    );
    assert_eq!(body(&e, r#"{"qty": "2"}"#), err("qty", "must be an int"));
    assert_eq!(body(&e, r#"{"qty": 2.5}"#), err("qty", "must be an int"));
    assert_eq!(body(&e, r#"{"qty": 0}"#), err("qty", "must be >= 1"));
    assert_eq!(body(&e, r#"{"qty": null}"#), err("qty", "is required"));
    assert_eq!(body(&e, r#"{"price": 1}"#), err("qty", "is required"));
    assert_eq!(
        body(&e, r#"{"qty": 1, "price": "9"}"#),
        err("price", "must be a number")
    );
    assert_eq!(
        body(&e, r#"{"qty": 1, "gift": "true"}"#),
        err("gift", "must be true or false")
    );
    assert_eq!(
        body(&e, r#"{"qty": 1, "name": 5}"#),
        err("name", "must be a string")
    );
    assert_eq!(
        body(&e, r#"{"qty": 1, "name": ["a"]}"#),
        err("name", "must be a string")
    );
    assert_eq!(
        body(
            &e,
            r#"{"qty": 1, "name": "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"}"#
        ),
        Ok(())
    );
    assert_eq!(
        body(&e, r#"{"qty": 1, "name": "abcdefghijk"}"#),
        err("name", "must be at most 10 characters")
    );
    assert_eq!(
        body(&e, r#"{"qty": 1, "size": "XL"}"#),
        err("size", "must be one of: S, M, L")
    );
    assert_eq!(
        body(&e, r#"{"qty": 1, "size": 1}"#),
        err("size", "must be one of: S, M, L")
    );
    assert_eq!(body(&e, r#"{"qty": 1, "price": null}"#), Ok(()));
    // Escaped keys are decoded; the last duplicate wins.
    assert_eq!(body(&e, r#"{"q\u0074y": 3}"#), Ok(()));
    assert_eq!(body(&e, r#"{"qty": "x", "qty": 3}"#), Ok(()));
    assert_eq!(
        body(&e, r#"{"qty": 3, "qty": "x"}"#),
        err("qty", "must be an int")
    );
    // Broken or non-object bodies.
    assert_eq!(body(&e, "[1]"), err("body", "must be a JSON object"));
    assert_eq!(
        body(&e, r#"{"qty": 1"#),
        err("body", "must be a JSON object")
    );
    assert_eq!(body(&e, "   "), err("qty", "is required"));
}

#[test]
fn body_size_is_bounded() {
    let e = engine(
        r#"max_body_bytes = 16
[[params]]
name = "a"
in = "body""#,
    );
    assert_eq!(body(&e, r#"{"a": "short"}"#), Ok(()));
    assert_eq!(
        body(&e, r#"{"a": "much too long"}"#),
        err("body", "is larger than 16 bytes")
    );
}

#[test]
fn no_body_params_means_the_body_is_not_read() {
    let e = engine(
        r#"[[params]]
name = "q"
in = "query""#,
    );
    assert_eq!(body(&e, "not json at all"), Ok(()));
}

#[test]
fn scratch_of_another_engine_is_rebuilt() {
    let a = engine("[[params]]\nname = \"x\"\nin = \"query\"\npattern = \"^a\"");
    let b = engine("[[params]]\nname = \"x\"\nin = \"query\"\npattern = \"^b\"\n[[params]]\nname = \"y\"\nin = \"query\"\npattern = \"^c\"");
    let mut s = a.scratch();
    let input = ParamInput {
        path_param: |_: &str| None,
        query: &b"x=b&y=c"[..],
        headers: std::iter::empty::<(&[u8], &[u8])>(),
        body: &b""[..],
    };
    assert!(b.check(&input, &mut s).is_ok());
    assert!(a.check(&input, &mut s).is_err());
}

#[test]
fn long_inputs_grow_the_buffer_once() {
    let e = engine("[[params]]\nname = \"q\"\nin = \"query\"\nmax_len = 20000");
    let long = format!("q={}", "a".repeat(10_000));
    let mut s = e.scratch();
    let input = ParamInput {
        path_param: |_: &str| None,
        query: long.as_bytes(),
        headers: std::iter::empty::<(&[u8], &[u8])>(),
        body: &b""[..],
    };
    assert!(e.check(&input, &mut s).is_ok());
    let cap = s.buf.capacity();
    assert!(e.check(&input, &mut s).is_ok());
    assert_eq!(s.buf.capacity(), cap);
}

#[test]
fn config_errors_name_the_field() {
    let bad = |t: &str| {
        let cfg: ParamsConfig = toml::from_str(t).unwrap();
        ParamsEngine::compile(&cfg).unwrap_err().path
    };
    assert_eq!(
        bad("[[params]]\nname = \"\"\nin = \"query\""),
        "params[0].name"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\nmin = 1"),
        "params[0].min"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\ntype = \"int\"\nmin = 1.5"),
        "params[0].min"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\ntype = \"int\"\nmin = 5\nmax = 1"),
        "params[0].min"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\nmin_len = 5\nmax_len = 1"),
        "params[0].min_len"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\ntype = \"enum\""),
        "params[0].values"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\nvalues = [\"x\"]"),
        "params[0].values"
    );
    assert_eq!(
        bad("[[params]]\nname = \"a\"\nin = \"query\"\npattern = \"(\""),
        "params[0].pattern"
    );
    assert_eq!(bad("max_body_bytes = 0"), "max_body_bytes");
    assert!(toml::from_str::<ParamsConfig>("[[params]]\nname = \"a\"\nin = \"cookie\"").is_err());
    assert!(toml::from_str::<ParamsConfig>(
        "[[params]]\nname = \"a\"\nin = \"query\"\nrequird = true"
    )
    .is_err());
}

#[test]
fn documented_example_compiles() {
    let cfg: ParamsConfig = crate::modules::ip_list::tests::doc_example(
        "params",
        include_str!("../../../../docs/modules/params.md"),
    );
    let e = ParamsEngine::compile(&cfg).unwrap();
    let ok = Req {
        path: &[("id", b"17")],
        query: b"fields=name",
        headers: &[],
        body: br#"{"quantity": 2, "size": "M"}"#,
    };
    assert_eq!(run(&e, &ok), Ok(()));
}

#[test]
fn checks_do_not_allocate_once_warm() {
    let e = engine(
        r#"[[params]]
name = "id"
in = "path"
type = "int"
[[params]]
name = "q"
in = "query"
pattern = "^[a-z ]+$"
[[params]]
name = "X-Tenant"
in = "header"
type = "enum"
values = ["eu"]
[[params]]
name = "qty"
in = "body"
type = "int"
[[params]]
name = "note"
in = "body"
max_len = 50"#,
    );
    let mut s = e.scratch();
    let headers: [(&[u8], &[u8]); 1] = [(b"x-tenant", b"eu")];
    let input = ParamInput {
        path_param: |n: &str| (n == "id").then_some(&b"42"[..]),
        query: &b"q=red+shirt&page=2"[..],
        headers: headers.iter().copied(),
        body: &br#"{"qty": 3, "note": "caf\u00e9 O'Brien", "x": [1, {"y": 2}]}"#[..],
    };
    assert!(e.check(&input, &mut s).is_ok()); // warms the regex cache
    let (n, r) =
        crate::modules::ip_list::tests::allocations_during(|| e.check(&input, &mut s).is_ok());
    assert!(r);
    assert_eq!(n, 0);
}
