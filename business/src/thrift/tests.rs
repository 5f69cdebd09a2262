//! Thrift routes resolved per snapshot: IDL errors with file and line, method, argument and
//! exception resolution, IDL reuse across versions, and request arguments.

use crate::stage::Request;
use crate::Snapshot;
use conf::{Config, RouteMatch};
use protocols::http1::{parse_request, Limits, Parsed, RequestHead};
use protocols::thrift::codec::{Protocol, Transport};
use std::sync::Arc;

const IDL: &str = r#"
namespace py catalog
exception NotFound { 1: string what }
exception Denied { 1: string why }
struct Filter { 1: optional string text }
service Base { void ping() }
service Catalog extends Base {
  string get(1: i64 id, 2: string locale, 3: i32 n) throws (1: NotFound nf, 2: Denied d),
  list<string> search(1: Filter f),
}
service Other { void ping2() }
"#;

fn config(route_extra: &str, idl: &str) -> String {
    format!(
        r#"
[[upstreams]]
id = "rpc"
protocol = "thrift"
transport = "buffered"
nodes = [{{ addr = "127.0.0.1:9090" }}]

[[services]]
id = "catalog"
thrift_protocol = "compact"
files = [{{ name = "catalog.thrift", text = '''{idl}''' }}]

[[routes]]
id = "get"
paths = ["/items/{{id}}"]
upstream = "rpc"
service = "catalog"
{route_extra}
"#
    )
}

fn build(text: &str) -> Result<Arc<Snapshot>, Vec<String>> {
    let c = Config::from_toml_str(text).map_err(|e| vec![format!("{e:?}")])?;
    Snapshot::build(c, 1).map_err(|e| e.iter().map(|e| e.to_string()).collect())
}

fn errors(text: &str) -> Vec<String> {
    match build(text) {
        Ok(_) => panic!("built"),
        Err(e) => e,
    }
}

#[test]
fn a_route_resolves_to_its_method_args_and_exceptions() {
    let snap = build(&config(
        "method = \"get\"\nmultiplexed_name = \"Cat\"\n\
         args = { locale = \"header.Accept-Language\", n = \"query.n\" }\n\
         exceptions = { NotFound = 404, d = 403 }",
        IDL,
    ))
    .unwrap();
    let t = snap.thrift_route(0).expect("thrift route");
    assert_eq!(t.method.name, "get");
    assert_eq!(t.wire_name, "Cat:get");
    assert_eq!(
        (t.protocol, t.transport),
        (Protocol::Compact, Transport::Buffered)
    );
    assert_eq!(t.exception_status("catalog.NotFound"), 404);
    assert_eq!(t.exception_status("catalog.Denied"), 403);
    assert_eq!(t.exception_status("catalog.Other"), 500);
    // The path capture {id} is the argument `id` without being listed.
    let names: Vec<&str> = t.args.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["locale", "n", "id"]);
    assert!(snap.pipeline.kinds(0).ends_with(&["thrift"]));
    assert!(snap.upstreams[0].mux.is_some_and(|m| m.max_in_flight == 1));
}

#[test]
fn idl_and_route_errors_name_their_field() {
    let errs = errors(&config("method = \"get\"", "struct A { 1: Missing m }"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("services[0].files[0]: catalog.thrift:1: ")
            && errs[0].contains("Missing"),
        "{errs:#?}"
    );
    let errs = errors(&config("method = \"nope\"", IDL));
    assert_eq!(
        errs,
        ["routes[0].method: no service in the IDL has a method \"nope\""]
    );
    let errs = errors(&config("method = \"Catalog.nope\"", IDL));
    assert!(errs[0].starts_with("routes[0].method: service \"Catalog\" has no method \"nope\""));
    let errs = errors(&config(
        "method = \"Catalog.get\"\nargs = { zz = \"query.z\" }\nbody_arg = \"yy\"\n\
         exceptions = { Nope = 404 }",
        IDL,
    ));
    for want in [
        "routes[0].args.zz: not an argument (get takes: id, locale, n)",
        "routes[0].body_arg: not an argument (get takes: id, locale, n)",
        "routes[0].exceptions.Nope: not an exception get declares (it declares: NotFound, Denied)",
    ] {
        assert!(
            errs.iter().any(|e| e == want),
            "missing {want:?} in {errs:#?}"
        );
    }
    // Inherited methods are one method; `ping` is found through Catalog and Base alike.
    assert!(build(&config("method = \"ping\"", IDL)).is_ok());
}

#[test]
fn an_unchanged_idl_is_reused_by_the_next_version() {
    let text = config("method = \"get\"", IDL);
    let a = build(&text).unwrap();
    let c = Config::from_toml_str(&format!("{text}\n[[routes]]\nid = \"x\"\npaths = [\"/x\"]\nupstream = \"rpc\"\nservice = \"catalog\"\nmethod = \"search\"\n")).unwrap();
    let b = Snapshot::build_next(c, 2, Some(&a)).unwrap();
    assert!(Arc::ptr_eq(&a.services[0], &b.services[0]));
    assert!(Arc::ptr_eq(
        &a.thrift_route(0).unwrap().idl,
        &b.thrift_route(1).unwrap().idl
    ));
}

#[test]
fn request_args_come_decoded_from_path_query_and_headers() {
    let snap = build(&config(
        "method = \"get\"\nargs = { locale = \"header.X-Locale\", n = \"query.n\" }",
        IDL,
    ))
    .unwrap();
    let t = snap.thrift_route(0).unwrap();
    let raw = b"GET /items/a%20b?x=1&n=4%32&n=9 HTTP/1.1\r\nHost: h\r\nx-locale: fr\r\n\r\n";
    let mut head = RequestHead::new();
    assert!(matches!(
        parse_request(raw, &Limits::default(), &mut head),
        Ok(Parsed::Complete)
    ));
    let req = Request {
        buf: raw,
        head: &head,
        peer: [127, 0, 0, 1].into(),
        body: None,
        tls: false,
    };
    let mut m = RouteMatch::default();
    assert!(snap
        .router
        .find(req.host(), req.method(), req.path(), &mut m));
    let mut scratch = Vec::new();
    let mut out = [("", ""); super::MAX_ARGS];
    let n = t
        .request_args(&req, &m, &snap.router, &mut scratch, &mut out)
        .unwrap();
    assert_eq!(&out[..n], [("locale", "fr"), ("n", "42"), ("id", "a b")]);
    // Absent ones are left out; invalid UTF-8 names the argument.
    let raw = b"GET /items/%ff HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut head2 = RequestHead::new();
    assert!(matches!(
        parse_request(raw, &Limits::default(), &mut head2),
        Ok(Parsed::Complete)
    ));
    let req = Request {
        buf: raw,
        head: &head2,
        ..req
    };
    assert!(snap
        .router
        .find(req.host(), req.method(), req.path(), &mut m));
    let (mut scratch, mut out) = (Vec::new(), [("", ""); super::MAX_ARGS]);
    let e = t
        .request_args(&req, &m, &snap.router, &mut scratch, &mut out)
        .unwrap_err();
    assert_eq!(e.path, "id");
}
