//! Thrift routes through the real binary: JSON in, Thrift call out, reply back as JSON.
//!
//! Peers: a hand-written byte-level peer (`thrift/raw.rs`) for the mapping basics and for
//! hostile replies, and real Python Thrift servers generated at test time by the Debian
//! `thrift` compiler (`thrift/python.rs`) for interop in every server kind, protocol and
//! transport. The Python tests need `thrift` on PATH and `GATEHOUSE_PYTHON` pointing at a
//! Python with the `thrift` package (tests/run-all.sh sets both up); without them they
//! print why and pass vacuously.

// The tls suite's CA and leaves; its TLS client is not used here.
#[path = "tls/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "thrift/python.rs"]
mod python;
#[path = "thrift/raw.rs"]
mod raw;

use gatehouse_tests::client::{assert_gateway_error, roundtrip, Conn, Resp};
use gatehouse_tests::gateway::Gateway;
use raw::{string_reply, Msg, Out, RawPeer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const GREETER: &str = r#"
exception Missing { 1: string what }
service Greeter {
  string hello(1: required string name, 2: optional i64 times) throws (1: Missing missing),
  i64 big(1: i64 v),
}
"#;

/// The byte-level peer's answers, chosen by the `name` argument.
fn greeter() -> RawPeer {
    RawPeer::start(greeter_answers())
}

fn greeter_answers() -> raw::Answer {
    Box::new(|c| {
        let name = c.string(1).unwrap_or("");
        let plain = c.name.rsplit(':').next().unwrap_or("").to_string();
        let seq = c.seqid;
        if plain == "big" {
            let v = c.int(1).unwrap_or(0);
            let r = Msg::header("big", 2, seq).field(10, 0).i64(v + 1).stop();
            return Out::now(r.framed());
        }
        let bytes = match name {
            "missing" => Msg::header("hello", 2, seq)
                .field(12, 1)
                .field(11, 1)
                .string("nobody called missing")
                .stop()
                .stop()
                .framed(),
            "boom" => Msg::header("hello", 3, seq)
                .field(11, 1)
                .string("handler blew up")
                .field(8, 2)
                .i32(6)
                .stop()
                .framed(),
            "slow" => {
                return Some(Out {
                    bytes: string_reply("hello", seq, "late"),
                    pause: 2000,
                    close: false,
                })
            }
            // A frame claiming 2 GiB - 1, then a frame length that is negative.
            "huge" => vec![0x7f, 0xff, 0xff, 0xff, 0x80, 0x01],
            "negative" => vec![0xff, 0xff, 0xff, 0xf0],
            // A result nested 10,000 structs deep (the limit is 64).
            "deep" => {
                let mut m = Msg::header("hello", 2, seq);
                for _ in 0..10_000 {
                    m = m.field(12, 0);
                }
                m.framed()
            }
            "seqid" => string_reply("hello", seq.wrapping_add(12_345), "wrong id"),
            "method" => string_reply("goodbye", seq, "wrong method"),
            "garbage" => Msg(vec![1, 2, 3, 4, 5, 6, 7, 8]).framed(),
            // Part of a reply, then the connection closes.
            "truncated" => {
                let mut b = string_reply("hello", seq, "cut short");
                b.truncate(b.len() - 3);
                return Some(Out {
                    bytes: b,
                    pause: 0,
                    close: true,
                });
            }
            "close" => return None,
            _ => {
                let times = c.int(2).unwrap_or(1);
                string_reply(&plain, seq, &format!("{plain} {name} x{times}"))
            }
        };
        Out::now(bytes)
    })
}

fn greeter_config(peer: SocketAddr, upstream_extra: &str) -> String {
    format!(
        r#"
[[upstreams]]
id = "greeter"
protocol = "thrift"
read_timeout_ms = 800
{upstream_extra}
nodes = [{{ addr = "{peer}" }}]

[[services]]
id = "greeter"
files = [{{ name = "greeter.thrift", text = '''{GREETER}''' }}]

[[routes]]
id = "hello"
paths = ["/hello/{{name}}"]
upstream = "greeter"
service = "greeter"
method = "hello"
args = {{ times = "query.times" }}
exceptions = {{ Missing = 404 }}

[[routes]]
id = "hello-body"
paths = ["/hello"]
methods = ["POST"]
upstream = "greeter"
service = "greeter"
method = "Greeter.hello"
multiplexed_name = "Greeter"

[[routes]]
id = "big"
paths = ["/big"]
upstream = "greeter"
service = "greeter"
method = "big"
"#
    )
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    roundtrip(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    roundtrip(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
}

fn json_of(r: &Resp) -> Value {
    r.json()
        .unwrap_or_else(|| panic!("{} not JSON: {:?}", r.status, r.body_str()))
}

#[test]
fn a_request_becomes_a_call_and_the_reply_becomes_json() {
    let peer = greeter();
    let g = Gateway::start(&greeter_config(peer.addr, ""));
    let r = get(g.addr, "/hello/ann%20lee?times=3");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(json_of(&r), json!("hello ann lee x3"));
    let c = &peer.seen()[0];
    assert_eq!(
        (c.name.as_str(), c.string(1), c.int(2)),
        ("hello", Some("ann lee"), Some(3))
    );
    // The body route: arguments by name, i64 beyond 2^53 as a string, a multiplexed name.
    let r = post(
        g.addr,
        "/hello",
        r#"{"name":"bob","times":"9007199254740993"}"#,
    );
    assert_eq!(json_of(&r), json!("hello bob x9007199254740993"));
    let c = peer.seen().pop().unwrap();
    assert_eq!(c.name, "Greeter:hello");
    assert_eq!(c.int(2), Some(9_007_199_254_740_993));
    let r = post(g.addr, "/big", r#"{"v": 9007199254740993}"#);
    assert_eq!(json_of(&r), json!("9007199254740994"));
}

#[test]
fn a_bad_request_is_a_400_naming_the_field_and_nothing_is_sent() {
    let peer = greeter();
    let g = Gateway::start(&greeter_config(peer.addr, ""));
    let r = post(g.addr, "/hello", r#"{"times": 2}"#);
    assert_gateway_error(&r, 400, "bad_request");
    let v = json_of(&r);
    assert_eq!(v["error"]["field"], "name", "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("name: required field is missing"));
    for (body, field) in [
        (r#"{"name":"a","times":"x"}"#, "times"),
        (r#"{"name":"a","tmes":1}"#, ""),
        (r#"{"name":"a","times":1.5}"#, "times"),
        (r#"{"name":"a""#, ""),
    ] {
        let r = post(g.addr, "/hello", body);
        assert_gateway_error(&r, 400, "bad_request");
        if !field.is_empty() {
            assert_eq!(json_of(&r)["error"]["field"], field, "{body}");
        }
    }
    assert!(
        peer.seen().is_empty(),
        "no call may reach the server: {:?}",
        peer.seen()
    );
}

#[test]
fn exceptions_map_to_statuses() {
    let peer = greeter();
    let g = Gateway::start(&greeter_config(peer.addr, ""));
    let r = get(g.addr, "/hello/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-thrift-exception"), Some("Missing"));
    assert_eq!(json_of(&r), json!({"what": "nobody called missing"}));
    let r = get(g.addr, "/hello/boom");
    assert_gateway_error(&r, 502, "upstream_failed");
    let msg = json_of(&r)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("InternalError") && msg.contains("handler blew up"),
        "{msg}"
    );
    let r = get(g.addr, "/hello/slow");
    assert_gateway_error(&r, 504, "upstream_timeout");
    // The slow reply arrives late on a connection that has moved on: it is dropped.
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(json_of(&get(g.addr, "/hello/x")), json!("hello x x1"));
}

#[test]
fn hostile_replies_fail_their_call_and_the_gateway_goes_on() {
    let peer = greeter();
    let mut g = Gateway::start(&greeter_config(peer.addr, ""));
    for name in [
        "huge",
        "negative",
        "deep",
        "seqid",
        "method",
        "garbage",
        "truncated",
        "close",
    ] {
        let t = Instant::now();
        let r = get(g.addr, &format!("/hello/{name}"));
        assert_gateway_error(&r, 502, "upstream_failed");
        assert!(
            t.elapsed() < Duration::from_millis(700),
            "{name} waited for the timeout"
        );
        let ok = get(g.addr, "/hello/after");
        assert_eq!(json_of(&ok), json!("hello after x1"), "after {name}");
    }
    assert!(
        g.wait_exit(Duration::from_millis(10)).is_none(),
        "gateway died"
    );
}

#[test]
fn on_a_multiplexed_connection_a_bad_reply_fails_only_its_own_call() {
    let peer = greeter();
    let g = Gateway::start(&greeter_config(
        peer.addr,
        "max_in_flight = 8\nmax_connections = 1",
    ));
    let names = ["a", "method", "b", "deep", "c", "boom", "d", "missing", "e"];
    let handles: Vec<_> = names
        .iter()
        .map(|&n| {
            let addr = g.addr;
            std::thread::spawn(move || (n, get(addr, &format!("/hello/{n}"))))
        })
        .collect();
    for h in handles {
        let (n, r) = h.join().unwrap();
        match n {
            "method" | "deep" | "boom" => assert_gateway_error(&r, 502, "upstream_failed"),
            "missing" => assert_eq!(r.status, 404),
            _ => assert_eq!(json_of(&r), json!(format!("hello {n} x1")), "{n}"),
        }
    }
}

#[test]
fn replies_out_of_order_on_one_connection_each_reach_their_request() {
    // Eight calls in flight on one connection; the peer answers each batch last call first.
    let peer = RawPeer::start_batched(greeter_answers(), 8);
    let g = Gateway::start(&greeter_config(
        peer.addr,
        "max_in_flight = 8\nmax_connections = 1",
    ));
    for round in 0..5 {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let addr = g.addr;
                std::thread::spawn(move || (i, get(addr, &format!("/hello/r{round}c{i}"))))
            })
            .collect();
        for h in handles {
            let (i, r) = h.join().unwrap();
            assert_eq!(json_of(&r), json!(format!("hello r{round}c{i} x1")));
        }
    }
    assert_eq!(peer.seen().len(), 40);
    let reversed = peer.reversed.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        reversed >= 3,
        "only {reversed} batches came back out of order"
    );
}

#[test]
fn keep_alive_and_pipelined_requests_on_a_thrift_route() {
    let peer = greeter();
    let g = Gateway::start(&greeter_config(peer.addr, ""));
    let mut c = Conn::open(g.addr);
    let mut raw = Vec::new();
    for i in 0..5 {
        raw.extend_from_slice(format!("GET /hello/p{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    c.send(&raw).unwrap();
    for i in 0..5 {
        let r = c.read_response().unwrap();
        assert_eq!(json_of(&r), json!(format!("hello p{i} x1")));
    }
    // An upstream that cannot be reached: 502 at once (connect refused), then the backoff.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let g2 = Gateway::start(&greeter_config(dead, ""));
    assert_gateway_error(&get(g2.addr, "/hello/x"), 502, "upstream_failed");
    assert_gateway_error(&get(g2.addr, "/hello/x"), 502, "upstream_failed");
}

/// An admin API call → (status, JSON body or null).
fn admin(g: &Gateway, method: &str, path: &str, body: &str) -> (u16, Value) {
    let r = roundtrip(
        g.admin,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    (r.status, r.json().unwrap_or(Value::Null))
}

#[test]
fn idl_changed_through_the_admin_api_is_checked_then_served_at_once() {
    let peer = greeter();
    let g = Gateway::start(&greeter_config(peer.addr, ""));
    let bad = json!({"files": [{"name": "greeter.thrift",
        "text": "service Greeter {\n  string hello(1: string name),\n  Nope shout(1: string name),\n}\n"}]});
    let (s, v) = admin(&g, "PUT", "/admin/v1/services/greeter", &bad.to_string());
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("greeter.thrift:3:") && msg.contains("Nope"),
        "{v}"
    );
    // The old IDL still serves.
    assert_eq!(json_of(&get(g.addr, "/hello/x")), json!("hello x x1"));
    let good = json!({"files": [{"name": "greeter.thrift", "text": format!(
        "{GREETER}\nservice Loud {{ string shout(1: required string name) }}\n")}]});
    let (s, v) = admin(&g, "PUT", "/admin/v1/services/greeter", &good.to_string());
    assert_eq!(s, 200, "{v}");
    let route = json!({"paths": ["/shout/{name}"], "upstream": "greeter",
                       "service": "greeter", "method": "Loud.shout"});
    let (s, v) = admin(&g, "PUT", "/admin/v1/routes/shout", &route.to_string());
    assert_eq!(s, 201, "{v}");
    assert_eq!(json_of(&get(g.addr, "/shout/ann")), json!("shout ann x1"));
    let route = json!({"paths": ["/nope"], "upstream": "greeter", "service": "greeter",
                       "method": "Loud.whisper"});
    let (s, v) = admin(&g, "PUT", "/admin/v1/routes/nope", &route.to_string());
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("whisper"),
        "{v}"
    );
    let (s, v) = admin(&g, "DELETE", "/admin/v1/services/greeter", "");
    assert_eq!(s, 409, "a route still uses it: {v}");
}

#[test]
fn python_interop_matrix() {
    python::matrix();
}

#[test]
fn python_multiplexed_and_in_flight_above_one() {
    python::multiplexed_and_pipelined();
}

#[test]
fn python_over_tls() {
    python::tls();
}
