//! One immutable, validated config version with every table derived from it.
//!
//! Built once per version off the workers' threads (route tries, resolved upstream addresses,
//! the stage list), then shared by `Arc`: a request reads whatever snapshot its worker held
//! when the request started, and never takes a lock to do so.

use crate::modules::key_auth::consumer::{Consumer, ConsumerIndex};
use crate::pipeline::Pipeline;
use crate::stages::{self, ScratchPlan};
use crate::thrift::ThriftRoute;
use components::mux_pool::NodeSettings;
use conf::{Config, ConfigError, Router};
use protocols::thrift::idl::Idl;
use std::net::SocketAddr;
use std::sync::Arc;

/// An upstream with its addresses resolved and its timeouts in place.
#[derive(Clone, Debug)]
pub struct UpstreamRt {
    pub id: String,
    pub addrs: Vec<SocketAddr>,
    pub weights: Vec<u32>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub max_idle: usize,
    pub idle_timeout_ms: u64,
    /// Thrift upstreams: the multiplexed pool's bounds for each node (`None` for HTTP).
    pub mux: Option<NodeSettings>,
    /// Health, balancing and retry settings (docs/resilience.md).
    pub res: crate::resilience::UpstreamRes,
    /// TLS upstreams: the client settings (docs/tls.md).
    pub tls: Option<components::tls::client::UpTls>,
}

pub struct Snapshot {
    pub version: u64,
    pub config: Config,
    pub router: Router,
    pub upstreams: Vec<UpstreamRt>,
    /// For each route (by index), its upstream's index.
    pub route_upstream: Vec<usize>,
    /// Every `[[consumers]]` entry, indexed for the auth modules (`Context::consumer` is a
    /// position in it).
    pub consumers: ConsumerIndex,
    pub pipeline: Pipeline,
    /// The IDL of each `[[services]]` entry, parsed once per version (or kept from the
    /// previous version when its files did not change).
    pub services: Vec<Arc<Idl>>,
    /// For each route (by index), its Thrift call when its upstream speaks Thrift.
    pub thrift_routes: Vec<Option<ThriftRoute>>,
    /// Node-wide in-flight caps of routes and upstreams (`max_concurrent`, `max_requests`).
    pub admission: crate::admission::Admission,
    /// HTTPS settings of this version (`None` without certificates); see docs/tls.md.
    pub tls: Option<components::tls::ServerTls>,
}

impl Snapshot {
    /// Validates `config` as a whole and derives every table; nothing is built from an
    /// invalid config.
    pub fn build(config: Config, version: u64) -> Result<Arc<Snapshot>, Vec<ConfigError>> {
        Snapshot::build_next(config, version, None)
    }

    /// Like [`build`](Self::build), taking over from `prev` (the version being replaced) the
    /// state modules keep across versions: rate-limit tables and replay caches, matched by
    /// module id and kind.
    pub fn build_next(
        config: Config,
        version: u64,
        prev: Option<&Snapshot>,
    ) -> Result<Arc<Snapshot>, Vec<ConfigError>> {
        let mut errors = config.validate();
        errors.extend(conf::release::check(&config));
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut upstreams = Vec::with_capacity(config.upstreams.len());
        for (i, u) in config.upstreams.iter().enumerate() {
            let mut addrs = Vec::with_capacity(u.nodes.len());
            for (j, n) in u.nodes.iter().enumerate() {
                match n.socket_addr() {
                    Some(a) => addrs.push(a),
                    None => {
                        return Err(vec![ConfigError::new(
                            format!("upstreams[{i}].nodes[{j}].addr"),
                            format!("invalid socket address {:?}", n.addr),
                        )])
                    }
                }
            }
            upstreams.push(UpstreamRt {
                id: u.id.clone(),
                res: crate::resilience::UpstreamRes::build(u, &addrs, prev),
                addrs,
                weights: u.nodes.iter().map(|n| n.weight).collect(),
                connect_timeout_ms: u.connect_timeout_ms,
                read_timeout_ms: u.read_timeout_ms,
                max_idle: u.max_idle,
                idle_timeout_ms: u.idle_timeout_ms,
                mux: crate::thrift::node_settings(u),
                tls: match u.tls {
                    false => None,
                    true => Some(
                        components::tls::client::build_client(
                            &format!("upstreams[{i}]"),
                            u.tls_ca.as_deref(),
                            u.tls_server_name.as_deref(),
                            u.protocol.is_http(),
                        )
                        .map_err(|e| vec![ConfigError::new(e.field, e.message)])?,
                    ),
                },
            });
        }
        let mut route_upstream = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            match config.upstreams.iter().position(|u| u.id == r.upstream) {
                Some(u) => route_upstream.push(u),
                None => {
                    return Err(vec![ConfigError::new(
                        format!("routes[{i}].upstream"),
                        format!("no upstream named {:?}", r.upstream),
                    )])
                }
            }
        }
        let mut errors = Vec::new();
        let consumers = match compile_consumers(&config) {
            Ok(c) => c,
            Err(mut e) => {
                errors.append(&mut e);
                ConsumerIndex::default()
            }
        };
        let (services, thrift_routes) = match crate::thrift::compile(&config, prev) {
            Ok(t) => t,
            Err(mut e) => {
                errors.append(&mut e);
                (Vec::new(), Vec::new())
            }
        };
        let mut plan = ScratchPlan::default();
        let upstream_ids: Vec<String> = config.upstreams.iter().map(|u| u.id.clone()).collect();
        let mut modules = Vec::with_capacity(config.modules.len());
        for (i, spec) in config.modules.iter().enumerate() {
            let prev = prev.and_then(|p| {
                p.pipeline
                    .modules
                    .iter()
                    .find(|m| m.id == spec.id && m.kind == spec.kind)
            });
            match stages::compile(spec, i, prev, &mut plan, &upstream_ids) {
                Ok(m) => modules.push(m),
                Err(mut e) => errors.append(&mut e),
            }
        }
        // A route's calls run at once from one stage, with room for MAX_CALLS of them.
        for (i, r) in config.routes.iter().enumerate() {
            let calls = modules
                .iter()
                .filter(|m| matches!(m.form, stages::Form::Call(_)))
                .filter(|m| m.global || r.modules.contains(&m.id))
                .count();
            if calls > crate::calls::MAX_CALLS {
                errors.push(ConfigError::new(
                    format!("routes[{i}].modules"),
                    format!(
                        "{calls} call modules (auth_service, risk, device_fingerprint); at most {}",
                        crate::calls::MAX_CALLS
                    ),
                ));
            }
        }
        let releases = crate::release::compile(&config, version, prev, &mut plan, &upstream_ids)
            .unwrap_or_else(|mut e| {
                errors.append(&mut e);
                Vec::new()
            });
        let tls = crate::tls::compile(&config, prev).unwrap_or_else(|mut e| {
            errors.append(&mut e);
            None
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        let router = Router::build(&config.routes);
        let admission = crate::admission::Admission::build(&config, prev.map(|p| &p.admission));
        let pipeline = Pipeline::build(&config, modules, plan, releases, &route_upstream)?;
        Ok(Arc::new(Snapshot {
            version,
            config,
            router,
            upstreams,
            route_upstream,
            consumers,
            pipeline,
            services,
            thrift_routes,
            admission,
            tls,
        }))
    }

    /// The Thrift call of route `route`, when its upstream speaks Thrift: the access layer
    /// makes that call instead of proxying HTTP.
    pub fn thrift_route(&self, route: usize) -> Option<&ThriftRoute> {
        self.thrift_routes.get(route).and_then(Option::as_ref)
    }
}

/// Reads every `[[consumers]]` entry into its struct and indexes them; errors are named
/// `consumers[i].field`.
fn compile_consumers(config: &Config) -> Result<ConsumerIndex, Vec<ConfigError>> {
    let mut parsed = Vec::with_capacity(config.consumers.len());
    let mut errors = Vec::new();
    for (i, c) in config.consumers.iter().enumerate() {
        let mut fields = c.settings.clone();
        fields.insert("id".into(), serde_json::Value::String(c.id.clone()));
        match stages::read::<Consumer>(&fields, &format!("consumers[{i}]")) {
            Ok(c) => parsed.push(c),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // The index names its errors `consumers[i].…` itself.
    ConsumerIndex::compile(&parsed).map_err(|errs| stages::under_all("", errs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_config_builds_nothing() {
        let c = Config::from_toml_str(
            "[[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"missing\"\n",
        )
        .unwrap();
        let errs = Snapshot::build(c, 1).err().unwrap();
        assert!(
            errs.iter().any(|e| e.path == "routes[0].upstream"),
            "{errs:?}"
        );
    }

    #[test]
    fn every_module_error_is_reported_with_its_entry_path() {
        let c = Config::from_toml_str(
            "[[modules]]\nid = \"a\"\nkind = \"ip_list\"\n\
             [[modules]]\nid = \"b\"\nkind = \"waf\"\nsets = [\"nope\"]\n\
             [[modules]]\nid = \"c\"\nkind = \"cors\"\n\
             [[modules]]\nid = \"d\"\nkind = \"rate_limit\"\nrate = -1\n\
             [[modules]]\nid = \"e\"\nkind = \"decrypt\"\n",
        )
        .unwrap();
        let errs: Vec<String> = Snapshot::build(c, 1)
            .err()
            .unwrap()
            .iter()
            .map(|e| e.to_string())
            .collect();
        for prefix in [
            "modules[1].sets",
            "modules[2].allow_origins: ",
            "modules[3].rate: must be > 0",
            // decrypt needs its app keys
            "modules[4]",
        ] {
            assert!(
                errs.iter().any(|e| e.starts_with(prefix)),
                "{prefix}: {errs:#?}"
            );
        }
        assert_eq!(errs.len(), 4, "{errs:#?}");
    }

    #[test]
    fn resolves_upstreams_and_routes() {
        let c = Config::from_toml_str(
            "[[upstreams]]\nid = \"u\"\nnodes = [{ addr = \"127.0.0.1:9\", weight = 3 }]\n\
             [[routes]]\nid = \"r\"\npaths = [\"/*\"]\nupstream = \"u\"\n",
        )
        .unwrap();
        let s = Snapshot::build(c, 7).unwrap();
        assert_eq!(s.version, 7);
        assert_eq!(s.route_upstream, vec![0]);
        assert_eq!(s.upstreams[0].weights, vec![3]);
    }
}
