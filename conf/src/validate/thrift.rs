//! Thrift checks that need no IDL parser: `[[services]]` entries (ids, file names, text
//! present, `main`), the Thrift fields of upstreams (ranges; only on Thrift upstreams), and
//! the Thrift fields of routes (present where needed, well formed, absent elsewhere).
//!
//! Whether a method, an argument or an exception named by a route exists in the IDL is
//! checked by the business layer when it compiles the IDL for a snapshot (it owns the
//! parser); its errors carry the same kind of paths (`routes[2].method`).

use super::Errors;
use crate::model::{Route, Upstream};
use crate::pattern::parse_path;
use crate::thrift::{ArgSource, Service, UpstreamProtocol};
use std::collections::HashSet;

/// Longest IDL file name.
const MAX_FILE_NAME: usize = 256;
/// Longest method, multiplexed or argument name.
const MAX_NAME: usize = 256;

/// Checks `[[services]]`; returns the ids that are valid and unique.
pub(super) fn check_services<'a>(e: &mut Errors, services: &'a [Service]) -> HashSet<&'a str> {
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, s) in services.iter().enumerate() {
        let p = format!("services[{i}]");
        e.id(&format!("{p}.id"), &s.id);
        if !s.id.is_empty() && !ids.insert(s.id.as_str()) {
            e.push(format!("{p}.id"), format!("duplicate id {:?}", s.id));
        }
        if s.files.is_empty() {
            e.push(format!("{p}.files"), "must list at least one .thrift file");
        }
        let mut names: HashSet<&str> = HashSet::new();
        for (j, f) in s.files.iter().enumerate() {
            let fp = format!("{p}.files[{j}]");
            if f.name.is_empty() || f.name.len() > MAX_FILE_NAME {
                e.push(
                    format!("{fp}.name"),
                    format!("must be 1 to {MAX_FILE_NAME} characters"),
                );
            } else if f.name.bytes().any(|b| b.is_ascii_control()) || f.name.contains('\\') {
                e.push(
                    format!("{fp}.name"),
                    "must not hold control characters or '\\'",
                );
            } else if !names.insert(f.name.as_str()) {
                e.push(format!("{fp}.name"), format!("duplicate file {:?}", f.name));
            }
            match (&f.text, &f.path) {
                (Some(_), None) => {}
                (None, None) => e.push(format!("{fp}.text"), "must hold the file's text"),
                (Some(_), Some(_)) => e.push(format!("{fp}.path"), "give either text or path"),
                // `load` reads paths of the config file; anything left came another way.
                (None, Some(_)) => e.push(
                    format!("{fp}.path"),
                    "paths are read only from the config file; upload the text instead",
                ),
            }
        }
        if let Some(main) = &s.main {
            if !s.files.iter().any(|f| f.name == *main) {
                e.push(
                    format!("{p}.main"),
                    format!("{main:?} is not one of the files"),
                );
            }
        }
    }
    ids
}

/// The Thrift fields of an upstream: ranges, and set only on Thrift upstreams.
pub(super) fn check_upstream(e: &mut Errors, p: &str, u: &Upstream) {
    let set: [(&str, bool); 6] = [
        ("thrift_protocol", u.thrift_protocol.is_some()),
        ("transport", u.transport.is_some()),
        ("max_in_flight", u.max_in_flight.is_some()),
        ("max_connections", u.max_connections.is_some()),
        ("max_pending", u.max_pending.is_some()),
        ("max_message_bytes", u.max_message_bytes.is_some()),
    ];
    if u.protocol == UpstreamProtocol::Http {
        for (field, _) in set.iter().filter(|(_, s)| *s) {
            e.push(
                format!("{p}.{field}"),
                "only used with protocol = \"thrift\"",
            );
        }
        return;
    }
    let t = u.thrift();
    e.range(&format!("{p}.max_in_flight"), t.max_in_flight, 1, 4096);
    e.range(&format!("{p}.max_connections"), t.max_connections, 1, 1024);
    e.range(&format!("{p}.max_pending"), t.max_pending, 0, 1_000_000);
    e.range(
        &format!("{p}.max_message_bytes"),
        t.max_message_bytes,
        64,
        i32::MAX as usize,
    );
}

/// The Thrift fields of route `r` (at `p`), whose upstream is `upstream` when it exists.
pub(super) fn check_route(
    e: &mut Errors,
    p: &str,
    r: &Route,
    upstream: Option<&Upstream>,
    services: &HashSet<&str>,
) {
    let Some(u) = upstream else { return };
    if u.protocol == UpstreamProtocol::Http {
        if r.has_thrift_fields() {
            e.push(
                p.to_string(),
                format!(
                    "service, method, args, body_arg, exceptions, multiplexed_name, \
                     i64_as_string and unknown_fields are for Thrift upstreams; upstream {:?} \
                     speaks HTTP",
                    u.id
                ),
            );
        }
        return;
    }
    match &r.service {
        None => e.push(
            format!("{p}.service"),
            "a route to a Thrift upstream must name a service",
        ),
        Some(s) if !services.contains(s.as_str()) => {
            e.push(format!("{p}.service"), format!("no service named {s:?}"))
        }
        Some(_) => {}
    }
    match &r.method {
        None => e.push(
            format!("{p}.method"),
            "a route to a Thrift upstream must name a method",
        ),
        Some(m) => name(e, &format!("{p}.method"), m, ":"),
    }
    if let Some(m) = &r.multiplexed_name {
        name(e, &format!("{p}.multiplexed_name"), m, ":");
    }
    if let Some(b) = &r.body_arg {
        name(e, &format!("{p}.body_arg"), b, ".:");
    }
    let captures: HashSet<String> = r
        .paths
        .iter()
        .filter_map(|path| parse_path(path).ok())
        .flat_map(|pat| {
            pat.param_names()
                .map(str::to_string)
                .collect::<Vec<String>>()
        })
        .collect();
    for (arg, source) in &r.args {
        let ap = format!("{p}.args.{arg}");
        name(e, &ap, arg, ".:");
        match ArgSource::parse(source) {
            Err(msg) => e.push(ap, msg),
            Ok(ArgSource::Path(n)) if !captures.contains(n) => {
                e.push(ap, format!("no path of the route captures {{{n}}}"))
            }
            Ok(_) => {}
        }
        if r.body_arg.as_deref() == Some(arg.as_str()) {
            e.push(
                format!("{p}.args.{arg}"),
                "is also the body_arg: an argument comes from one place",
            );
        }
    }
    for (ex, status) in &r.exceptions {
        let xp = format!("{p}.exceptions.{ex}");
        name(e, &xp, ex, ":");
        e.range(&xp, *status, 200, 599);
    }
}

/// A name used on the wire or in the IDL: non-empty, visible ASCII, none of `forbidden`.
fn name(e: &mut Errors, path: &str, value: &str, forbidden: &str) {
    if value.is_empty() || value.len() > MAX_NAME {
        e.push(path, format!("must be 1 to {MAX_NAME} characters"));
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_graphic() && !forbidden.as_bytes().contains(&b))
    {
        e.push(
            path,
            format!("invalid name {value:?} (visible ASCII without spaces or {forbidden:?})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError};

    const BASE: &str = r#"
[[upstreams]]
id = "rpc"
protocol = "thrift"
thrift_protocol = "compact"
max_in_flight = 8
nodes = [{ addr = "127.0.0.1:9090" }]

[[upstreams]]
id = "web"
nodes = [{ addr = "127.0.0.1:9091" }]

[[services]]
id = "catalog"
main = "catalog.thrift"
files = [
  { name = "shared.thrift", text = "struct S {}" },
  { name = "catalog.thrift", text = "include \"shared.thrift\"" },
]
"#;

    fn errors(extra: &str) -> Vec<String> {
        let c = Config::from_toml_str(&format!("{BASE}{extra}"))
            .unwrap_or_else(|e| panic!("parse failed: {e:?}"));
        c.validate().iter().map(ConfigError::to_string).collect()
    }

    #[test]
    fn a_thrift_route_is_valid_and_defaults_fill_in() {
        let errs = errors(
            r#"
            [[routes]]
            id = "product"
            paths = ["/products/{id}"]
            upstream = "rpc"
            service = "catalog"
            method = "Catalog.get"
            multiplexed_name = "Catalog"
            args = { id = "path.id", locale = "header.Accept-Language", n = "query.n" }
            exceptions = { NotFound = 404, "shared.Denied" = 403 }
            "#,
        );
        assert!(errs.is_empty(), "{errs:#?}");
        let c = Config::from_toml_str(BASE).unwrap();
        let t = c.upstreams[0].thrift();
        assert_eq!((t.max_in_flight, t.max_connections), (8, 4));
        assert_eq!(c.upstreams[1].thrift().max_in_flight, 1);
        assert_eq!(c.services[0].main_file(), "catalog.thrift");
    }

    #[test]
    fn http_configs_serialize_as_before() {
        let c = Config::from_toml_str(
            "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:1\" }]\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n",
        )
        .unwrap();
        let json = serde_json::to_value(&c).unwrap();
        let u = json["upstreams"][0].as_object().unwrap();
        assert!(!u.contains_key("protocol") && !u.contains_key("max_in_flight"));
        let r = json["routes"][0].as_object().unwrap();
        assert!(!r.contains_key("service") && !r.contains_key("args"));
    }

    #[test]
    fn every_thrift_problem_has_its_path() {
        let errs = errors(
            r#"
            [[upstreams]]
            id = "bad"
            protocol = "thrift"
            max_in_flight = 0
            max_connections = 5000
            nodes = [{ addr = "127.0.0.1:9092" }]

            [[services]]
            id = "catalog"
            main = "nope.thrift"
            files = [{ name = "a.thrift" }, { name = "a.thrift", text = "", path = "x" }]

            [[routes]]
            id = "t"
            paths = ["/t/{id}"]
            upstream = "rpc"
            service = "missing"
            multiplexed_name = "a:b"
            args = { id = "path.nope", q = "cookie.x" }
            exceptions = { E = 700 }

            [[routes]]
            id = "h"
            paths = ["/h"]
            upstream = "web"
            method = "m"
            "#,
        );
        for want in [
            "upstreams[2].max_in_flight: must be between 1 and 4096",
            "upstreams[2].max_connections: must be between 1 and 1024",
            "services[1].id: duplicate id \"catalog\"",
            "services[1].files[0].text: must hold the file's text",
            "services[1].files[1].name: duplicate file \"a.thrift\"",
            "services[1].files[1].path: give either text or path",
            "services[1].main: \"nope.thrift\" is not one of the files",
            "routes[0].service: no service named \"missing\"",
            "routes[0].method: a route to a Thrift upstream must name a method",
            "routes[0].args.id: no path of the route captures {nope}",
            "routes[0].exceptions.E: must be between 200 and 599",
        ] {
            assert!(
                errs.iter().any(|e| e == want),
                "missing {want:?} in {errs:#?}"
            );
        }
        assert!(errs
            .iter()
            .any(|e| e.starts_with("routes[0].multiplexed_name: invalid name")));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("routes[0].args.q: invalid source \"cookie.x\"")));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("routes[1]: service, method") && e.contains("speaks HTTP")));
    }

    #[test]
    fn thrift_fields_on_http_upstreams_are_errors() {
        let errs = errors(
            "[[upstreams]]\nid = \"h2\"\nmax_in_flight = 4\ntransport = \"buffered\"\n\
             nodes = [{ addr = \"127.0.0.1:9093\" }]\n",
        );
        assert!(errs.contains(
            &"upstreams[2].max_in_flight: only used with protocol = \"thrift\"".to_string()
        ));
        assert!(errs
            .contains(&"upstreams[2].transport: only used with protocol = \"thrift\"".to_string()));
    }

    #[test]
    fn load_reads_idl_paths_relative_to_the_config() {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-conf-thrift-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("idl")).unwrap();
        std::fs::write(dir.join("idl/a.thrift"), "service A { void ping() }").unwrap();
        let cfg = dir.join("gw.toml");
        std::fs::write(
            &cfg,
            "[[services]]\nid = \"s\"\nfiles = [{ name = \"a.thrift\", path = \"idl/a.thrift\" }]\n",
        )
        .unwrap();
        let c = crate::load(&cfg).unwrap();
        assert_eq!(
            c.services[0].files[0].text.as_deref(),
            Some("service A { void ping() }")
        );
        assert_eq!(c.services[0].files[0].path, None);
        std::fs::write(
            &cfg,
            "[[services]]\nid = \"s\"\nfiles = [{ name = \"b.thrift\", path = \"idl/none.thrift\" }]\n",
        )
        .unwrap();
        let errs = crate::load(&cfg).unwrap_err();
        assert_eq!(errs[0].path, "services[0].files[0].path");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
