//! `gatehouse`: the command line of CONTRACT.md (`run`, `check`, `demo`, `--version`) and
//! `upgrade` (docs/upgrade.md).

use access::handover::{self, Taken, Verdict};
use access::{access_log, admin, demo, server};
use business::Snapshot;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse API gateway",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve until SIGINT/SIGTERM (graceful: stop accepting, finish in-flight, exit 0).
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Take over from the gateway running with the same `server.state_dir` without dropping
    /// a connection, then serve like `run` (docs/upgrade.md).
    Upgrade {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config: exit 0, or 2 with one `path: problem` line per problem.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start the gateway with its own demo backends on loopback.
    Demo {
        /// Address of the gateway's HTTP listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address of the admin API (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:9180")]
        admin: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check { config } => match conf::load(&config) {
            Ok(c) => match Snapshot::build(c, 0) {
                Ok(_) => {
                    println!("{}: ok", config.display());
                    ExitCode::SUCCESS
                }
                Err(errors) => report(&errors),
            },
            Err(errors) => report(&errors),
        },
        Command::Run { config } => match conf::load(&config) {
            Ok(c) => serve(c, Some(config), None, None),
            Err(errors) => report(&errors),
        },
        Command::Upgrade { config } => upgrade(&config),
        Command::Demo { listen, admin } => {
            let dir = std::env::temp_dir().join(format!("gatehouse-demo-{}", std::process::id()));
            let text = match demo::prepare(listen, admin, &dir.display().to_string()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("gatehouse: cannot start the demo backends: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match conf::Config::from_toml_str(&text) {
                Ok(c) => serve(c, None, Some(demo::banner(listen)), None),
                Err(errors) => report(&errors),
            }
        }
    }
}

fn report(errors: &[conf::ConfigError]) -> ExitCode {
    for e in errors {
        eprintln!("{e}");
    }
    ExitCode::from(2)
}

/// `gatehouse upgrade`: a config that does not validate is refused before the running
/// process is even asked, so it never pauses for nothing.
fn upgrade(path: &Path) -> ExitCode {
    let c = match conf::load(path) {
        Ok(c) => c,
        Err(errors) => return report(&errors),
    };
    if let Err(errors) = Snapshot::build(c.clone(), 0) {
        return report(&errors);
    }
    let sock = handover::socket_path(&c.server.state_dir);
    let timeout = Duration::from_millis(c.server.upgrade_timeout_ms);
    match handover::take_over(&sock, timeout) {
        Ok(t) => {
            eprintln!(
                "gatehouse: upgrade: taking over from pid {} ({} listening sockets)",
                t.old_pid,
                t.data.len()
            );
            serve(c, Some(path.to_path_buf()), None, Some(t))
        }
        Err(e) => {
            eprintln!("gatehouse: upgrade: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `serve`'s main thread waits for.
enum Event {
    /// SIGINT or SIGTERM: stop.
    Signal(i32),
    /// SIGUSR2: start `gatehouse upgrade` with the same binary path and config file.
    Upgrade,
    /// An upgrade committed: a new process serves; drain and exit.
    HandedOver,
}

/// Serves until a signal or an upgrade; `taken` is what a running process passed over when
/// this one is the new side of an upgrade (any failure before `ready` is told to it, so it
/// goes on serving). `file` is the config file, for SIGUSR2 (`None`: the demo, which has
/// none, ignores SIGUSR2).
fn serve(
    config: conf::Config,
    file: Option<PathBuf>,
    banner: Option<String>,
    mut taken: Option<Taken>,
) -> ExitCode {
    // The path as started, before anyone replaces the file: SIGUSR2 runs what is there then.
    let exe = std::env::current_exe().ok();
    let (lock, admin_l, data, control) = match taken.as_mut() {
        Some(t) => (
            t.lock.take(),
            t.admin.take(),
            std::mem::take(&mut t.data),
            t.control.take(),
        ),
        None => (None, None, Vec::new(), None),
    };
    let fail = |why: &str| {
        if let Some(t) = &taken {
            t.abort(why);
        }
    };
    let state_dir = config.server.state_dir.clone();
    let upgrade_timeout = Duration::from_millis(config.server.upgrade_timeout_ms);
    // The store is joined with the file before anything listens (docs/admin.md).
    let boot = match admin::Boot::prepare_adopting(config, lock, admin_l) {
        Ok(b) => b,
        Err(admin::BootError::Invalid(context, errors)) => {
            fail("the config does not validate with the stored resources");
            if !context.is_empty() {
                eprintln!("{context}");
            }
            return report(&errors);
        }
        Err(admin::BootError::Failed(msg)) => {
            fail(&msg);
            eprintln!("gatehouse: {msg}");
            return ExitCode::FAILURE;
        }
    };
    for note in boot.notes() {
        eprintln!("gatehouse: {note}");
    }
    let snap = boot.snapshot();
    let signals = match server::catch_signals() {
        Ok(s) => s,
        Err(e) => {
            fail("cannot take over signals");
            eprintln!("gatehouse: cannot take over SIGINT/SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log_cfg = snap.config.log.clone();
    let srv = match server::Server::start_with(snap, data) {
        Ok(s) => s,
        Err(e) => {
            fail(&e.to_string());
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    for a in &srv.addrs {
        eprintln!("gatehouse: serving HTTP on {a}");
    }
    for a in &srv.tls_addrs {
        eprintln!("gatehouse: serving HTTPS on {a}");
    }
    // After the server: the workers registered their queues as they started, and lines
    // they queue before the logger runs wait for it.
    let logger = match access_log::Logger::start(&log_cfg) {
        Ok(l) => l,
        Err(e) => {
            fail("cannot start the access log");
            eprintln!("gatehouse: cannot start the access log: {e}");
            srv.stop();
            return ExitCode::FAILURE;
        }
    };
    let stop_logger = |logger: Option<access_log::Logger>| {
        // The workers are gone: the logger writes out what they queued, then ends.
        if let Some(l) = logger {
            l.stop();
        }
    };
    if let Some(t) = &taken {
        // Until the old process commits, only the data plane runs here: an admin change
        // made now would be lost if it gave up.
        match t.ready() {
            Ok(Verdict::Committed) => {
                eprintln!(
                    "gatehouse: upgrade: pid {} hands over and drains",
                    t.old_pid
                )
            }
            Ok(Verdict::OldGone) => eprintln!(
                "gatehouse: upgrade: pid {} went away mid-handover; serving alone",
                t.old_pid
            ),
            Err(e) => {
                eprintln!("gatehouse: upgrade: pid {} serves on: {e}", t.old_pid);
                srv.stop();
                stop_logger(logger);
                return ExitCode::FAILURE;
            }
        }
    }
    let publisher = srv.publisher();
    let admin = match boot.start(Box::new(move |s, t| publisher.publish(s, t))) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("gatehouse: cannot start the admin API: {e}");
            srv.stop();
            return ExitCode::FAILURE;
        }
    };
    eprintln!("gatehouse: admin API on http://{}", admin.addr());
    let (tx, rx) = std::sync::mpsc::channel();
    forward_signals(signals, tx.clone());
    start_control(&srv, &admin, control, &state_dir, upgrade_timeout, tx);
    if let Some(b) = banner {
        println!("{b}");
    }
    loop {
        match rx.recv() {
            Ok(Event::Upgrade) => {
                if let (Some(exe), Some(file)) = (&exe, &file) {
                    start_upgrade(exe, file);
                } else {
                    eprintln!("gatehouse: SIGUSR2 ignored: no config file to upgrade with");
                }
            }
            Ok(Event::HandedOver) => {
                srv.drain();
                break;
            }
            Ok(Event::Signal(sig)) => {
                eprintln!("gatehouse: signal {sig}: draining");
                admin.stop();
                srv.stop();
                break;
            }
            Err(_) => {
                admin.stop();
                srv.stop();
                break;
            }
        }
    }
    stop_logger(logger);
    eprintln!("gatehouse: stopped");
    ExitCode::SUCCESS
}

/// Sends the signals to `serve`'s wait: SIGUSR2 as often as it comes, then the stop.
fn forward_signals(
    mut signals: signal_hook::iterator::Signals,
    tx: std::sync::mpsc::Sender<Event>,
) {
    let spawned = std::thread::Builder::new()
        .name("gatehouse-signals".into())
        .spawn(move || loop {
            let sig = server::wait_for_signal(&mut signals);
            if sig == signal_hook::consts::SIGUSR2 {
                let _ = tx.send(Event::Upgrade);
                continue;
            }
            let _ = tx.send(Event::Signal(sig));
            return;
        });
    if let Err(e) = spawned {
        eprintln!("gatehouse: cannot start the signal thread: {e}");
    }
}

/// SIGUSR2: runs `EXE upgrade --config FILE` (the binary now at the path this process was
/// started from) with this process's stdout and stderr. Its exit is logged when it fails;
/// when it succeeds, this process drains and exits through the control socket as usual.
fn start_upgrade(exe: &Path, file: &Path) {
    let child = std::process::Command::new(exe)
        .arg("upgrade")
        .arg("--config")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gatehouse: SIGUSR2: cannot start {}: {e}", exe.display());
            return;
        }
    };
    let pid = child.id();
    eprintln!(
        "gatehouse: SIGUSR2: started {} upgrade (pid {pid})",
        exe.display()
    );
    // Reaps it if it fails (it then exits while this process still runs).
    let waiter = std::thread::Builder::new()
        .name("gatehouse-upgrader".into())
        .spawn(move || match child.wait() {
            Ok(st) if !st.success() => {
                eprintln!("gatehouse: SIGUSR2: upgrade by pid {pid} failed ({st}); serving on")
            }
            _ => {}
        });
    if let Err(e) = waiter {
        eprintln!("gatehouse: SIGUSR2: cannot watch pid {pid}: {e}");
    }
}

/// Listens for upgrades on the control socket (passed over, or bound at
/// `<state_dir>/upgrade.sock`). Without it the gateway still serves; it only cannot be
/// upgraded, which the log says.
fn start_control(
    srv: &server::Server,
    admin: &Arc<admin::AdminServer>,
    passed: Option<std::os::fd::OwnedFd>,
    state_dir: &Path,
    timeout: Duration,
    tx: std::sync::mpsc::Sender<Event>,
) {
    let path = handover::socket_path(state_dir);
    let started = handover::control_listener(passed, &path).and_then(|listener| {
        let data = srv.handover_listeners();
        let admin = admin.clone();
        std::thread::Builder::new()
            .name("gatehouse-upgrade".into())
            .spawn(move || {
                let offer = || {
                    let (admin_fd, lock) = admin.handover_fds()?;
                    Ok(handover::Offer {
                        data: data.dup_all()?,
                        admin: admin_fd,
                        lock,
                    })
                };
                handover::serve_control(listener, &admin, offer, timeout);
                let _ = tx.send(Event::HandedOver);
            })?;
        Ok(())
    });
    if let Err(e) = started {
        eprintln!(
            "gatehouse: upgrades unavailable: cannot listen on {}: {e}",
            path.display()
        );
    }
}
