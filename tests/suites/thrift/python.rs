//! Interop with real Apache Thrift servers: Python code generated at test time by the
//! Debian `thrift` compiler from `protocols/src/thrift/testdata/gatehouse_test.thrift`,
//! served by `TThreadedServer` (binary and compact, framed and buffered) and
//! `TNonblockingServer` (binary and compact; it frames by itself), plus a
//! `TMultiplexedProcessor`. Every type of the mapping goes through the gateway and back.
//! A `TSSLServerSocket` variant checks TLS to Thrift upstreams, with a CA and leaf made by
//! rcgen at test time (the tls suite's `pki` module).

use gatehouse_tests::client::{assert_gateway_error, roundtrip, Conn, Resp};
use gatehouse_tests::gateway::{free_port, Gateway, TempDir};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVER_PY: &str = r#"
import sys, threading
gen, kind, proto, transport, port, log = sys.argv[1:7]
sys.path.insert(0, gen)
from gatehouse_test import Test, ttypes
from thrift.transport import TSocket, TTransport
from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.server import TServer, TNonblockingServer
from thrift.TMultiplexedProcessor import TMultiplexedProcessor

lock = threading.Lock()
def note(s):
    with lock:
        with open(log, "a") as f:
            f.write(s + "\n")

class Handler:
    def ping(self): note("ping")
    def echo(self, a): note("echo"); return a
    def move(self, p, dx, dy, c):
        note("move %s" % c)
        return ttypes.Point(x=p.x + dx, y=p.y + (dy or 0))
    def find(self, id):
        note("find %d" % id)
        if id == 1: raise ttypes.NotFound(what="no such thing", id=id)
        if id == 2: raise ttypes.Denied(why="not yours")
        if id == 3: raise RuntimeError("boom")
        return "found %d" % id
    def fire(self, msg): note("fire " + msg)
    def count(self, pts): note("count"); return (1 << 60) + len(pts)
    def pick(self, c): note("pick"); return c

processor = Test.Processor(Handler())
if kind == "multiplexed":
    mux = TMultiplexedProcessor()
    mux.registerProcessor("Test", processor)
    processor = mux
pf = TBinaryProtocol.TBinaryProtocolFactory() if proto == "binary" else TCompactProtocol.TCompactProtocolFactory()
tf = TTransport.TFramedTransportFactory() if transport == "framed" else TTransport.TBufferedTransportFactory()
if kind == "tls":
    # TLS with the leaf the test wrote beside the generated code; successful handshakes
    # are noted so the test can count connections.
    import ssl
    from thrift.transport import TSSLSocket
    class Counting(TSSLSocket.TSSLServerSocket):
        def accept(self):
            c = super().accept()
            if c is not None: note("accept")
            return c
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(gen + "/leaf.pem", gen + "/leaf.key")
    sock = Counting(host="127.0.0.1", port=int(port), ssl_context=ctx)
else:
    sock = TSocket.TServerSocket(host="127.0.0.1", port=int(port))
if kind == "nonblocking":
    server = TNonblockingServer.TNonblockingServer(processor, sock, pf, pf)
else:
    server = TServer.TThreadedServer(processor, sock, tf, pf, daemon=True)
server.serve()
"#;

/// The Python and compiler to use, or why the tests cannot run here.
struct Tools {
    python: PathBuf,
    dir: TempDir,
}

fn idl_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../protocols/src/thrift/testdata/gatehouse_test.thrift")
}

/// Says why the Python tests do not run, past the test harness's output capture.
fn skip(why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED Thrift interop: {why} ***\n"
    );
}

impl Tools {
    fn detect() -> Option<Tools> {
        let Some(python) = std::env::var_os("GATEHOUSE_PYTHON").map(PathBuf::from) else {
            skip("GATEHOUSE_PYTHON is not set (a Python with the `thrift` package; tests/run-all.sh sets it up)");
            return None;
        };
        let ok = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
        if !ok(Command::new("thrift").arg("-version")) {
            skip("no `thrift` compiler on PATH (apt-get install thrift-compiler)");
            return None;
        }
        if !ok(Command::new(&python).args(["-c", "import thrift"])) {
            skip(&format!(
                "{} cannot import thrift (pip install thrift)",
                python.display()
            ));
            return None;
        }
        let dir = TempDir::new("thrift-py");
        let out = Command::new("thrift")
            .args(["--gen", "py", "-out"])
            .arg(&dir.0)
            .arg(idl_path())
            .output()
            .unwrap_or_else(|e| panic!("thrift: {e}"));
        assert!(
            out.status.success(),
            "thrift --gen py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir.write("server.py", SERVER_PY);
        Some(Tools { python, dir })
    }

    fn log(&self, tag: &str) -> PathBuf {
        self.dir.0.join(format!("{tag}.log"))
    }
}

/// A running Python server, killed on drop.
struct PyServer {
    child: Child,
    addr: SocketAddr,
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(t: &Tools, kind: &str, proto: &str, transport: &str, log: &Path) -> PyServer {
    for _ in 0..3 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = Command::new(&t.python)
            .arg(t.dir.0.join("server.py"))
            .arg(&t.dir.0)
            .args([kind, proto, transport, &addr.port().to_string()])
            .arg(log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn python: {e}"));
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                break; // the port was taken, or the script failed: try again
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return PyServer { child, addr };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let out = child.wait_with_output().ok();
        eprintln!(
            "python {kind} server did not start: {}",
            out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default()
        );
    }
    panic!("python {kind}/{proto}/{transport} server did not start");
}

fn config(
    addr: SocketAddr,
    proto: &str,
    transport: &str,
    upstream: &str,
    mux: Option<&str>,
) -> String {
    let idl = std::fs::read_to_string(idl_path()).unwrap();
    let mux = mux.map_or(String::new(), |m| format!("multiplexed_name = \"{m}\""));
    let route = |id: &str, path: &str, method: &str, extra: &str| {
        format!(
            "[[routes]]\nid = \"{id}\"\npaths = [\"{path}\"]\nupstream = \"py\"\nservice = \"test\"\n\
             method = \"{method}\"\n{mux}\n{extra}\n\n"
        )
    };
    let mut text = format!(
        "[[upstreams]]\nid = \"py\"\nprotocol = \"thrift\"\nthrift_protocol = \"{proto}\"\n\
         transport = \"{transport}\"\nread_timeout_ms = 5000\n{upstream}\n\
         nodes = [{{ addr = \"{addr}\" }}]\n\n\
         [[services]]\nid = \"test\"\nfiles = [{{ name = \"gatehouse_test.thrift\", text = '''{idl}''' }}]\n\n"
    );
    text += &route("echo", "/echo", "echo", "");
    text += &route(
        "move",
        "/move/{dx}",
        "move",
        "args = { dy = \"query.dy\", c = \"header.X-Color\" }",
    );
    text += &route(
        "find",
        "/find/{id}",
        "find",
        "exceptions = { NotFound = 404, Denied = 403 }",
    );
    text += &route("fire", "/fire", "fire", "body_arg = \"msg\"");
    text += &route("count", "/count", "count", "body_arg = \"pts\"");
    text += &route("pick", "/pick", "pick", "body_arg = \"c\"");
    text += &route("ping", "/ping", "ping", "");
    text
}

fn post(addr: SocketAddr, path: &str, body: &str, extra: &str) -> Resp {
    roundtrip(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn json_of(r: &Resp) -> Value {
    r.json()
        .unwrap_or_else(|| panic!("{} not JSON: {:?}", r.status, r.body_str()))
}

/// Every type of the mapping (struct keys aside: Python cannot hash generated structs).
fn everything() -> Value {
    json!({
        "b": true, "y": -128, "s16": 32767, "s32": -2147483648,
        "s64": "9007199254740993", "d": 2.5, "str": "h\u{e9}llo \"q\"\n\u{2603}",
        "bin": "AAEC/f7/", "color": "BLUE", "nested": [[1, 2], [], [3]], "tags": ["a"],
        "by_int": {"-2": "minus two", "7": "seven"},
        "by_name": {"k": {"s": "v", "nums": [7, -1]}},
        "choice": {"point": {"x": 0, "y": -1}}, "by_color": {"RED": true, "GREEN": false},
        "by_long": {"9007199254740993": 0.5}, "flags": [true, false, true],
        "by_bool": {"true": "AQ=="}, "child": {"s32": 1, "child": {"d": "Infinity"}}
    })
}

/// The round trips every server must pass.
fn check(addr: SocketAddr, log: &Path, label: &str) {
    let r = post(addr, "/echo", &json!({"a": everything()}).to_string(), "");
    assert_eq!(r.status, 200, "{label}: {}", r.body_str());
    assert_eq!(json_of(&r), everything(), "{label}");
    // Arguments from path, query and a header; the result is a struct.
    let r = post(
        addr,
        "/move/-5?dy=3",
        r#"{"p":{"x":1,"y":2}}"#,
        "X-Color: GREEN\r\n",
    );
    assert_eq!(json_of(&r), json!({"x": -4, "y": 5}), "{label}");
    let r = roundtrip(addr, b"GET /find/10 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(json_of(&r), json!("found 10"), "{label}");
    let r = roundtrip(addr, b"GET /find/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        (r.status, r.header("x-thrift-exception")),
        (404, Some("NotFound")),
        "{label}"
    );
    assert_eq!(
        json_of(&r),
        json!({"what": "no such thing", "id": "1"}),
        "{label}"
    );
    let r = roundtrip(addr, b"GET /find/2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        (r.status, json_of(&r)),
        (403, json!({"why": "not yours"})),
        "{label}"
    );
    let r = roundtrip(addr, b"GET /find/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_gateway_error(&r, 502, "upstream_failed");
    let r = post(addr, "/count", r#"[{"x":1,"y":1},{"x":2,"y":2}]"#, "");
    assert_eq!(json_of(&r), json!("1152921504606846978"), "{label}");
    let r = post(addr, "/pick", r#"{"text":"hi"}"#, "");
    assert_eq!(json_of(&r), json!({"text": "hi"}), "{label}");
    let r = post(addr, "/ping", "", "");
    assert_eq!((r.status, json_of(&r)), (200, Value::Null), "{label}");
    // Oneway: answered once written; the server gets it.
    let r = post(addr, "/fire", r#""launch""#, "");
    assert_eq!(r.status, 202, "{label}");
    let seen = || std::fs::read_to_string(log).unwrap_or_default();
    let end = Instant::now() + Duration::from_secs(5);
    while !seen().contains("fire launch") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen().contains("fire launch"), "{label}: {}", seen());
    // Refused before any call: a missing required field, a union with two members.
    let moves = seen().matches("move").count();
    let r = post(addr, "/move/1", r#"{"p":{"x":1}}"#, "X-Color: RED\r\n");
    assert_gateway_error(&r, 400, "bad_request");
    assert_eq!(json_of(&r)["error"]["field"], "p.y", "{label}");
    let r = post(addr, "/move/1", "{}", "X-Color: RED\r\n");
    assert_eq!(json_of(&r)["error"]["field"], "p", "{label}");
    let r = post(addr, "/pick", r#"{"num":1,"text":"x"}"#, "");
    assert_gateway_error(&r, 400, "bad_request");
    assert_eq!(
        seen().matches("move").count(),
        moves,
        "{label}: a refused call was sent"
    );
}

pub fn matrix() {
    let Some(tools) = Tools::detect() else { return };
    let cases = [
        ("threaded", "binary", "framed"),
        ("threaded", "binary", "buffered"),
        ("threaded", "compact", "framed"),
        ("threaded", "compact", "buffered"),
        ("nonblocking", "binary", "framed"),
        ("nonblocking", "compact", "framed"),
    ];
    for (kind, proto, transport) in cases {
        let label = format!("{kind}/{proto}/{transport}");
        let log = tools.log(&label.replace('/', "-"));
        let py = start_server(&tools, kind, proto, transport, &log);
        let g = Gateway::start(&config(py.addr, proto, transport, "", None));
        check(g.addr, &log, &label);
    }
}

pub fn multiplexed_and_pipelined() {
    let Some(tools) = Tools::detect() else { return };
    // A TMultiplexedProcessor: calls go out as `Test:method`.
    let log = tools.log("multiplexed");
    let py = start_server(&tools, "multiplexed", "compact", "buffered", &log);
    let g = Gateway::start(&config(py.addr, "compact", "buffered", "", Some("Test")));
    check(g.addr, &log, "multiplexed");
    drop(g);
    drop(py);
    // Several calls in flight on one connection to a server that answers them one at a
    // time, in order: 64 concurrent requests, each gets its own answer.
    let log = tools.log("pipelined");
    let py = start_server(&tools, "threaded", "binary", "framed", &log);
    let g = Gateway::start(&config(
        py.addr,
        "binary",
        "framed",
        "max_in_flight = 16\nmax_connections = 1",
        None,
    ));
    let handles: Vec<_> = (10..74)
        .map(|id| {
            let addr = g.addr;
            std::thread::spawn(move || {
                let r = roundtrip(
                    addr,
                    format!("GET /find/{id} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                );
                (id, r)
            })
        })
        .collect();
    for h in handles {
        let (id, r) = h.join().unwrap();
        assert_eq!(json_of(&r), json!(format!("found {id}")));
    }
}

/// The TLS interop test cannot pass vacuously: without its peer it fails.
fn tools_or_fail() -> Tools {
    Tools::detect().unwrap_or_else(|| panic!("TLS to Thrift needs the Python peer (see above)"))
}

/// TLS to a Python `TSSLServerSocket` (threaded, binary, framed): the full round trips with
/// the CA and name configured, calls on one keep-alive client reusing one upstream
/// connection, and an upstream with the wrong CA failing with 502 while the gateway goes on.
pub fn tls() {
    let tools = tools_or_fail();
    let ca = crate::pki::Ca::new("Thrift Test CA");
    let leaf = ca.leaf(&["thrift.test"]);
    tools.dir.write("leaf.pem", &leaf.cert_pem);
    tools.dir.write("leaf.key", &leaf.key_pem);
    let log = tools.log("tls");
    let py = start_server(&tools, "tls", "binary", "framed", &log);
    let good = format!(
        "tls = true\ntls_server_name = \"thrift.test\"\ntls_ca = \"\"\"{}\"\"\"",
        ca.pem
    );
    let other = crate::pki::Ca::new("Other CA");
    let mut text = config(py.addr, "binary", "framed", &good, None);
    text += &format!(
        "[[upstreams]]\nid = \"py-bad-ca\"\nprotocol = \"thrift\"\ntransport = \"framed\"\n\
         tls = true\ntls_server_name = \"thrift.test\"\ntls_ca = \"\"\"{}\"\"\"\n\
         nodes = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nid = \"bad-ca\"\npaths = [\"/bad-ca/{{id}}\"]\nupstream = \"py-bad-ca\"\n\
         service = \"test\"\nmethod = \"find\"\n\n",
        other.pem, py.addr
    );
    let g = Gateway::start(&text);
    check(g.addr, &log, "tls");
    // A call and reply of 600 KB: dozens of TLS records each way, more than a socket buffer
    // takes at once, so encrypted output waits for writable edges.
    let big = json!({"a": {"str": "0123456789abcdef".repeat(600_000 / 16), "tags": ["x"]}});
    let r = post(g.addr, "/echo", &big.to_string(), "");
    assert_eq!(r.status, 200, "{}", r.status);
    assert_eq!(json_of(&r), big["a"]);

    // One keep-alive client stays on one worker: its calls share that worker's connection.
    let accepts = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("accept")
            .count()
    };
    let mut c = Conn::open(g.addr);
    let before = accepts();
    assert!(before >= 1, "the server noted no TLS connection");
    for id in 10..30 {
        c.send(format!("GET /find/{id} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let r = c.read_response().unwrap();
        assert_eq!(json_of(&r), json!(format!("found {id}")));
    }
    assert!(
        accepts() - before <= 1,
        "20 calls opened {} TLS connections",
        accepts() - before
    );

    // A certificate that does not chain to the configured CA: a failed connect (502), the
    // server never sees a call, and the gateway goes on serving the good upstream.
    let finds = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("find 77")
            .count()
    };
    for _ in 0..2 {
        let r = roundtrip(g.addr, b"GET /bad-ca/77 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_gateway_error(&r, 502, "upstream_failed");
    }
    assert_eq!(finds(), 0, "a call went out over an unverified connection");
    c.send(b"GET /find/31 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(json_of(&r), json!("found 31"));
}
