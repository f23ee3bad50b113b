//! JSON Schemas that strict validators accept.
//!
//! schemars spells an optional field as nullable (`"type": ["integer", "null"]`, or
//! `anyOf` with a `null` branch) and adds Rust formats (`uint64`, `uint32`, `uint`)
//! no JSON Schema validator knows. MCP Inspector refuses the first and strict
//! validators the second. r1 never sends or expects `null` for an optional field (it
//! is absent instead), so [`strictify`] gives each field a single type, leaves it out
//! of `required` (schemars already does), and drops the non-standard formats while
//! keeping `minimum: 0`.

use schemars::JsonSchema;
use serde_json::{Map, Value};

/// Formats that are Rust integer widths, not JSON Schema formats.
const RUST_FORMATS: &[&str] = &[
    "uint", "int", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float", "double", "uint128", "int128",
];

/// The strict JSON Schema (draft 2020-12) of `T` as a request accepts it,
/// self-contained: its subschemas are in `$defs`.
pub fn strict_schema_for<T: JsonSchema>() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    strictify(&mut v);
    v
}

/// The strict JSON Schema (draft 2020-12) of `T` as a response carries it.
pub fn strict_output_schema_for<T: JsonSchema>() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    strictify(&mut v);
    v
}

/// Rewrites a schemars schema in place so strict validators accept it (see the
/// module doc).
pub fn strictify(v: &mut Value) {
    match v {
        Value::Object(map) => {
            strip_null(map);
            if let Some(Value::String(f)) = map.get("format") {
                if RUST_FORMATS.contains(&f.as_str()) {
                    map.remove("format");
                }
            }
            for (_, child) in map.iter_mut() {
                strictify(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strictify),
        _ => {}
    }
}

/// Removes `null` from one schema object: from its `type` list, its `enum`, its
/// `anyOf`/`oneOf` branches (a single remaining branch is merged into the object),
/// and a `default: null`.
fn strip_null(map: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let t = types.remove(0);
            map.insert("type".into(), t);
        }
    }
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if map.get("default").is_some_and(Value::is_null) {
        map.remove("default");
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(branches)) = map.get_mut(key) else {
            continue;
        };
        let before = branches.len();
        branches.retain(|b| b.get("type").and_then(Value::as_str) != Some("null"));
        if branches.len() == 1 && before > 1 {
            if let Some(Value::Object(only)) = map.remove(key).and_then(|b| match b {
                Value::Array(mut b) => b.pop(),
                _ => None,
            }) {
                for (k, v) in only {
                    map.entry(k).or_insert(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nulls_or_formats(v: &Value) -> Vec<String> {
        let mut bad = Vec::new();
        match v {
            Value::Object(m) => {
                if let Some(t) = m.get("type") {
                    if t.is_array() || t == "null" {
                        bad.push(format!("type {t}"));
                    }
                }
                if let Some(Value::String(f)) = m.get("format") {
                    if RUST_FORMATS.contains(&f.as_str()) {
                        bad.push(format!("format {f}"));
                    }
                }
                m.values().for_each(|c| bad.extend(nulls_or_formats(c)));
            }
            Value::Array(a) => a.iter().for_each(|c| bad.extend(nulls_or_formats(c))),
            _ => {}
        }
        bad
    }

    #[test]
    fn every_operation_schema_is_strict() {
        for op in crate::OPERATIONS {
            for s in [(op.params_schema)(), (op.result_schema)()] {
                let bad = nulls_or_formats(&s);
                assert!(bad.is_empty(), "{}: {bad:?}", op.method);
            }
        }
    }

    #[test]
    fn optional_integers_have_one_type_and_keep_their_minimum() {
        let s = strict_schema_for::<crate::JournalParams>();
        assert_eq!(s["properties"]["since_seq"]["type"], "integer");
        assert_eq!(s["properties"]["since_seq"]["minimum"], 0);
        assert!(s["properties"]["since_seq"].get("format").is_none());
        assert_eq!(s["required"], serde_json::json!(["session_id"]));
    }
}
