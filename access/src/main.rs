//! `gatehouse`: the command line of CONTRACT.md (`run`, `check`, `demo`, `--version`).

use access::{access_log, admin, demo, server};
use business::Snapshot;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

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
            Ok(c) => serve(c, None),
            Err(errors) => report(&errors),
        },
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
                Ok(c) => serve(c, Some(demo::banner(listen))),
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

fn serve(config: conf::Config, banner: Option<String>) -> ExitCode {
    // The store is joined with the file before anything listens (docs/admin.md).
    let boot = match admin::Boot::prepare(config) {
        Ok(b) => b,
        Err(admin::BootError::Invalid(context, errors)) => {
            if !context.is_empty() {
                eprintln!("{context}");
            }
            return report(&errors);
        }
        Err(admin::BootError::Failed(msg)) => {
            eprintln!("gatehouse: {msg}");
            return ExitCode::FAILURE;
        }
    };
    for note in boot.notes() {
        eprintln!("gatehouse: {note}");
    }
    let snap = boot.snapshot();
    let mut signals = match server::catch_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: cannot take over SIGINT/SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log_cfg = snap.config.log.clone();
    let srv = match server::Server::start(snap) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::FAILURE;
        }
    };
    for a in &srv.addrs {
        eprintln!("gatehouse: serving HTTP on {a}");
    }
    // After the server: the workers registered their queues as they started, and lines
    // they queue before the logger runs wait for it.
    let logger = match access_log::Logger::start(&log_cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gatehouse: cannot start the access log: {e}");
            srv.stop();
            return ExitCode::FAILURE;
        }
    };
    let publisher = srv.publisher();
    let admin = match boot.start(Box::new(move |s, t| publisher.publish(s, t))) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gatehouse: cannot start the admin API: {e}");
            srv.stop();
            return ExitCode::FAILURE;
        }
    };
    eprintln!("gatehouse: admin API on http://{}", admin.addr());
    if let Some(b) = banner {
        println!("{b}");
    }
    let sig = server::wait_for_signal(&mut signals);
    eprintln!("gatehouse: signal {sig}: draining");
    admin.stop();
    srv.stop();
    // The workers are gone: the logger writes out what they queued, then ends.
    if let Some(l) = logger {
        l.stop();
    }
    eprintln!("gatehouse: stopped");
    ExitCode::SUCCESS
}
