//! Heap allocations per proxied request, counted by a global allocator around a real worker
//! proxying over loopback to a real backend. The client and backend threads below are
//! written to allocate nothing once warm, so what the counter sees is the data plane's.
//!
//! Run with `cargo test -p access --release --test alloc -- --nocapture` to see the figure.

use business::Snapshot;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BODY: &[u8] = b"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789";

/// A keep-alive backend answering every GET with the same 100-byte body, from fixed buffers.
fn backend(l: TcpListener) {
    let mut head = [0u8; 128];
    let n = {
        let mut cur = std::io::Cursor::new(&mut head[..]);
        write!(
            cur,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n",
            BODY.len()
        )
        .unwrap();
        cur.position() as usize
    };
    for s in l.incoming() {
        let Ok(mut s) = s else { return };
        let _ = s.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut have = 0;
            loop {
                match s.read(&mut buf[have..]) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => have += k,
                }
                while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    if s.write_all(&head[..n])
                        .and_then(|_| s.write_all(BODY))
                        .is_err()
                    {
                        return;
                    }
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                }
            }
        });
    }
}

/// Reads one response of exactly `len` bytes (known after the first).
fn read_exact_len(s: &mut TcpStream, buf: &mut [u8], len: usize) {
    s.read_exact(&mut buf[..len]).unwrap();
}

/// Proxies `n` requests after a warm-up through a one-worker gateway whose config ends with
/// `extra` (and the access logger it asks for); returns the heap allocations they cost.
fn allocations_for(up: std::net::SocketAddr, extra: &str, n: usize) -> u64 {
    let cfg = format!(
        "[server]\nworkers = 1\nlisten = [\"127.0.0.1:0\"]\n\
         [[upstreams]]\nid = \"u\"\nnodes = [{{ addr = \"{up}\" }}]\n\
         [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n{extra}"
    );
    let snap = Snapshot::build(conf::Config::from_toml_str(&cfg).unwrap(), 1).unwrap();
    let log_cfg = snap.config.log.clone();
    let srv = access::server::Server::start(snap).unwrap();
    let logger = access::access_log::Logger::start(&log_cfg).unwrap();
    let gw = srv.addrs[0];

    let mut c = TcpStream::connect(gw).unwrap();
    c.set_nodelay(true).unwrap();
    let req = b"GET /item?id=7 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n";
    // Learn the answer's length from the first one.
    c.write_all(req).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut have = 0;
    let total = loop {
        have += c.read(&mut buf[have..]).unwrap();
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            if have >= end + 4 + BODY.len() {
                break end + 4 + BODY.len();
            }
        }
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&buf[..have])
    );
    let run = |c: &mut TcpStream, buf: &mut [u8], n: usize| {
        for _ in 0..n {
            c.write_all(req).unwrap();
            read_exact_len(c, buf, total);
        }
    };
    run(&mut c, &mut buf, 2000); // warm-up: pools, free lists and slab slots reach their size
    let before = ALLOCS.load(Ordering::Relaxed);
    run(&mut c, &mut buf, n);
    // The logger thread formats and writes behind the requests: let it catch up so its
    // work is inside the measured window.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    drop(c);
    srv.stop();
    if let Some(l) = logger {
        l.stop();
    }
    allocs
}

#[test]
fn proxied_requests_do_not_allocate() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    std::thread::spawn(move || backend(l));
    let n = 20_000;
    let allocs = allocations_for(up, "", n);
    eprintln!(
        "heap allocations per proxied request: {:.4} ({allocs} over {n})",
        allocs as f64 / n as f64
    );
    assert_eq!(allocs, 0, "the request path allocated");

    // With the access log on, the worker's push and the logger thread's formatting and
    // file writes allocate nothing either (the counter sees every thread).
    let dir = std::env::temp_dir().join(format!("gh-alloc-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    let extra = format!(
        "[log]\naccess = \"file\"\npath = \"{}\"\nmax_bytes = 0\n",
        path.display()
    );
    let allocs = allocations_for(up, &extra, n);
    eprintln!(
        "heap allocations per proxied request with the access log on: {:.4} ({allocs} over {n})",
        allocs as f64 / n as f64
    );
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(lines, 1 + 2000 + n, "one line per request");
    assert_eq!(allocs, 0, "the request path or the logger allocated");
}
