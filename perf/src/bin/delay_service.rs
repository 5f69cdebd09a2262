//! `delay_service`: a tiny HTTP/1.1 check service that answers every request `200` (empty
//! body, keep-alive) a fixed delay after the request head arrived. `perf/run.sh calls` starts
//! two of them as the `auth_service` and `risk` services, to measure what Gatehouse adds on top
//! of side calls that take a known time.
//!
//! Why not nginx: Debian's nginx-light has no echo module, so it cannot wait before answering.
//! Why not Python: its per-request overhead (~0.1 ms) and scheduling jitter would land in the
//! very figure being measured. One thread per connection, blocking sockets, std plus `libc`:
//! each thread sleeps to its own deadline, so concurrent calls overlap and are answered
//! independently, and the thread sets its timer slack to 1 ns (`PR_SET_TIMERSLACK`) so the
//! sleep overshoots by the scheduler's wake-up latency only, not the default 50 µs slack.
//!
//! The harness also measures this service directly (wrk against it) in the same run, so its
//! real delay, overshoot included, is known and can be told apart from the gateway's share.
//!
//! Usage: `delay_service ADDR --delay-us N [--max-conns 256]`; prints `listening ADDR` once
//! bound, then serves until killed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request head accepted; check requests carry a few forwarded fields only.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body skipped (check calls send none; this bounds a confused client).
const MAX_BODY: usize = 1 << 20;
/// How long a connection may stay silent before its thread gives up on it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Check: ok\r\n\r\n";

/// Parsed command line.
#[derive(Debug, PartialEq)]
struct Args {
    addr: SocketAddr,
    delay: Duration,
    max_conns: usize,
}

fn usage() -> String {
    "usage: delay_service ADDR --delay-us N [--max-conns 256]".to_string()
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut addr = None;
    let mut delay_us = None;
    let mut max_conns = 256usize;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = it
                .next()
                .ok_or_else(|| format!("{name} needs a value; {}", usage()))?;
            v.parse().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match a.as_str() {
            "--delay-us" => delay_us = Some(num("--delay-us")?),
            "--max-conns" => {
                max_conns = usize::try_from(num("--max-conns")?).map_err(|e| e.to_string())?
            }
            _ if a.starts_with("--") => return Err(format!("unknown flag {a}; {}", usage())),
            _ if addr.is_none() => {
                addr = Some(
                    a.parse()
                        .map_err(|e| format!("ADDR {a:?}: {e} (want IP:PORT)"))?,
                )
            }
            _ => return Err(usage()),
        }
    }
    let (Some(addr), Some(delay_us)) = (addr, delay_us) else {
        return Err(usage());
    };
    if delay_us > 60_000_000 {
        return Err("--delay-us must be at most 60 s".to_string());
    }
    if max_conns == 0 {
        return Err("--max-conns must be at least 1".to_string());
    }
    Ok(Args {
        addr,
        delay: Duration::from_micros(delay_us),
        max_conns,
    })
}

/// Where the first request in `buf` ends: `Ok(Some(len))` once its head (and body, by
/// `Content-Length`) is complete, `Ok(None)` while more bytes are needed, `Err` for a request
/// this service will not frame (chunked body, bad or huge length, oversized head).
fn request_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err("request head too large".to_string())
        } else {
            Ok(None)
        };
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "head is not UTF-8")?;
    let mut body = 0usize;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body = value
                .parse()
                .map_err(|_| format!("bad content-length {value:?}"))?;
            if body > MAX_BODY {
                return Err("request body too large".to_string());
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("chunked request bodies are not supported".to_string());
        }
    }
    let total = head_end + 4 + body;
    Ok((buf.len() >= total).then_some(total))
}

/// Sleeps until `deadline`; `thread::sleep` may wake early on some platforms, so loop.
fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(deadline - now);
    }
}

/// Serves one keep-alive connection until the client closes it or breaks the protocol.
fn serve(mut s: TcpStream, delay: Duration) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Serve every complete request already read (pipelined ones too), in order.
        while let Some(len) =
            request_len(&buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
        {
            sleep_until(Instant::now() + delay);
            s.write_all(ANSWER)?;
            buf.drain(..len);
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("delay_service: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(args.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("delay_service: bind {}: {e}", args.addr);
            return ExitCode::from(1);
        }
    };
    println!("listening {}", args.addr);
    let _ = io::stdout().flush();
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(s) = conn else { continue };
        // Bounded threads: past max_conns a new connection is closed at once.
        if live.load(Ordering::Relaxed) >= args.max_conns {
            continue;
        }
        live.fetch_add(1, Ordering::Relaxed);
        let live = Arc::clone(&live);
        let delay = args.delay;
        let spawned = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let _ = serve(s, delay);
                live.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            eprintln!("delay_service: spawn: {e}");
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_and_rejects_command_lines() {
        let a = parse_args(&argv("127.0.0.1:9000 --delay-us 5000")).unwrap();
        assert_eq!(a.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(a.delay, Duration::from_millis(5));
        assert_eq!(a.max_conns, 256);
        assert_eq!(
            parse_args(&argv("127.0.0.1:9 --max-conns 3 --delay-us 0"))
                .unwrap()
                .max_conns,
            3
        );
        for bad in [
            "127.0.0.1:9000",
            "--delay-us 5",
            "host:9 --delay-us 5",
            "127.0.0.1:9 --delay-us x",
            "127.0.0.1:9 --delay-us 5 --max-conns 0",
            "127.0.0.1:9 --delay-us 99000000",
            "127.0.0.1:9 127.0.0.1:10 --delay-us 5",
            "127.0.0.1:9 --delay-us 5 --what 1",
        ] {
            assert!(parse_args(&argv(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_requests() {
        let get = b"GET /check HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(request_len(get), Ok(Some(get.len())));
        assert_eq!(request_len(&get[..get.len() - 1]), Ok(None));
        let post = b"POST /c HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET";
        assert_eq!(request_len(post), Ok(Some(post.len() - 3)));
        assert_eq!(request_len(&post[..post.len() - 4]), Ok(None));
        assert!(request_len(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(request_len(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").is_err());
        assert!(request_len(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn answers_after_the_delay_and_keeps_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let delay = Duration::from_millis(30);
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let _ = serve(s, delay);
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for _ in 0..2 {
            let t0 = Instant::now();
            c.write_all(b"GET /check HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 256];
            while got.len() < ANSWER.len() {
                let n = c.read(&mut chunk).unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(got, ANSWER);
            assert!(t0.elapsed() >= delay, "answered after {:?}", t0.elapsed());
        }
    }
}
