//! The config model: plain structs read from the TOML file and from admin API JSON bodies.
//!
//! Every struct denies unknown fields (a typo must be an error, not a silently ignored knob) and
//! every optional field has a default, listed in docs/config.md. Values are kept as written
//! (addresses as strings, hosts as typed): [`crate::validate`] checks them and the helpers here
//! give parsed forms to the layers that run the config.

use crate::resilience::{BalancerKind, HealthCheck, Outlier, RetryBudget};
use crate::thrift::{
    Service, ThriftProtocol, ThriftTransport, ThriftUpstream, UnknownFields, UpstreamProtocol,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PENDING,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The whole config: the file's top-level tables and resource arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub limits: Limits,
    pub admin: Admin,
    pub store: Store,
    /// `[log]`: the access log (from the file only, like `[server]`).
    pub log: crate::access_log::Log,
    pub upstreams: Vec<Upstream>,
    /// Thrift IDL sets (`[[services]]`) that routes to Thrift upstreams use.
    pub services: Vec<Service>,
    /// Configured module instances (`[[modules]]`); see docs/modules/README.md.
    pub modules: Vec<ModuleSpec>,
    /// Callers known to the auth modules, with their credentials (`[[consumers]]`).
    pub consumers: Vec<ConsumerSpec>,
    pub routes: Vec<Route>,
    /// Gray releases of routes and modules (`[[releases]]`); see docs/releases.md.
    pub releases: Vec<crate::release::ReleaseSpec>,
    /// `[tls]`: HTTPS listeners and handshake settings (from the file only); docs/tls.md.
    pub tls: crate::tls::Tls,
    /// Certificate chains and keys served over HTTPS, chosen by SNI (`[[certificates]]`).
    pub certificates: Vec<crate::tls::Certificate>,
}

/// `[server]`: the process and its data-plane listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Worker (core) count; 0 = as many as the process may use (affinity mask, cgroup quota).
    pub workers: usize,
    /// HTTP listeners, `SocketAddr` strings.
    pub listen: Vec<String>,
    /// Directory of the embedded config store and other state.
    pub state_dir: PathBuf,
    /// Pin each worker to a core; off by default (pinned workers crowd the first cores of a
    /// container).
    pub cpu_affinity: bool,
    /// Open client connections per worker; more are refused at accept.
    pub max_connections: usize,
    /// Graceful stop: how long in-flight requests may take after accepting stops.
    pub drain_timeout_ms: u64,
    /// Resident memory (MiB) above which the gateway sheds load: new requests are answered
    /// 503 `overloaded` and idle connections closed until it is back under; 0 = off.
    /// See docs/overload.md.
    pub max_memory_mb: u64,
    /// Upgrade: how long the running process waits for the new one to say it serves before
    /// it gives up and keeps serving alone (docs/upgrade.md).
    pub upgrade_timeout_ms: u64,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            workers: 0,
            listen: vec!["127.0.0.1:8080".to_string()],
            state_dir: PathBuf::from("./gatehouse-state"),
            cpu_affinity: false,
            max_connections: 10_000,
            drain_timeout_ms: 30_000,
            max_memory_mb: 0,
            upgrade_timeout_ms: 30_000,
        }
    }
}

impl Server {
    /// The listen addresses that parse (all of them once the config is validated).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

/// `[limits]`: what one client request may cost. Applied by the access layer per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest request line (method, target, version) in bytes; longer is answered 414.
    pub max_request_line: usize,
    /// Largest request head (request line and headers) in bytes; larger is answered 431.
    pub max_header_bytes: usize,
    /// Most header fields in one request; more is answered 431.
    pub max_headers: usize,
    /// Time allowed for a whole request head, from its first byte.
    pub header_timeout_ms: u64,
    /// How long a keep-alive connection may sit idle between requests.
    pub idle_timeout_ms: u64,
    /// Longest pause allowed between body bytes from the client.
    pub body_timeout_ms: u64,
    /// Longest time a write to the client may stall.
    pub send_timeout_ms: u64,
    /// Default largest request body; routes may override it.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_header_bytes: 65_536,
            max_headers: 100,
            header_timeout_ms: 15_000,
            idle_timeout_ms: 60_000,
            body_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
            max_body_bytes: 10_485_760,
        }
    }
}

/// `[admin]`: the admin API and metrics listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// `SocketAddr` string of the admin listener.
    pub listen: String,
    /// Value the `X-API-Key` header must carry; empty = no key required.
    pub api_key: String,
    /// Largest admin request body; larger is answered 413.
    pub max_body_bytes: u64,
    /// Admin API threads, each serving one connection at a time.
    pub threads: usize,
    /// An admin connection idle this long between requests is closed.
    pub idle_timeout_ms: u64,
    /// How long a change may take to be served by every worker before the answer says so.
    pub publish_timeout_ms: u64,
    /// The audit log file is rotated (one old file kept) once it would pass this size.
    pub audit_max_bytes: u64,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: "127.0.0.1:9180".to_string(),
            api_key: String::new(),
            max_body_bytes: 1_048_576,
            threads: 4,
            idle_timeout_ms: 30_000,
            publish_timeout_ms: 10_000,
            audit_max_bytes: 16_777_216,
        }
    }
}

impl Admin {
    /// The admin listen address, `None` when it does not parse (never after validation).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.parse().ok()
    }
}

/// Where resources made through the admin API are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A directory under `server.state_dir`: one gateway.
    #[default]
    File,
    /// An etcd cluster shared by several gateways.
    Etcd,
}

/// `[store]`: the config store. `endpoints` and `prefix` are for etcd only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    pub kind: StoreKind,
    /// etcd client URLs (`http://10.0.0.1:2379`) or `host:port`.
    pub endpoints: Vec<String>,
    /// Key prefix under which this gateway cluster keeps its resources in etcd.
    pub prefix: String,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            kind: StoreKind::File,
            endpoints: Vec::new(),
            prefix: "/gatehouse".to_string(),
        }
    }
}

/// `[[upstreams]]`: a set of backend nodes that routes send requests to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub id: String,
    pub nodes: Vec<Node>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Longest wait for bytes from the upstream once the request is sent.
    #[serde(default = "default_read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Idle keep-alive connections kept per node per worker; 0 = close after each request.
    #[serde(default = "default_max_idle")]
    pub max_idle: usize,
    /// How long an idle upstream connection is kept before it is closed.
    #[serde(default = "default_upstream_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// `"http"` (default) or `"thrift"`. The fields below are for Thrift upstreams only
    /// (see [`Upstream::thrift`] for their defaults).
    #[serde(default, skip_serializing_if = "UpstreamProtocol::is_http")]
    pub protocol: UpstreamProtocol,
    /// `"binary"` or `"compact"`; unset = the service's default, else binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thrift_protocol: Option<ThriftProtocol>,
    /// `"framed"` or `"buffered"`; unset = the service's default, else framed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<ThriftTransport>,
    /// Calls in flight at once on one connection (1 for servers that answer one call at a
    /// time, which Apache's servers do per connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Connections per node per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Calls per node per worker that may wait for room on a connection; more are 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<usize>,
    /// Largest Thrift message sent or accepted (frame or unframed message), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// Requests in flight to this upstream at once, counted across every worker; more are
    /// answered 503 `overloaded` at once. Unset = no cap (docs/overload.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// How a node is picked; docs/resilience.md has this field and the four below.
    #[serde(default, skip_serializing_if = "BalancerKind::is_round_robin")]
    pub balancer: BalancerKind,
    /// `consistent_hash` only: `"client_ip"`, `"header:NAME"` or `"cookie:NAME"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// When every node is down: send to all of them anyway (true) or answer 503 (false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    /// Active health checks; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Passive checks (outlier ejection); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<Outlier>,
    #[serde(default, skip_serializing_if = "is_default_budget")]
    pub retry_budget: RetryBudget,
    /// Speak TLS to the nodes (HTTP upstreams; docs/tls.md). The certificate is verified
    /// against `tls_ca`, else the system CA bundle.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// PEM bundle of the CAs that sign the nodes' certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    /// Name sent as SNI and verified in the certificate; unset = the node's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

fn is_default_budget(b: &RetryBudget) -> bool {
    *b == RetryBudget::default()
}

impl Upstream {
    /// The Thrift settings with defaults filled in (meaningful for `protocol = "thrift"`).
    pub fn thrift(&self) -> ThriftUpstream {
        ThriftUpstream {
            protocol: self.thrift_protocol,
            transport: self.transport,
            max_in_flight: self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT),
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_pending: self.max_pending.unwrap_or(DEFAULT_MAX_PENDING),
            max_message_bytes: self.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        }
    }
}

impl Default for Upstream {
    /// An upstream with no id and no nodes (invalid until both are set), other fields at their
    /// defaults; handy with struct update syntax.
    fn default() -> Self {
        Upstream {
            id: String::new(),
            nodes: Vec::new(),
            connect_timeout_ms: default_connect_timeout_ms(),
            read_timeout_ms: default_read_timeout_ms(),
            max_idle: default_max_idle(),
            idle_timeout_ms: default_upstream_idle_timeout_ms(),
            protocol: UpstreamProtocol::Http,
            thrift_protocol: None,
            transport: None,
            max_in_flight: None,
            max_connections: None,
            max_pending: None,
            max_message_bytes: None,
            max_requests: None,
            balancer: BalancerKind::RoundRobin,
            hash_key: None,
            fail_open: false,
            health_check: None,
            outlier: None,
            retry_budget: RetryBudget::default(),
            tls: false,
            tls_ca: None,
            tls_server_name: None,
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    3000
}
fn default_read_timeout_ms() -> u64 {
    30_000
}
fn default_max_idle() -> usize {
    64
}
fn default_upstream_idle_timeout_ms() -> u64 {
    60_000
}

/// One backend of an upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// `ip:port` (a `SocketAddr` string; names are not resolved).
    pub addr: String,
    /// Relative share of requests, 1..=1000.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Used only while no primary (non-backup) node is up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
}

fn default_weight() -> u32 {
    1
}

impl Node {
    /// The node address, `None` when it does not parse (never after validation).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.addr.parse().ok()
    }
}

/// `[[routes]]`: which requests go where. Matching rules are in docs/config.md and
/// [`crate::router`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    /// Host names this route serves; empty = any host. `*.example.com` is a wildcard.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Exact paths (`/users/{id}`) or prefixes (`/api/*`, `/*`).
    pub paths: Vec<String>,
    /// Methods this route serves; empty = any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Id of the upstream requests are sent to.
    pub upstream: String,
    /// Largest request body on this route; `None` = `limits.max_body_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// For prefix paths: forward the path without the matched prefix (`/api/x` -> `/x`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Requests on this route in flight at once, counted across every worker; more are
    /// answered 503 `overloaded` at once. Unset = no cap (docs/overload.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// Ids of the (non-global) modules this route uses, in the order they run within a phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// WebSocket tunnels opened on this route (docs/websocket.md); defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebSocketRoute>,
    /// Thrift routes (upstream with `protocol = "thrift"`): id of the `[[services]]` entry
    /// whose IDL describes the call. Every field from here on is for Thrift routes only;
    /// docs/thrift.md has the mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The method called: `"method"` (unique among the IDL's services) or
    /// `"Service.method"` (`Service` may be qualified, `file.Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// For servers behind a TMultiplexedProcessor: the name sent as `NAME:method`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplexed_name: Option<String>,
    /// Arguments taken from the request besides the JSON body: argument name ->
    /// `"path.NAME"`, `"query.NAME"` or `"header.NAME"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// The whole JSON body is this one argument (default: the body is an object of
    /// arguments by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_arg: Option<String>,
    /// Declared exception type (plain or `file.Type`) -> HTTP status; unlisted ones are 500.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exceptions: BTreeMap<String, u16>,
    /// Write i64 values as JSON strings (default true: numbers above 2^53 lose precision
    /// in JavaScript).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i64_as_string: Option<bool>,
    /// `"reject"` (default: 400 naming the member) or `"ignore"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_fields: Option<UnknownFields>,
    /// Further tries on other nodes after a failed one (docs/resilience.md).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Retry non-idempotent methods after the request went out, too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_non_idempotent: bool,
    /// Limit of one try until the answer's head; 0 = the upstream's `read_timeout_ms` only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub try_timeout_ms: u64,
    /// Limit of all tries together until the answer's head; 0 = none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout_ms: u64,
}

fn default_retries() -> u32 {
    1
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Default for Route {
    /// A route with no id, paths or upstream (invalid until they are set), other fields at
    /// their defaults; handy with struct update syntax.
    fn default() -> Self {
        Route {
            id: String::new(),
            hosts: Vec::new(),
            paths: Vec::new(),
            methods: Vec::new(),
            upstream: String::new(),
            max_body_bytes: None,
            strip_prefix: false,
            max_concurrent: None,
            modules: Vec::new(),
            websocket: None,
            service: None,
            method: None,
            multiplexed_name: None,
            args: BTreeMap::new(),
            body_arg: None,
            exceptions: BTreeMap::new(),
            i64_as_string: None,
            unknown_fields: None,
            retries: default_retries(),
            retry_non_idempotent: false,
            try_timeout_ms: 0,
            timeout_ms: 0,
        }
    }
}

/// `routes[].websocket`: how long a WebSocket tunnel may stay silent, and the keepalive
/// pings the gateway sends to the client (docs/websocket.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketRoute {
    /// A tunnel with no byte read from either side for this long is closed (close 1001 to
    /// both sides).
    #[serde(default = "default_ws_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// When set, the gateway pings the client after this long without a byte from it; the
    /// client's pong (any byte) counts as activity. 0 = no pings.
    #[serde(default)]
    pub ping_interval_ms: u64,
}

fn default_ws_idle_timeout_ms() -> u64 {
    60_000
}

impl Default for WebSocketRoute {
    fn default() -> Self {
        WebSocketRoute {
            idle_timeout_ms: default_ws_idle_timeout_ms(),
            ping_interval_ms: 0,
        }
    }
}

impl Route {
    /// The body limit for this route, given the global default.
    pub fn body_limit(&self, limits: &Limits) -> u64 {
        self.max_body_bytes.unwrap_or(limits.max_body_bytes)
    }

    /// Whether any Thrift-only field is set (an error on a route to an HTTP upstream).
    pub fn has_thrift_fields(&self) -> bool {
        self.service.is_some()
            || self.method.is_some()
            || self.multiplexed_name.is_some()
            || !self.args.is_empty()
            || self.body_arg.is_some()
            || !self.exceptions.is_empty()
            || self.i64_as_string.is_some()
            || self.unknown_fields.is_some()
    }
}

/// The module kinds the gateway knows, in no particular order. Their fields and the phase each
/// runs in are in docs/modules/; the business layer compiles each kind.
pub const MODULE_KINDS: &[&str] = &[
    "ip_list",
    "params",
    "waf",
    "rate_limit",
    "key_auth",
    "jwt",
    "hmac_auth",
    "sign_check",
    "decrypt",
    "circuit_breaker",
    "cors",
    "headers",
    "redirect",
    "auth_service",
    "risk",
    "device_fingerprint",
];

/// Kind-specific fields of a module or consumer, kept as data: their types live in the business
/// layer (which depends on this crate, not the reverse) and are checked when a snapshot is
/// built, with paths like `modules[3].rate`.
pub type Settings = serde_json::Map<String, serde_json::Value>;

/// `[[modules]]`: a configured instance of a module kind. Routes name it in their `modules`
/// list; a `global` module applies to every route instead.
///
/// Unknown keys cannot be refused here (they are the kind's fields, collected in `settings`);
/// the business layer reads `settings` into the kind's own struct, which refuses them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleSpec {
    pub id: String,
    /// One of [`MODULE_KINDS`].
    pub kind: String,
    /// Applies to every route (routes must not list it too).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global: bool,
    /// The kind's own fields.
    #[serde(flatten)]
    pub settings: Settings,
}

/// `[[consumers]]`: a caller with its credentials (docs/modules/consumers.md). Like modules,
/// only the id is typed here; the credentials are read by the business layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerSpec {
    pub id: String,
    #[serde(flatten)]
    pub settings: Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_all_defaults() {
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen, vec!["127.0.0.1:8080"]);
        assert_eq!(c.limits.max_headers, 100);
        assert_eq!(c.admin.listen, "127.0.0.1:9180");
        assert_eq!(c.store.kind, StoreKind::File);
    }

    #[test]
    fn resources_fill_their_defaults() {
        let c: Config = toml::from_str(
            r#"
            [[upstreams]]
            id = "u"
            nodes = [{ addr = "127.0.0.1:9001" }]
            [[routes]]
            id = "r"
            paths = ["/*"]
            upstream = "u"
            "#,
        )
        .unwrap();
        assert_eq!(c.upstreams[0].nodes[0].weight, 1);
        assert_eq!(c.upstreams[0].max_idle, 64);
        assert_eq!(c.upstreams[0].connect_timeout_ms, 3000);
        assert_eq!(c.routes[0].max_body_bytes, None);
        assert_eq!(c.routes[0].body_limit(&c.limits), 10_485_760);
        assert!(c.routes[0].hosts.is_empty() && c.routes[0].methods.is_empty());
    }

    #[test]
    fn same_structs_read_json_and_round_trip() {
        let r: Route = serde_json::from_str(
            r#"{"id":"r","paths":["/a/*"],"upstream":"u","max_body_bytes":5,"strip_prefix":true}"#,
        )
        .unwrap();
        assert_eq!(r.max_body_bytes, Some(5));
        assert!(r.strip_prefix);
        let back: Route = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let c = Config::default();
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), c);
    }

    #[test]
    fn modules_keep_their_kind_fields_as_data() {
        let text = r#"
            [[modules]]
            id = "w"
            kind = "waf"
            sets = ["sqli"]
            body_limit = 4096
            [modules.rule_actions]
            sqli-comment = "log"
            [[modules.rules]]
            id = "agents"
            keywords = ["sqlmap"]
            [[consumers]]
            id = "acme"
            key_auth = { key = "k" }
            [[routes]]
            id = "r"
            paths = ["/*"]
            upstream = "u"
            modules = ["w"]
        "#;
        let c: Config = toml::from_str(text).unwrap();
        let m = &c.modules[0];
        assert_eq!(
            (m.id.as_str(), m.kind.as_str(), m.global),
            ("w", "waf", false)
        );
        assert_eq!(m.settings["body_limit"], serde_json::json!(4096));
        assert_eq!(m.settings["rules"][0]["keywords"][0], "sqlmap");
        assert_eq!(m.settings["rule_actions"]["sqli-comment"], "log");
        assert!(!m.settings.contains_key("id") && !m.settings.contains_key("kind"));
        assert_eq!(c.consumers[0].settings["key_auth"]["key"], "k");
        assert_eq!(c.routes[0].modules, vec!["w"]);
        // Both directions, both formats: the admin API and the file hold the same resource.
        let back: Config = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let json: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(json, c);
        let m: ModuleSpec =
            serde_json::from_str(r#"{"id":"g","kind":"cors","global":true,"max_age":5}"#).unwrap();
        assert!(m.global);
        assert_eq!(m.settings.len(), 1);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(toml::from_str::<Config>("[server]\nworkerz = 2\n").is_err());
        assert!(toml::from_str::<Config>("[[bogus]]\n").is_err());
        assert!(
            serde_json::from_str::<Route>(r#"{"id":"r","paths":[],"upstream":"u","x":1}"#).is_err()
        );
        assert!(toml::from_str::<Config>("[store]\nkind = \"zookeeper\"\n").is_err());
    }
}
