//! The demo HTTP service: a small blocking server (a thread per connection) that stands in
//! for an internal product service. It is a peer of the gateway, not part of the data plane.

use protocols::http1::ChunkedDecoder;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

/// Largest request body the demo service accepts.
const MAX_BODY: usize = 16 << 20;

/// Which demo service a listener plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// The product service behind the routes.
    Products,
    /// An auth check: `X-Session: demo-session` is user bob, anything else is refused (401).
    Auth,
    /// A risk check: `X-Device: emulator` is refused (403), anything else scores 12.
    Risk,
}

/// How long each demo check takes, so a request through both shows they run at once
/// (about this long in all, not twice).
const CHECK_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Starts the service on `addr` (port 0 picks one) and returns the bound address.
pub fn start(addr: SocketAddr) -> io::Result<SocketAddr> {
    start_service(addr, Service::Products)
}

/// Starts one of the demo services.
pub fn start_service(addr: SocketAddr, service: Service) -> io::Result<SocketAddr> {
    let l = TcpListener::bind(addr)?;
    let bound = l.local_addr()?;
    thread::Builder::new()
        .name("demo-http".into())
        .spawn(move || {
            for s in l.incoming().flatten() {
                let _ = thread::Builder::new()
                    .name("demo-conn".into())
                    .spawn(move || {
                        let _ = serve(s, service);
                    });
            }
        })?;
    Ok(bound)
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> io::Result<Option<Req>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let end = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if end && head.len() > line.len() {
            break;
        }
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("head too large"));
        }
    }
    let mut hs = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut hs);
    if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
        return Err(io::Error::other("bad request"));
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(cl) = get("content-length") {
        let n: usize = cl
            .trim()
            .parse()
            .map_err(|_| io::Error::other("bad length"))?;
        if n > MAX_BODY {
            return Err(io::Error::other("body too large"));
        }
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut dec = ChunkedDecoder::new(4096, 16 * 1024);
        while !dec.is_done() {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut off = 0;
            while off < buf.len() && !dec.is_done() {
                let p = dec
                    .feed(&buf[off..])
                    .map_err(|_| io::Error::other("bad chunk"))?;
                body.extend_from_slice(&buf[off + p.data.start..off + p.data.end]);
                off += p.consumed;
                if p.consumed == 0 {
                    break;
                }
            }
            r.consume(off);
            if body.len() > MAX_BODY {
                return Err(io::Error::other("body too large"));
            }
        }
    }
    Ok(Some(Req {
        method: req.method.unwrap_or("GET").to_string(),
        path: req.path.unwrap_or("/").to_string(),
        headers,
        body,
    }))
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn route(req: &Req) -> (u16, String) {
    let path = req.path.split('?').next().unwrap_or("/");
    if let Some(id) = path.strip_prefix("/api/products/") {
        return match id.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => (
                200,
                format!(
                    "{{\"id\":{n},\"name\":\"Product {n}\",\"price_cents\":{},\"in_stock\":true}}",
                    999 + n * 100
                ),
            ),
            _ => (404, "{\"error\":\"no such product\"}".to_string()),
        };
    }
    match path {
        "/api/hello" => (200, "{\"hello\":\"world\"}".to_string()),
        "/api/products" => {
            let items: Vec<String> = (1..=3)
                .map(|n| format!("{{\"id\":{n},\"name\":\"Product {n}\"}}"))
                .collect();
            (200, format!("{{\"items\":[{}]}}", items.join(",")))
        }
        _ => {
            let headers: Vec<String> = req
                .headers
                .iter()
                .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
                .collect();
            (
                200,
                format!(
                    "{{\"method\":{},\"path\":{},\"headers\":{{{}}},\"body_bytes\":{}}}",
                    json_str(&req.method),
                    json_str(&req.path),
                    headers.join(","),
                    req.body.len()
                ),
            )
        }
    }
}

/// The verdict of a demo check service: status and the fields it adds.
fn check(service: Service, req: &Req) -> (u16, Option<(&'static str, &'static str)>) {
    let has = |name: &str, value: &str| req.headers.iter().any(|(k, v)| k == name && v == value);
    match service {
        Service::Auth if has("x-session", "demo-session") => (200, Some(("X-User-Id", "bob"))),
        Service::Auth => (401, None),
        Service::Risk if has("x-device", "emulator") => (403, None),
        _ => (200, Some(("X-Risk-Score", "12"))),
    }
}

fn serve(s: TcpStream, service: Service) -> io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    while let Some(req) = read_request(&mut r)? {
        let mut extra = String::new();
        let (status, body) = if service != Service::Products {
            thread::sleep(CHECK_DELAY);
            let (status, field) = check(service, &req);
            if let Some((k, v)) = field {
                extra = format!("{k}: {v}\r\n");
            }
            (status, String::new())
        } else if req.method == "POST" && req.path.starts_with("/api/echo") {
            (200, String::from_utf8_lossy(&req.body).into_owned())
        } else {
            route(&req)
        };
        let reason = protocols::error::reason(status);
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        w.write_all(head.as_bytes())?;
        if req.method != "HEAD" {
            w.write_all(body.as_bytes())?;
        }
    }
    Ok(())
}
