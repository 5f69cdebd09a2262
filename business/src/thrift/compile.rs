//! Building the Thrift tables of a snapshot: every `[[services]]` IDL set parsed and
//! resolved (or taken over from the previous version when its files did not change), then
//! every route to a Thrift upstream resolved to a [`ThriftRoute`]. Runs off the workers'
//! threads, with the rest of the snapshot; errors name the config field.

use super::{ArgFrom, ThriftRoute, MAX_ARGS};
use crate::snapshot::Snapshot;
use conf::{
    ArgSource, Config, ConfigError, Route, Service, ThriftProtocol, ThriftTransport, UnknownFields,
    UpstreamProtocol,
};
use protocols::thrift::codec::{Limits, Protocol, Transport};
use protocols::thrift::idl::{Idl, IdlError, IdlLimits, Method, Ty};
use protocols::thrift::json::{self, MappingPolicy};
use std::sync::Arc;

/// The IDL of every service (parallel to `config.services`) and the Thrift route of every
/// route (`None` for HTTP routes). `prev` lends the IDLs of services whose files are the same.
pub type Compiled = (Vec<Arc<Idl>>, Vec<Option<ThriftRoute>>);

pub fn compile(config: &Config, prev: Option<&Snapshot>) -> Result<Compiled, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut idls: Vec<Option<Arc<Idl>>> = Vec::with_capacity(config.services.len());
    for (i, s) in config.services.iter().enumerate() {
        let reused = prev.and_then(|p| {
            let j = p.config.services.iter().position(|o| o == s)?;
            p.services.get(j).cloned()
        });
        match reused.map(Ok).unwrap_or_else(|| build_idl(s)) {
            Ok(idl) => idls.push(Some(idl)),
            Err(e) => {
                errors.push(idl_error(i, s, &e));
                idls.push(None);
            }
        }
    }
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, r) in config.routes.iter().enumerate() {
        let Some(u) = config.upstreams.iter().find(|u| u.id == r.upstream) else {
            routes.push(None);
            continue;
        };
        if u.protocol != UpstreamProtocol::Thrift {
            routes.push(None);
            continue;
        }
        let Some(j) = r
            .service
            .as_ref()
            .and_then(|id| config.services.iter().position(|s| s.id == *id))
        else {
            routes.push(None); // reported by validation
            continue;
        };
        let Some(idl) = idls.get(j).cloned().flatten() else {
            routes.push(None); // the service's own error is reported
            continue;
        };
        let service = &config.services[j];
        let protocol = match u.thrift_protocol.or(service.thrift_protocol) {
            Some(ThriftProtocol::Compact) => Protocol::Compact,
            _ => Protocol::Binary,
        };
        let transport = match u.transport.or(service.transport) {
            Some(ThriftTransport::Buffered) => Transport::Buffered,
            _ => Transport::Framed,
        };
        let max = u.thrift().max_message_bytes;
        let limits = Limits {
            max_frame: max,
            max_string: max,
            ..Limits::default()
        };
        match route(&format!("routes[{i}]"), r, idl, protocol, transport, limits) {
            Ok(t) => routes.push(Some(t)),
            Err(mut e) => {
                errors.append(&mut e);
                routes.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok((idls.into_iter().flatten().collect(), routes))
    } else {
        Err(errors)
    }
}

fn build_idl(s: &Service) -> Result<Arc<Idl>, IdlError> {
    let files: Vec<(String, String)> = s
        .files
        .iter()
        .map(|f| (f.name.clone(), f.text.clone().unwrap_or_default()))
        .collect();
    Idl::build(&files, s.main_file(), &IdlLimits::default())
}

/// `services[i].files[j]: file:line: problem` (the file found by name; the set when none).
fn idl_error(i: usize, s: &Service, e: &IdlError) -> ConfigError {
    let path = match s.files.iter().position(|f| f.name == e.file) {
        Some(j) => format!("services[{i}].files[{j}]"),
        None => format!("services[{i}].files"),
    };
    ConfigError::new(path, e.to_string())
}

fn route(
    p: &str,
    r: &Route,
    idl: Arc<Idl>,
    protocol: Protocol,
    transport: Transport,
    limits: Limits,
) -> Result<ThriftRoute, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let wanted = r.method.as_deref().unwrap_or_default();
    let method = find_method(&idl, wanted)
        .map_err(|m| vec![ConfigError::new(format!("{p}.method"), m)])?
        .clone();
    let args_sd = idl.struct_def(method.args);
    let arg_names = || {
        let names: Vec<&str> = args_sd.fields.iter().map(|f| f.name.as_str()).collect();
        format!("{} takes: {}", method.name, or_none(&names))
    };
    let mut args: Vec<(String, ArgFrom)> = Vec::new();
    for (name, source) in &r.args {
        if args_sd.field_by_name(name).is_none() {
            errors.push(ConfigError::new(
                format!("{p}.args.{name}"),
                format!("not an argument ({})", arg_names()),
            ));
            continue;
        }
        let from = match ArgSource::parse(source) {
            Ok(ArgSource::Path(n)) => ArgFrom::Path(n.to_string()),
            Ok(ArgSource::Query(n)) => ArgFrom::Query(n.to_string()),
            Ok(ArgSource::Header(n)) => ArgFrom::Header(n.to_string()),
            Err(_) => continue, // reported by validation
        };
        args.push((name.clone(), from));
    }
    if let Some(b) = &r.body_arg {
        if args_sd.field_by_name(b).is_none() {
            errors.push(ConfigError::new(
                format!("{p}.body_arg"),
                format!("not an argument ({})", arg_names()),
            ));
        }
    }
    // A path capture named like an argument is that argument unless mapped otherwise.
    for path in &r.paths {
        let Ok(pattern) = conf::pattern::parse_path(path) else {
            continue;
        };
        for name in pattern.param_names() {
            let taken = r.args.contains_key(name)
                || r.body_arg.as_deref() == Some(name)
                || args.iter().any(|(a, _)| a == name);
            if !taken && args_sd.field_by_name(name).is_some() {
                args.push((name.to_string(), ArgFrom::Path(name.to_string())));
            }
        }
    }
    if args.len() > MAX_ARGS {
        errors.push(ConfigError::new(
            format!("{p}.args"),
            format!("at most {MAX_ARGS} arguments may come from path, query and headers"),
        ));
    }
    let declared = declared_exceptions(&idl, &method);
    let mut exceptions = Vec::new();
    for (key, status) in &r.exceptions {
        let hit = declared
            .iter()
            .find(|(field, ty)| ty == key || plain(ty) == key.as_str() || field == key);
        match hit {
            Some((_, ty)) => exceptions.push((ty.clone(), *status)),
            None => {
                let names: Vec<&str> = declared.iter().map(|(_, t)| plain(t)).collect();
                errors.push(ConfigError::new(
                    format!("{p}.exceptions.{key}"),
                    format!(
                        "not an exception {} declares (it declares: {})",
                        method.name,
                        or_none(&names)
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let wire_name = match &r.multiplexed_name {
        Some(m) => format!("{m}:{}", method.name),
        None => method.name.clone(),
    };
    let policy = MappingPolicy {
        i64_as_string: r.i64_as_string.unwrap_or(true),
        unknown_fields: match r.unknown_fields.unwrap_or_default() {
            UnknownFields::Reject => json::UnknownFields::Reject,
            UnknownFields::Ignore => json::UnknownFields::Ignore,
        },
        args_required_by_default: true,
        body_arg: r.body_arg.clone(),
        limits,
        ..MappingPolicy::default()
    };
    Ok(ThriftRoute {
        idl,
        method,
        wire_name,
        protocol,
        transport,
        args,
        exceptions,
        policy,
    })
}

/// `Service.method` (the service by qualified or plain name) or a plain `method` that only
/// one service declares (inherited copies of one method count once).
fn find_method<'i>(idl: &'i Idl, wanted: &str) -> Result<&'i Method, String> {
    if let Some((svc, m)) = wanted.rsplit_once('.') {
        let Some(s) = idl.service(svc) else {
            let names: Vec<&str> = idl.services().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "no service {svc:?} in the IDL (services: {})",
                or_none(&names)
            ));
        };
        return s.method(m).ok_or_else(|| {
            let mut names: Vec<&str> = s.methods().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            format!(
                "service {svc:?} has no method {m:?} (methods: {})",
                or_none(&names)
            )
        });
    }
    let mut found: Vec<&Method> = Vec::new();
    for s in idl.services() {
        if let Some(m) = s.method(wanted) {
            if !found.iter().any(|f| f.declared_in == m.declared_in) {
                found.push(m);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("no service in the IDL has a method {wanted:?}")),
        several => {
            let names: Vec<&str> = several.iter().map(|m| m.declared_in.as_str()).collect();
            Err(format!(
                "{wanted:?} is declared by several services ({}): write Service.{wanted}",
                names.join(", ")
            ))
        }
    }
}

/// The method's declared exceptions: (result field name, qualified type name).
fn declared_exceptions(idl: &Idl, m: &Method) -> Vec<(String, String)> {
    idl.struct_def(m.result)
        .fields
        .iter()
        .filter(|f| f.id != 0)
        .filter_map(|f| match f.ty {
            Ty::Struct(id) => Some((f.name.clone(), idl.struct_def(id).name.clone())),
            _ => None,
        })
        .collect()
}

/// `Type` of `file.Type`.
fn plain(qualified: &str) -> &str {
    qualified.rsplit('.').next().unwrap_or(qualified)
}

fn or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
