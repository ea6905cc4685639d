//! A validator for the subset of JSON Schema that docs/schema/*.json use:
//! `type` (one name or a list), `required`, `properties`, `items`, `enum`
//! and `additionalProperties` (a boolean or a schema). Anything else in a
//! schema is an error here, so a schema cannot silently rely on a keyword
//! this validator ignores (annotations like `description` are allowed).
//!
//! Not the `jsonschema` crate: 0.61 pulls in 182 crates with its default
//! features (reqwest, tokio, rustls, ICU) and still 75 without them
//! (fancy-regex, idna, num-bigint), for six keywords.

use std::path::Path;

use serde_json::Value;

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "title", "description", "examples"];
/// Keywords this validator checks.
const CHECKED: &[&str] = &[
    "type",
    "required",
    "properties",
    "items",
    "enum",
    "additionalProperties",
];

/// The schema in `docs/schema/<name>.json`.
pub fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every way `value` breaks `schema`, each naming the JSON path.
pub fn errors(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, value, "$", &mut out);
    out
}

/// Panic with every error if `value` does not match schema `name`.
pub fn assert_valid(name: &str, value: &Value) {
    let errs = errors(&load(name), value);
    assert!(
        errs.is_empty(),
        "output does not match docs/schema/{name}.json:\n  {}\n{value}",
        errs.join("\n  ")
    );
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => panic!("unknown type {other:?} in a schema"),
    }
}

fn check(schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let s = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            out.push(format!("{at}: nothing is allowed here"));
            return;
        }
        Value::Object(s) => s,
        other => panic!("{at}: a schema must be an object or a boolean, not {other}"),
    };
    for key in s.keys() {
        assert!(
            CHECKED.contains(&key.as_str()) || ANNOTATIONS.contains(&key.as_str()),
            "{at}: schema keyword {key:?} is not supported by tests/common/schema.rs"
        );
    }
    if let Some(t) = s.get("type") {
        let names: Vec<&str> = match t {
            Value::String(n) => vec![n.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => panic!("{at}: bad type {other}"),
        };
        if !names.iter().any(|n| type_matches(n, v)) {
            out.push(format!("{at}: expected {}, got {v}", names.join(" or ")));
            return;
        }
    }
    if let Some(Value::Array(allowed)) = s.get("enum") {
        if !allowed.contains(v) {
            out.push(format!(
                "{at}: {v} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }
    if let Value::Object(obj) = v {
        if let Some(Value::Array(req)) = s.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    out.push(format!("{at}: missing required field {r:?}"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (k, child) in obj {
            let path = format!("{at}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, child, &path, out),
                None => {
                    if let Some(extra) = s.get("additionalProperties") {
                        check(extra, child, &path, out);
                    }
                }
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (v, s.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(sub, item, &format!("{at}[{i}]"), out);
        }
    }
}
