//! The real `gatehouse` process under test: locating (or building) the binary, writing a
//! config with free loopback ports, starting `gatehouse run`, waiting until it accepts, and
//! making sure it is gone when the test ends (SIGTERM, then SIGKILL after a bound).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a gateway may take to accept connections after spawn.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping gateway may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Path of the `gatehouse` binary: `GATEHOUSE_BIN`, else next to the test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/gatehouse`), built once if missing.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("GATEHOUSE_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()))
            .to_path_buf();
        let path = profile_dir.join("gatehouse");
        if !path.exists() {
            build(&profile_dir);
        }
        assert!(path.exists(), "no gatehouse binary at {}", path.display());
        path
    })
}

/// `cargo build -p access --bin gatehouse` into the same target dir as the tests.
fn build(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "access", "--bin", "gatehouse"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let st = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo build: {e}"));
    assert!(st.success(), "cargo build -p access failed: {st}");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr().map(|a| a.port()).unwrap_or(0)
}

/// A fresh directory under the system temp dir, removed by [`TempDir`]'s drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "gatehouse-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        TempDir(p)
    }

    /// Writes `text` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `gatehouse run`.
pub struct Gateway {
    child: Child,
    /// The data-plane listener.
    pub addr: SocketAddr,
    /// The admin listener (when the config used `{admin}` or got the generated table).
    pub admin: SocketAddr,
    pub dir: TempDir,
    /// What `{state_dir}` stood for (an upgraded process keeps its predecessor's).
    state_dir: PathBuf,
    exit: Option<ExitStatus>,
}

impl Gateway {
    /// Starts a gateway; panics (with its stderr) if it does not come up.
    ///
    /// `config` is TOML in which `{listen}` and `{admin}` are replaced by free loopback
    /// addresses and `{state_dir}` by a temp dir. A config without a `[server]` table gets
    /// one (one worker, `{listen}`, a short drain) and an `[admin]` table on a free port.
    pub fn start(config: &str) -> Gateway {
        let mut last = String::new();
        // A free port can be taken by someone else between the probe and the bind: retry.
        for _ in 0..3 {
            match Gateway::try_start(config) {
                Ok(g) => return g,
                Err(e) if e.contains("cannot listen") => last = e,
                Err(e) => panic!("gateway did not start: {e}"),
            }
        }
        panic!("gateway did not start: {last}")
    }

    /// Like [`Gateway::start`], returning the failure text instead of panicking.
    pub fn try_start(config: &str) -> Result<Gateway, String> {
        let mut g = Gateway::spawn(config)?;
        g.wait_accepting()?;
        // The listeners accept (kernel side) before the workers poll; a short pause keeps
        // every test from landing in a worker's first millisecond, whose clock reads 0
        // (see limits.rs, `a_head_arriving_in_the_first_millisecond_still_times_out`).
        std::thread::sleep(Duration::from_millis(10));
        Ok(g)
    }

    /// Writes the config (see [`Gateway::start`]) and spawns `gatehouse run`, without
    /// waiting for anything.
    pub fn spawn(config: &str) -> Result<Gateway, String> {
        let dir = TempDir::new("gw");
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut text = String::new();
        if !config.contains("[server]") {
            text.push_str(
                "[server]\nworkers = 1\nlisten = [\"{listen}\"]\nstate_dir = \"{state_dir}\"\n\
                 drain_timeout_ms = 5000\n\n",
            );
        }
        if !config.contains("[admin]") {
            text.push_str("[admin]\nlisten = \"{admin}\"\n\n");
        }
        text.push_str(config);
        let text = text
            .replace("{listen}", &listen.to_string())
            .replace("{admin}", &admin.to_string())
            .replace("{state_dir}", &dir.0.join("state").display().to_string());
        let state_dir = dir.0.join("state");
        Gateway::launch("run", dir, &text, listen, admin, state_dir)
    }

    /// Spawns `gatehouse upgrade` with `config` (placeholders as in [`Gateway::start`],
    /// filled with this gateway's addresses and state dir), without waiting. The new
    /// process's config and stderr live in a temp dir of its own.
    pub fn spawn_upgrade(&self, config: &str) -> Result<Gateway, String> {
        let dir = TempDir::new("gw-up");
        let text = config
            .replace("{listen}", &self.addr.to_string())
            .replace("{admin}", &self.admin.to_string())
            .replace("{state_dir}", &self.state_dir.display().to_string());
        Gateway::launch(
            "upgrade",
            dir,
            &text,
            self.addr,
            self.admin,
            self.state_dir.clone(),
        )
    }

    /// Writes `text` as the config in `dir` and spawns `gatehouse COMMAND --config` on it,
    /// its stdout and stderr into files of `dir`.
    fn launch(
        command: &str,
        dir: TempDir,
        text: &str,
        addr: SocketAddr,
        admin: SocketAddr,
        state_dir: PathBuf,
    ) -> Result<Gateway, String> {
        let cfg = dir.write("gatehouse.toml", text);
        let log = std::fs::File::create(dir.0.join("stderr.log")).map_err(|e| e.to_string())?;
        let out = std::fs::File::create(dir.0.join("stdout.log")).map_err(|e| e.to_string())?;
        let child = Command::new(bin())
            .arg(command)
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin().display()))?;
        Ok(Gateway {
            child,
            addr,
            admin,
            dir,
            state_dir,
            exit: None,
        })
    }

    /// Waits (bounded) until this process (the new side of an upgrade) serves the admin API,
    /// the handover's last step; `Err` with its stderr if it exits first.
    pub fn wait_upgraded(&mut self) -> Result<(), String> {
        let end = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exit = Some(st);
                return Err(format!("exited with {st}; stderr: {}", self.stderr()));
            }
            if self.stderr().contains("admin API on") {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(format!(
                    "no handover after {START_TIMEOUT:?}: {}",
                    self.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The exit status, once the process has exited (see [`Gateway::wait_exit`]).
    pub fn exited(&self) -> Option<ExitStatus> {
        self.exit
    }

    /// Waits (bounded) until the data-plane port accepts a connection, and returns it.
    pub fn first_connection(&mut self) -> Result<TcpStream, String> {
        let end = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exit = Some(st);
                let cfg = std::fs::read_to_string(self.dir.0.join("gatehouse.toml"));
                return Err(format!(
                    "exited with {st} before listening; stderr: {}\nconfig:\n{}",
                    self.stderr(),
                    cfg.unwrap_or_default()
                ));
            }
            // Only once this gateway says it listens: before that, the port can answer for
            // someone else (a concurrent test that drew the same free port, or a TCP
            // self-connect, which loopback allows when the source port equals the target).
            if self
                .stderr()
                .contains(&format!("serving HTTP on {}", self.addr))
            {
                if let Ok(s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)) {
                    if s.local_addr().ok() != Some(self.addr) {
                        return Ok(s);
                    }
                }
            }
            if Instant::now() > end {
                return Err(format!(
                    "not accepting on {} after {START_TIMEOUT:?}; stderr: {}",
                    self.addr,
                    self.stderr()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (bounded) until the data-plane port accepts connections.
    pub fn wait_accepting(&mut self) -> Result<(), String> {
        self.first_connection().map(drop)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    /// A `/proc/PID/status` field in KiB (`"VmRSS"`, `"VmHWM"`), if the process runs.
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS")
    }

    pub fn hwm_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM")
    }

    /// Sends `sig` to the gateway (not to anything else).
    pub fn signal(&self, sig: i32) {
        if self.exit.is_none() {
            // SAFETY: kill(2) on the pid of our own child, which is not reaped yet.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, sig);
            }
        }
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits up to `t` for the process to exit.
    pub fn wait_exit(&mut self, t: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let end = Instant::now() + t;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exit = Some(st);
                return self.exit;
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.sigterm();
            if self.wait_exit(STOP_TIMEOUT).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- gateway stderr ---\n{}", self.stderr());
        }
    }
}

/// Runs `gatehouse ARGS` to completion (killed after `t`); returns its output.
pub fn run_cmd(args: &[&str], t: Duration) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn gatehouse: {e}"));
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let end = Instant::now() + t;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let st = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
            panic!("gatehouse {args:?} did not finish within {t:?} ({st})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}
