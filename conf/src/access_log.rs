//! `[log]`: where the access log goes (docs/access-log.md), and its checks.
//!
//! Kept apart from `model.rs` because it is one self-contained table with its own parsed
//! forms (the syslog address, the facility number) that only the access layer's logger
//! reads. Like `[server]`, the table always comes from the file: the logger thread and the
//! per-worker queues are set up once at start, so changing it needs a restart.

use crate::validate::Errors;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where access log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessSink {
    /// No access log: workers create no queue and the request path does no logging work.
    #[default]
    Off,
    /// Lines appended to `path`, rotated by size, reopened on SIGUSR1.
    File,
    /// RFC 5424 messages to the `syslog` address.
    Syslog,
}

/// `[log]`: the access log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `off` (default), `file` or `syslog`.
    pub access: AccessSink,
    /// The log file (`access = "file"`); its directory must exist.
    pub path: PathBuf,
    /// Rotate to `path.1` once the file would pass this size; 0 = never (external rotation
    /// with SIGUSR1).
    pub max_bytes: u64,
    /// `unix:/dev/log`, `udp:host-ip:port` or `tcp:host-ip:port`.
    pub syslog: String,
    /// Syslog facility name (`local0` .. `local7`, `user`, `daemon`, ...).
    pub facility: String,
    /// RFC 5424 APP-NAME.
    pub app_name: String,
    /// Records each worker may have waiting for the logger thread; more are dropped.
    pub queue_size: usize,
    /// Bytes of framed messages waiting for a slow stream sink (TCP, unix stream); lines
    /// that do not fit are dropped.
    pub buffer_bytes: usize,
    /// Wait between attempts to (re)connect to a syslog receiver; lines meanwhile are dropped.
    pub reconnect_ms: u64,
    /// At stop, how long queued lines may take to reach a slow sink before they are dropped.
    pub flush_timeout_ms: u64,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            access: AccessSink::Off,
            path: PathBuf::new(),
            max_bytes: 104_857_600,
            syslog: "unix:/dev/log".to_string(),
            facility: "local0".to_string(),
            app_name: "gatehouse".to_string(),
            queue_size: 2048,
            buffer_bytes: 1_048_576,
            reconnect_ms: 1000,
            flush_timeout_ms: 1000,
        }
    }
}

/// A parsed `log.syslog` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogAddr {
    /// A unix socket path; datagram (like `/dev/log`) or stream, whichever it accepts.
    Unix(PathBuf),
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

/// Facility names of RFC 5424 §6.2.1 (as syslog.h spells them) and their numbers.
pub const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Longest RFC 5424 APP-NAME.
pub const MAX_APP_NAME: usize = 48;

impl Log {
    /// The parsed `syslog` address, `None` when it does not parse (never once validated).
    pub fn syslog_addr(&self) -> Option<SyslogAddr> {
        parse_syslog(&self.syslog).ok()
    }

    /// The facility number, `None` for an unknown name (never once validated).
    pub fn facility_code(&self) -> Option<u8> {
        FACILITIES
            .iter()
            .find(|(n, _)| *n == self.facility)
            .map(|(_, c)| *c)
    }
}

fn parse_syslog(s: &str) -> Result<SyslogAddr, String> {
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err(format!(
            "{s:?} is not \"unix:PATH\", \"udp:IP:PORT\" or \"tcp:IP:PORT\""
        ));
    };
    match scheme {
        "unix" if rest.starts_with('/') => Ok(SyslogAddr::Unix(PathBuf::from(rest))),
        "unix" => Err(format!("unix socket path must be absolute (got {rest:?})")),
        "udp" | "tcp" => {
            let a: SocketAddr = rest
                .parse()
                .map_err(|_| format!("invalid socket address {rest:?} (an IP and a port)"))?;
            if a.port() == 0 || a.ip().is_unspecified() {
                return Err(format!("{a} cannot be sent to"));
            }
            Ok(if scheme == "udp" {
                SyslogAddr::Udp(a)
            } else {
                SyslogAddr::Tcp(a)
            })
        }
        _ => Err(format!(
            "unknown scheme {scheme:?} (\"unix\", \"udp\" or \"tcp\")"
        )),
    }
}

/// Checks `[log]`. Every field is checked whatever the sink, so a typo in an unused field is
/// still found before the day it is switched on.
pub(crate) fn check(e: &mut Errors, l: &Log) {
    if l.access == AccessSink::File && l.path.as_os_str().is_empty() {
        e.push("log.path", "access = \"file\" needs a path");
    }
    if l.max_bytes != 0 {
        e.range("log.max_bytes", l.max_bytes, 4096, 1 << 40);
    }
    if let Err(msg) = parse_syslog(&l.syslog) {
        e.push("log.syslog", msg);
    }
    if l.facility_code().is_none() {
        let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
        e.push(
            "log.facility",
            format!(
                "unknown facility {:?} (one of {})",
                l.facility,
                names.join(", ")
            ),
        );
    }
    if l.app_name.is_empty()
        || l.app_name.len() > MAX_APP_NAME
        || !l.app_name.bytes().all(|b| b.is_ascii_graphic())
    {
        e.push(
            "log.app_name",
            format!("must be 1 to {MAX_APP_NAME} visible ASCII characters"),
        );
    }
    e.range("log.queue_size", l.queue_size, 16, 1 << 20);
    e.range("log.buffer_bytes", l.buffer_bytes, 4096, 1 << 30);
    e.timeout("log.reconnect_ms", l.reconnect_ms);
    e.range("log.flush_timeout_ms", l.flush_timeout_ms, 0, 3_600_000);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn errors(toml: &str) -> Vec<String> {
        let c = Config::from_toml_str(toml).unwrap();
        c.validate()
            .into_iter()
            .map(|e| e.to_string())
            .filter(|e| e.starts_with("log."))
            .collect()
    }

    #[test]
    fn off_by_default_and_defaults_are_valid() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c.log.access, AccessSink::Off);
        assert!(errors("").is_empty());
        assert_eq!(c.log.facility_code(), Some(16));
        assert_eq!(
            c.log.syslog_addr(),
            Some(SyslogAddr::Unix("/dev/log".into()))
        );
    }

    #[test]
    fn file_needs_a_path() {
        let e = errors("[log]\naccess = \"file\"\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("log.path:"), "{e:?}");
        assert!(errors("[log]\naccess = \"file\"\npath = \"/tmp/a.log\"\n").is_empty());
    }

    #[test]
    fn syslog_addresses() {
        assert_eq!(
            parse_syslog("udp:127.0.0.1:514"),
            Ok(SyslogAddr::Udp("127.0.0.1:514".parse().unwrap()))
        );
        assert_eq!(
            parse_syslog("tcp:[::1]:601"),
            Ok(SyslogAddr::Tcp("[::1]:601".parse().unwrap()))
        );
        for bad in [
            "dev/log",
            "unix:dev/log",
            "udp:localhost:514",
            "tcp:127.0.0.1:0",
            "tcp:0.0.0.0:601",
            "http:1.2.3.4:5",
        ] {
            assert!(parse_syslog(bad).is_err(), "{bad}");
        }
        let e = errors("[log]\nsyslog = \"udp:x\"\n");
        assert!(e[0].starts_with("log.syslog:"), "{e:?}");
    }

    #[test]
    fn every_knob_is_bounded() {
        let e = errors(
            "[log]\nfacility = \"local9\"\napp_name = \"a b\"\nqueue_size = 1\n\
             buffer_bytes = 10\nreconnect_ms = 0\nmax_bytes = 10\n",
        );
        for f in [
            "log.facility:",
            "log.app_name:",
            "log.queue_size:",
            "log.buffer_bytes:",
            "log.reconnect_ms:",
            "log.max_bytes:",
        ] {
            assert!(e.iter().any(|x| x.starts_with(f)), "{f} missing in {e:?}");
        }
        assert!(errors("[log]\nmax_bytes = 0\n").is_empty());
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(Config::from_toml_str("[log]\nacces = \"file\"\n").is_err());
        assert!(Config::from_toml_str("[log]\naccess = \"stdout\"\n").is_err());
    }
}
