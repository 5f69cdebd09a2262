//! The OpenAPI 3 document of the admin API, generated from the route table ([`ROUTES`]) and
//! the resource kinds the model has, so it lists exactly what the router serves. A pattern
//! with `{kind}` becomes one path per kind (`/admin/v1/routes/{id}`, ...).

use super::answer::Answer;
use super::router::{Params, Req, RouteDef, ROUTES};
use super::State;
use serde_json::{json, Map, Value};

/// Every (path, route) of the document, kinds expanded. A kind's path and method that a
/// row of its own serves (`/admin/v1/releases/{id}`) is documented once, as that row.
pub fn paths() -> Vec<(String, &'static RouteDef)> {
    let mut out: Vec<(String, &'static RouteDef)> = Vec::new();
    for r in ROUTES.iter().filter(|r| !r.pattern.contains("{kind}")) {
        out.push((r.pattern.to_string(), r));
    }
    for r in ROUTES.iter().filter(|r| r.pattern.contains("{kind}")) {
        for k in conf::store::kinds::active_kinds() {
            let path = r.pattern.replace("{kind}", k);
            if !out.iter().any(|(p, o)| *p == path && o.method == r.method) {
                out.push((path, r));
            }
        }
    }
    out
}

fn error_response(what: &str) -> Value {
    json!({
        "description": what,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn operation(path: &str, r: &RouteDef) -> Value {
    let mut responses = Map::new();
    let (status, schema) = r.ok;
    let ok = if schema.is_empty() {
        json!({"description": "done"})
    } else if schema == "Metrics" {
        json!({"description": "success", "content": {"text/plain": {"schema": {"type": "string"}}}})
    } else {
        json!({
            "description": "success",
            "content": {"application/json": {
                "schema": {"$ref": format!("#/components/schemas/{schema}")}
            }}
        })
    };
    responses.insert(status.to_string(), ok);
    if r.method == "PUT" {
        responses.insert(
            "201".into(),
            json!({"description": "created", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Resource"}}}}),
        );
    }
    if r.method == "PUT" || path.ends_with("/audit") {
        responses.insert(
            "400".into(),
            error_response("invalid input; `field` names it"),
        );
    }
    if r.auth {
        responses.insert("401".into(), error_response("missing or wrong X-API-Key"));
    }
    if path.contains("{id}") {
        responses.insert("404".into(), error_response("no resource with this id"));
    }
    if r.method == "PUT" || r.method == "DELETE" || r.method == "POST" {
        responses.insert(
            "409".into(),
            error_response("a reference would dangle (PUT) or the resource is in use (DELETE)"),
        );
        responses.insert(
            "503".into(),
            error_response("saved, but not every worker confirmed in time; or shutting down"),
        );
    }
    if r.method == "PUT" {
        responses.insert(
            "413".into(),
            error_response("body over admin.max_body_bytes"),
        );
    }
    let mut op = json!({
        "summary": r.summary,
        "operationId": format!(
            "{}{}",
            r.method.to_lowercase(),
            path.replace(['/', '.', '{', '}'], "_")
        ),
        "responses": responses,
        "security": if r.auth { json!([{"ApiKey": []}]) } else { json!([]) },
    });
    if path.contains("{id}") {
        op["parameters"] = json!([{
            "name": "id", "in": "path", "required": true,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}
        }]);
    }
    if path.ends_with("/audit") {
        op["parameters"] = json!([{
            "name": "limit", "in": "query", "required": false,
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
        }]);
    }
    if r.method == "PUT" {
        op["requestBody"] = json!({
            "required": true,
            "description": "the resource, as in the config file (docs/config.md); `id` may be \
                            left out and otherwise must equal the path's",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Resource"}}}
        });
    }
    op
}

/// The whole document.
pub fn document() -> Value {
    let mut paths_obj = Map::new();
    for (path, r) in paths() {
        let entry = paths_obj
            .entry(path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(r.method.to_lowercase(), operation(&path, r));
        }
    }
    let int = json!({"type": "integer", "format": "int64", "minimum": 1});
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Gatehouse admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Resources of the gateway, changed at run time. A change is \
                validated whole, saved, then published to every worker; the answer comes \
                once every worker serves it. See docs/admin.md."
        },
        "paths": paths_obj,
        "components": {
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message", "field"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "field": {"type": "string",
                                      "description": "the offending field, \"\" if none"}
                        }
                    }}
                },
                "Resource": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": true,
                    "description": "a route, upstream, module, ... with the fields of \
                        docs/config.md; answers add the config `version`",
                    "properties": {"id": {"type": "string"}, "version": int}
                },
                "List": {
                    "type": "object",
                    "required": ["items", "version"],
                    "properties": {
                        "items": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/Resource"}},
                        "version": int
                    }
                },
                "Config": {
                    "type": "object",
                    "required": ["version"],
                    "additionalProperties": true,
                    "description": "every table and resource array of docs/config.md",
                    "properties": {"version": int}
                },
                "AuditRecord": {
                    "type": "object",
                    "required": ["time", "who", "client", "method", "path", "kind", "id",
                                 "version", "status"],
                    "properties": {
                        "time": {"type": "string", "format": "date-time"},
                        "who": {"type": "string"},
                        "client": {"type": "string"},
                        "method": {"type": "string"},
                        "path": {"type": "string"},
                        "kind": {"type": "string"},
                        "id": {"type": "string"},
                        "version": int,
                        "status": {"type": "integer"}
                    }
                },
                "AuditPage": {
                    "type": "object",
                    "required": ["items", "version"],
                    "properties": {
                        "items": {"type": "array",
                                  "items": {"$ref": "#/components/schemas/AuditRecord"}},
                        "version": int
                    }
                },
                "Health": {
                    "type": "object",
                    "properties": {"status": {"type": "string"}, "version": int}
                },
                "OpenApi": {"type": "object"}
            }
        }
    });
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.extend(super::releases::schemas());
    }
    doc
}

pub fn handler(_: &State, _: &Req, _: &Params) -> Answer {
    Answer::json(200, &document())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::router::match_pattern;

    #[test]
    fn every_documented_operation_is_routed() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/admin/v1/routes/{id}"));
        assert!(paths.contains_key("/admin/v1/upstreams"));
        let mut ops = 0;
        for (path, item) in paths {
            let concrete = path.replace("{id}", "x");
            for method in item.as_object().unwrap().keys() {
                let m = method.to_uppercase();
                let routed = ROUTES
                    .iter()
                    .any(|r| r.method == m && match_pattern(r.pattern, &concrete).is_some());
                assert!(routed, "{m} {path} is documented but not routed");
                ops += 1;
            }
        }
        // And the reverse: every route row appears (once per kind for kind patterns).
        assert_eq!(ops, super::paths().len());
    }
}
