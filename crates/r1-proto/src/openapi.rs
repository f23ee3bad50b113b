//! The OpenAPI 3.1 document of the HTTP API, generated from [`OPERATIONS`].
//!
//! The daemon serves it at `GET /v1/openapi.json`; the committed copy is
//! `docs/openapi.json`, and a test fails when it drifts (regenerate with
//! `R1_BLESS=1 cargo test -p r1-proto --test schema`).

use serde_json::{json, Map, Value};

use crate::catalog::{add_operation_types, Idempotency, OperationInfo, OPERATIONS};
use crate::schema::strictify;
use crate::{ErrorEnvelope, PROTOCOL};

/// Where components live in the document.
const COMPONENTS: &str = "/components/schemas";

/// The OpenAPI 3.1 document of every catalog operation.
pub fn document() -> Value {
    let schemas = components();
    let mut paths = Map::new();
    for op in OPERATIONS {
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(
                op.http_method.as_str().to_ascii_lowercase(),
                operation(op, &schemas),
            );
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "r1 daemon API",
            "version": PROTOCOL,
            "description": "Every operation of the r1 daemon over HTTP, generated from the \
                operation catalog in r1-proto. The same operations are WebSocket JSON-RPC \
                methods (`/v1/ws`, by their `operationId`) and MCP tools (`x-r1-mcp-tool`). \
                Every error is the envelope `ErrorEnvelope` with one of ten codes.",
        },
        "servers": [{
            "url": "http://127.0.0.1:{port}",
            "variables": {"port": {"default": "7777", "description": "The port in daemon.json."}},
        }],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The token in $R1_HOME/token.",
                },
            },
            "schemas": schemas,
        },
    })
}

/// Every params and result type and the error envelope, as components. Params are
/// described as requests accept them, results as responses carry them.
fn components() -> Map<String, Value> {
    let settings = |s: schemars::generate::SchemaSettings| {
        let mut s = s;
        s.definitions_path = COMPONENTS.into();
        s
    };
    let mut de = settings(schemars::generate::SchemaSettings::draft2020_12().for_deserialize())
        .into_generator();
    let mut ser = settings(schemars::generate::SchemaSettings::draft2020_12().for_serialize())
        .into_generator();
    add_operation_types(&mut de, &mut ser);
    let _ = ser.subschema_for::<ErrorEnvelope>();
    let mut out = Map::new();
    for (name, schema) in de.take_definitions(true) {
        out.insert(name, schema);
    }
    for (name, schema) in ser.take_definitions(true) {
        out.entry(name).or_insert(schema);
    }
    strictify_all(&mut out);
    out
}

fn strictify_all(schemas: &mut Map<String, Value>) {
    for v in schemas.values_mut() {
        strictify(v);
    }
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#{COMPONENTS}/{name}") })
}

/// One operation object.
fn operation(op: &OperationInfo, schemas: &Map<String, Value>) -> Value {
    let params = schemas.get(op.params_type).cloned().unwrap_or(json!({}));
    let props = params["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Vec<&str> = params["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let path_fields: Vec<&str> = op.path_fields().collect();
    let mut parameters = Vec::new();
    for f in &path_fields {
        parameters.push(json!({
            "name": f,
            "in": "path",
            "required": true,
            "schema": props.get(*f).cloned().unwrap_or(json!({"type": "string"})),
        }));
    }
    let mut o = Map::new();
    o.insert("operationId".into(), op.method.into());
    o.insert("summary".into(), op.title.into());
    o.insert("description".into(), op.doc().into());
    if op.http_method.has_body() {
        let mut body = params.clone();
        if let Some(Value::Object(p)) = body.get_mut("properties") {
            p.retain(|k, _| !path_fields.contains(&k.as_str()));
        }
        if let Some(Value::Array(r)) = body.get_mut("required") {
            r.retain(|k| !k.as_str().is_some_and(|k| path_fields.contains(&k)));
        }
        if let Value::Object(b) = &mut body {
            b.remove("title");
            b.remove("description");
        }
        o.insert(
            "requestBody".into(),
            json!({
                "required": false,
                "description": "A JSON object; an empty body reads as `{}`.",
                "content": {"application/json": {"schema": body}},
            }),
        );
    } else {
        for (name, schema) in &props {
            if path_fields.contains(&name.as_str()) {
                continue;
            }
            parameters.push(json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": schema,
            }));
        }
    }
    if let Idempotency::Keyed(field) = op.idempotency {
        parameters.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": format!("The same as `{field}` in the body, when the body has none."),
            "schema": {"type": "string"},
        }));
    }
    if !parameters.is_empty() {
        o.insert("parameters".into(), Value::Array(parameters));
    }
    let ok = json!({
        "description": op.title,
        "content": {"application/json": {"schema": reference(op.result_type)}},
    });
    let mut responses = Map::new();
    responses.insert(op.status.to_string(), ok.clone());
    if matches!(op.idempotency, Idempotency::Keyed(_)) && op.status != 200 {
        let mut repeat = ok;
        repeat["description"] = "A repeat of an earlier call with the same key".into();
        responses.insert("200".into(), repeat);
    }
    responses.insert(
        "default".into(),
        json!({
            "description": "The error envelope, with the HTTP status of its code.",
            "content": {"application/json": {"schema": reference("ErrorEnvelope")}},
        }),
    );
    o.insert("responses".into(), Value::Object(responses));
    o.insert("x-r1-capability".into(), op.capability.as_str().into());
    o.insert(
        "x-r1-idempotency".into(),
        match op.idempotency {
            Idempotency::None => "none".into(),
            Idempotency::Natural => "natural".into(),
            Idempotency::Keyed(k) => format!("keyed:{k}").into(),
        },
    );
    if let Some(t) = op.mcp {
        o.insert("x-r1-mcp-tool".into(), t.name.into());
    }
    Value::Object(o)
}
