//! The demo Thrift product service, written with our own `protocols::thrift`: a small
//! blocking server (a thread per connection, and a thread per call so that several calls
//! on one connection are answered as each finishes, in any order). It is a peer of the
//! gateway standing in for an internal RPC service, not part of the data plane.
//!
//! Binary protocol, framed transport. Method names may carry a multiplexing prefix
//! (`ProductService:getProduct`), which it ignores. Calls are turned into JSON with
//! `args_to_json` and answered with `encode_json_reply`, so the demo needs no generated
//! code.

use parking_lot::Mutex;
use protocols::thrift::codec::{self, Limits, MessageType, Protocol, Transport};
use protocols::thrift::idl::{Idl, IdlLimits, Method};
use protocols::thrift::json::{args_to_json, encode_json_reply, MappingPolicy};
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

/// The IDL the demo service implements; the demo config uploads it as a `[[services]]` file.
pub const IDL: &str = r#"namespace py demo_products

enum Category { BOOKS = 1, GAMES = 2, TOOLS = 3 }

struct Product {
  1: required i64 id,
  2: required string name,
  3: optional Category category,
  4: optional double price,
  5: optional list<string> tags,
  6: optional binary thumbnail,
}

exception NotFound { 1: i64 id, 2: string message }
exception InvalidProduct { 1: string field, 2: string message }

service ProductService {
  Product getProduct(1: i64 id) throws (1: NotFound notFound),
  list<Product> listProducts(1: optional Category category, 2: optional i32 limit),
  Product createProduct(1: Product product) throws (1: InvalidProduct invalid),
  oneway void recordView(1: i64 id),
}
"#;

/// Largest call the demo accepts.
const MAX_FRAME: usize = 1 << 20;

/// Starts the service on `addr` (port 0 picks one) and returns the bound address.
pub fn start(addr: SocketAddr) -> io::Result<SocketAddr> {
    let idl = Idl::build(
        &[("products.thrift".to_string(), IDL.to_string())],
        "products.thrift",
        &IdlLimits::default(),
    )
    .map_err(|e| io::Error::other(e.to_string()))?;
    let l = TcpListener::bind(addr)?;
    let bound = l.local_addr()?;
    thread::Builder::new()
        .name("demo-thrift".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                let idl = idl.clone();
                let _ = thread::Builder::new()
                    .name("demo-thrift-conn".into())
                    .spawn(move || {
                        let _ = serve(s, idl);
                    });
            }
        })?;
    Ok(bound)
}

fn policy() -> MappingPolicy {
    MappingPolicy {
        limits: Limits {
            max_frame: MAX_FRAME,
            ..Limits::default()
        },
        ..MappingPolicy::default()
    }
}

/// Reads framed calls and answers each on its own thread; replies share the socket.
fn serve(mut s: TcpStream, idl: Arc<Idl>) -> io::Result<()> {
    let _ = s.set_nodelay(true);
    let writer = Arc::new(Mutex::new(s.try_clone()?));
    loop {
        let mut prefix = [0u8; 4];
        s.read_exact(&mut prefix)?;
        let len = i32::from_be_bytes(prefix);
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= MAX_FRAME)
            .ok_or_else(|| io::Error::other("bad frame length"))?;
        let mut call = vec![0u8; len];
        s.read_exact(&mut call)?;
        let (idl, writer) = (idl.clone(), writer.clone());
        thread::spawn(move || {
            if let Some(reply) = answer(&idl, &call) {
                let _ = writer.lock().write_all(&reply);
            }
        });
    }
}

/// The framed reply to one call (`None` for oneway calls and unreadable ones).
fn answer(idl: &Idl, call: &[u8]) -> Option<Vec<u8>> {
    let h = codec::read_message_header(
        Protocol::Binary,
        Transport::Buffered,
        call,
        &policy().limits,
    )
    .ok()?;
    let name = std::str::from_utf8(call.get(h.name.clone())?).ok()?;
    let plain = name.rsplit(':').next().unwrap_or(name);
    let service = idl.service("ProductService")?;
    let Some(method) = service.method(plain) else {
        return Some(app_exception(name, h.seqid, "unknown method"));
    };
    let mut args = Vec::new();
    args_to_json(idl, method, Protocol::Binary, call, &policy(), &mut args).ok()?;
    let args: Value = serde_json::from_slice(&args).ok()?;
    let (exception, result) = run(plain, &args);
    if h.mtype == MessageType::Oneway {
        return None;
    }
    Some(reply(idl, method, h.seqid, exception, &result))
}

/// The service itself: a fixed catalogue (product 7 exists; 404 for others), listing and
/// creation with a check of the name.
fn run(method: &str, args: &Value) -> (Option<&'static str>, Value) {
    let catalogue = [
        json!({"id": "7", "name": "Thrift in Action", "category": "BOOKS", "price": 39.5,
               "tags": ["rpc", "idl"], "thumbnail": "aGVsbG8="}),
        json!({"id": "8", "name": "Gatehouse Keeper", "category": "GAMES", "price": 12.0}),
        json!({"id": "9007199254740993", "name": "Big-id Spanner", "category": "TOOLS"}),
    ];
    match method {
        "getProduct" => {
            let id = args["id"].as_str().unwrap_or("0");
            match catalogue.iter().find(|p| p["id"] == id) {
                Some(p) => (None, p.clone()),
                None => (
                    Some("notFound"),
                    json!({"id": id, "message": format!("no product {id}")}),
                ),
            }
        }
        "listProducts" => {
            let limit = args["limit"].as_i64().unwrap_or(50).max(0) as usize;
            let list: Vec<Value> = catalogue
                .iter()
                .filter(|p| args["category"].is_null() || p["category"] == args["category"])
                .take(limit)
                .cloned()
                .collect();
            (None, Value::Array(list))
        }
        "createProduct" => {
            let p = &args["product"];
            if p["name"].as_str().is_none_or(|n| n.trim().is_empty()) {
                return (
                    Some("invalid"),
                    json!({"field": "name", "message": "a product needs a name"}),
                );
            }
            (None, p.clone())
        }
        _ => (None, Value::Null), // recordView: oneway, nothing to answer
    }
}

fn reply(
    idl: &Idl,
    method: &Method,
    seqid: i32,
    exception: Option<&str>,
    result: &Value,
) -> Vec<u8> {
    let mut out = Vec::new();
    let json = result.to_string();
    let written = encode_json_reply(
        idl,
        method,
        seqid,
        exception,
        json.as_bytes(),
        &policy(),
        Protocol::Binary,
        Transport::Framed,
        &mut out,
    );
    match written {
        Ok(()) => out,
        Err(e) => app_exception(&method.name, seqid, &e.to_string()),
    }
}

/// A TApplicationException (type 6, internal error) with `message`.
fn app_exception(name: &str, seqid: i32, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = codec::encode_message::<protocols::thrift::ThriftError>(
        Protocol::Binary,
        Transport::Framed,
        name,
        MessageType::Exception,
        seqid,
        &policy().limits,
        &mut out,
        |w| {
            let s = w.struct_begin();
            w.field_begin(codec::TType::String, 1);
            w.binary(message.as_bytes())?;
            w.field_begin(codec::TType::I32, 2);
            w.i32(6);
            w.struct_end(s);
            Ok(())
        },
    );
    out
}

/// The demo config's Thrift part: the service's IDL, its upstream (several calls in flight
/// per connection: this server answers them concurrently) and the routes exposing it as JSON.
pub fn config(addr: SocketAddr) -> String {
    format!(
        r#"
# The Thrift product service, exposed as JSON under /rpc (docs/thrift.md).
[[upstreams]]
id = "products-rpc"
protocol = "thrift"
thrift_protocol = "binary"
transport = "framed"
max_in_flight = 8
max_connections = 2
read_timeout_ms = 5000
nodes = [{{ addr = "{addr}" }}]

[[services]]
id = "products-idl"
files = [{{ name = "products.thrift", text = '''
{IDL}''' }}]

[[routes]]
id = "rpc-get-product"
paths = ["/rpc/products/{{id}}"]
methods = ["GET"]
upstream = "products-rpc"
service = "products-idl"
method = "getProduct"
exceptions = {{ NotFound = 404 }}

[[routes]]
id = "rpc-list-products"
paths = ["/rpc/products"]
methods = ["GET"]
upstream = "products-rpc"
service = "products-idl"
method = "listProducts"
args = {{ category = "query.category", limit = "query.limit" }}

[[routes]]
id = "rpc-create-product"
paths = ["/rpc/products"]
methods = ["POST"]
upstream = "products-rpc"
service = "products-idl"
method = "ProductService.createProduct"
multiplexed_name = "ProductService"
body_arg = "product"
exceptions = {{ InvalidProduct = 422 }}

[[routes]]
id = "rpc-record-view"
paths = ["/rpc/products/{{id}}/views"]
methods = ["POST"]
upstream = "products-rpc"
service = "products-idl"
method = "recordView"
"#
    )
}

/// Banner lines for the Thrift routes (the same lines are in docs/thrift.md).
pub fn curl_lines(listen: SocketAddr) -> String {
    format!(
        "Thrift product service as JSON:\n  \
         curl -i http://{listen}/rpc/products/7\n  \
         curl -i 'http://{listen}/rpc/products?category=BOOKS&limit=5'\n  \
         curl -i -X POST -H 'Content-Type: application/json' -d '{{\"id\":\"42\",\"name\":\"Lamp\",\"category\":\"TOOLS\",\"price\":9.5}}' http://{listen}/rpc/products\n  \
         curl -i -X POST http://{listen}/rpc/products/7/views   # oneway: 202\n  \
         [404 NotFound]       curl -i http://{listen}/rpc/products/1\n  \
         [422 InvalidProduct] curl -i -X POST -d '{{\"id\":1,\"name\":\" \"}}' http://{listen}/rpc/products\n  \
         [400 missing field]  curl -i -X POST -d '{{\"name\":\"Lamp\"}}' http://{listen}/rpc/products\n"
    )
}
