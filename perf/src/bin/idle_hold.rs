//! `idle_hold`: opens N keep-alive client connections to a proxy, sends one GET on each and
//! reads the whole answer, prints `ready N`, then holds them all idle until its standard input
//! closes (or a signal ends it). `perf/run.sh idle` uses it to measure what an idle keep-alive
//! connection costs a proxy in resident memory, and how the proxy serves load while thousands
//! of them are parked.
//!
//! Why a request on every connection: a proxy that has never seen a request on a connection may
//! keep it in a cheaper pre-request state; one answered request puts every connection in the
//! real "idle keep-alive between requests" state, which is what a fleet of clients produces.
//!
//! Std only plus `libc` (for `setrlimit`: N connections need N descriptors, more than the usual
//! soft limit of 1024). On standard-input EOF it reports how many connections the peer still
//! held open, so a proxy that silently dropped idle connections is caught, not flattered.
//!
//! Usage: `idle_hold ADDR N [--path /100] [--host NAME] [--timeout-ms 5000]`

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// Largest answer head + body the holder accepts on its one request; the harness asks for the
/// 100-byte answer, so this only guards against a proxy that streams without end.
const MAX_ANSWER: usize = 1 << 20;

/// Parsed command line.
#[derive(Debug, PartialEq)]
struct Args {
    addr: SocketAddr,
    count: usize,
    path: String,
    host: String,
    timeout: Duration,
}

fn usage() -> String {
    "usage: idle_hold ADDR N [--path /100] [--host NAME] [--timeout-ms 5000]".to_string()
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut path = "/100".to_string();
    let mut host = "perf".to_string();
    let mut timeout_ms: u64 = 5000;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value; {}", usage()))
        };
        match a.as_str() {
            "--path" => path = value("--path")?,
            "--host" => host = value("--host")?,
            "--timeout-ms" => {
                timeout_ms = value("--timeout-ms")?
                    .parse()
                    .map_err(|e| format!("--timeout-ms: {e}"))?
            }
            _ if a.starts_with("--") => return Err(format!("unknown flag {a}; {}", usage())),
            _ => positional.push(a.clone()),
        }
    }
    let [addr, count] = positional.as_slice() else {
        return Err(usage());
    };
    let addr = addr
        .parse()
        .map_err(|e| format!("ADDR {addr:?}: {e} (want IP:PORT)"))?;
    let count = count
        .parse()
        .map_err(|e| format!("N {count:?}: {e} (want a connection count)"))?;
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ') {
        return Err(format!(
            "--path {path:?} must start with / and hold no spaces"
        ));
    }
    if host.is_empty() || host.bytes().any(|b| b <= b' ') {
        return Err(format!("--host {host:?} must be a non-empty token"));
    }
    Ok(Args {
        addr,
        count,
        path,
        host,
        timeout: Duration::from_millis(timeout_ms.max(1)),
    })
}

/// Raises the soft descriptor limit to `want` (and the hard one too when the process may, i.e.
/// as root). Returns the soft limit in force afterwards.
fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(want);
    }
    // Not allowed past the hard limit: take what the hard limit gives.
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_max)
}

/// Where an HTTP/1.1 answer ends, given the bytes read so far: `Ok(Some(len))` once a whole
/// answer of `len` bytes is in `buf`, `Ok(None)` while more bytes are needed, `Err` when the
/// answer is not one the holder can frame (no length, bad length, not 200).
fn answer_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "answer head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") || code != "200" {
        return Err(format!("expected a 200 answer, got {status:?}"));
    }
    let body_start = head_end + 4;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let len: usize = value
                .parse()
                .map_err(|_| format!("bad content-length {value:?}"))?;
            let total = body_start.saturating_add(len);
            return Ok((buf.len() >= total).then_some(total));
        }
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    if chunked {
        // The holder's request is answered with a small body; spotting the last-chunk marker
        // after the head is enough to know the answer is complete.
        let body = buf.get(body_start..).unwrap_or_default();
        return Ok(body
            .windows(5)
            .position(|w| w == b"0\r\n\r\n")
            .map(|p| body_start + p + 5));
    }
    Err("answer has neither content-length nor chunked encoding".to_string())
}

/// Opens one connection, sends the GET and reads the whole answer into `buf` (reused).
fn open_one(args: &Args, request: &[u8], buf: &mut Vec<u8>) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&args.addr, args.timeout)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    s.set_read_timeout(Some(args.timeout))
        .map_err(|e| format!("timeout: {e}"))?;
    s.set_write_timeout(Some(args.timeout))
        .map_err(|e| format!("timeout: {e}"))?;
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    buf.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("peer closed before the answer was complete".to_string());
        }
        buf.extend_from_slice(&chunk[..n]);
        match answer_len(buf)? {
            Some(len) if len == buf.len() => return Ok(s),
            Some(_) => return Err("peer sent bytes past the answer".to_string()),
            None if buf.len() > MAX_ANSWER => return Err("answer too large".to_string()),
            None => {}
        }
    }
}

/// Counts connections still open: a non-blocking peek that would block means the peer holds
/// the connection; 0 bytes or an error means it closed (or reset) it.
fn count_open(conns: &[TcpStream]) -> (usize, usize) {
    let mut open = 0;
    let mut byte = [0u8; 1];
    for c in conns {
        let alive = c.set_nonblocking(true).is_ok()
            && matches!(c.peek(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
        open += usize::from(alive);
    }
    (open, conns.len() - open)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("idle_hold: {e}");
            return ExitCode::from(2);
        }
    };
    // Each connection is one descriptor; keep a margin for stdio and the runtime.
    let want = args.count as u64 + 64;
    match raise_nofile(want) {
        Ok(have) if have >= want => {}
        Ok(have) => {
            eprintln!(
                "idle_hold: descriptor limit is {have}, need {want}: run `ulimit -n {want}` first"
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!(
                "idle_hold: cannot read or raise RLIMIT_NOFILE ({e}): run `ulimit -n {want}` first"
            );
            return ExitCode::from(2);
        }
    }
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: idle_hold\r\n\r\n",
        args.path, args.host
    );
    let mut conns = Vec::with_capacity(args.count);
    let mut buf = Vec::with_capacity(4096);
    for i in 0..args.count {
        match open_one(&args, request.as_bytes(), &mut buf) {
            Ok(s) => conns.push(s),
            Err(e) => {
                eprintln!("idle_hold: connection {i} of {}: {e}", args.count);
                return ExitCode::from(1);
            }
        }
    }
    println!("ready {}", conns.len());
    let _ = io::stdout().flush();
    // Hold until the caller closes our stdin; the bytes themselves mean nothing.
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    let (open, closed) = count_open(&conns);
    println!("open {open} closed {closed}");
    let _ = io::stdout().flush();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_positional_and_flags() {
        let a = parse_args(&argv("127.0.0.1:8080 9000 --path /4k --timeout-ms 250")).unwrap();
        assert_eq!(a.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(a.count, 9000);
        assert_eq!(a.path, "/4k");
        assert_eq!(a.host, "perf");
        assert_eq!(a.timeout, Duration::from_millis(250));
    }

    #[test]
    fn rejects_bad_command_lines() {
        assert!(parse_args(&argv("127.0.0.1:8080")).is_err());
        assert!(parse_args(&argv("localhost:80 5")).is_err());
        assert!(parse_args(&argv("127.0.0.1:80 many")).is_err());
        assert!(parse_args(&argv("127.0.0.1:80 5 --path nope")).is_err());
        assert!(parse_args(&argv("127.0.0.1:80 5 --path")).is_err());
        assert!(parse_args(&argv("127.0.0.1:80 5 --bogus 1")).is_err());
    }

    #[test]
    fn frames_content_length_answers() {
        let full = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(answer_len(full), Ok(Some(full.len())));
        assert_eq!(answer_len(&full[..full.len() - 1]), Ok(None));
        assert_eq!(answer_len(&full[..10]), Ok(None));
        let lower = b"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n";
        assert_eq!(answer_len(lower), Ok(Some(lower.len())));
    }

    #[test]
    fn frames_chunked_answers() {
        let full = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(answer_len(full), Ok(Some(full.len())));
        assert_eq!(answer_len(&full[..full.len() - 2]), Ok(None));
    }

    #[test]
    fn rejects_unframeable_or_failed_answers() {
        assert!(answer_len(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").is_err());
        assert!(answer_len(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(answer_len(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(answer_len(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn holds_and_counts_real_connections() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for _ in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = [0u8; 512];
                let mut got = 0;
                while !req[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    got += s.read(&mut req[got..]).unwrap();
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
                kept.push(s);
            }
            // Close one of the three: the holder must see exactly one closed.
            kept.pop();
            kept
        });
        let args = parse_args(&argv(&format!("{addr} 3"))).unwrap();
        let mut buf = Vec::new();
        let conns: Vec<TcpStream> = (0..3)
            .map(|_| open_one(&args, b"GET /100 HTTP/1.1\r\nHost: t\r\n\r\n", &mut buf).unwrap())
            .collect();
        let _kept = server.join().unwrap();
        assert_eq!(count_open(&conns), (2, 1));
    }
}
