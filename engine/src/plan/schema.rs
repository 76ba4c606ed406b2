//! JSON Schema at validation time: compiling authored schemas with located errors, checking
//! partly templated values, mapping a violation's JSON pointer back to a file position.

use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::dsl::{Value, ValueKind};
use crate::template::TValue;

use super::CompiledSchema;

/// One schema violation: where in the instance, and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaViolation {
    /// JSON pointer into the instance (`""` for the root).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// For an unexpected property, its name (so the key itself can be pointed at).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SchemaViolation {
    /// Where in `root` (the authored value) the violation is: the unexpected key itself, or
    /// the node the pointer designates (or its nearest existing parent).
    pub fn locate(&self, root: &Value) -> Span {
        let (node, complete) = node_at(root, &self.pointer);
        match (&self.key, &node.kind) {
            (Some(key), ValueKind::Map(entries)) if complete => entries
                .iter()
                .find(|(k, _)| &k.value == key)
                .map_or(node.span, |(k, _)| k.span),
            _ => node.span,
        }
    }
}

/// Compiles a JSON Schema (2020-12 unless it says otherwise).
pub fn compile_schema(json: serde_json::Value) -> Result<CompiledSchema, String> {
    match jsonschema::validator_for(&json) {
        Ok(validator) => Ok(CompiledSchema { json, validator }),
        Err(e) => Err(e.to_string()),
    }
}

/// Compiles an authored schema, reporting at its position when it is not valid.
pub(crate) fn compile_located(
    v: &Value,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<std::sync::Arc<CompiledSchema>> {
    if !matches!(v.kind, ValueKind::Map(_)) {
        return None;
    }
    let json = v.to_json();
    if let Err(e) = jsonschema::meta::validate(&json) {
        let pointer = e.instance_path().to_string();
        diags.push(
            Diagnostic::new(
                "invalid-schema",
                locate_pointer(v, &pointer),
                format!("{what} is not a valid JSON Schema: {e}"),
            )
            .help("see https://json-schema.org/draft/2020-12 for the keywords and their types"),
        );
        return None;
    }
    match compile_schema(json) {
        Ok(s) => Some(std::sync::Arc::new(s)),
        Err(e) => {
            diags.push(Diagnostic::new(
                "invalid-schema",
                v.span,
                format!("{what} is not a valid JSON Schema: {e}"),
            ));
            None
        }
    }
}

/// Every violation of `instance`, in the validator's order.
pub(crate) fn violations(
    validator: &jsonschema::Validator,
    instance: &serde_json::Value,
) -> Vec<SchemaViolation> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let key = match e.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    unexpected.first().cloned()
                }
                _ => None,
            };
            SchemaViolation {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
                key,
            }
        })
        .collect()
}

/// The value with every template replaced by its source text, and the JSON pointers of the
/// templated places (whose real value is only known at run time).
pub(crate) fn partial_instance(tv: &TValue) -> (serde_json::Value, Vec<String>) {
    let mut templated = Vec::new();
    let v = partial(tv, String::new(), &mut templated);
    (v, templated)
}

fn partial(tv: &TValue, at: String, templated: &mut Vec<String>) -> serde_json::Value {
    match tv {
        TValue::Literal(v) => v.clone(),
        TValue::Template(t) => {
            templated.push(at);
            serde_json::Value::String(t.source().to_string())
        }
        TValue::List(items) => serde_json::Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| partial(x, format!("{at}/{i}"), templated))
                .collect(),
        ),
        TValue::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, x)| {
                    let key = crate::diag::pointer_token(k);
                    (k.clone(), partial(x, format!("{at}/{key}"), templated))
                })
                .collect(),
        ),
    }
}

/// The file position of the node a JSON pointer designates, or of its nearest existing parent.
pub fn locate_pointer(root: &Value, pointer: &str) -> Span {
    node_at(root, pointer).0.span
}

/// The node a JSON pointer designates, or its nearest existing parent (then `false`).
fn node_at<'a>(root: &'a Value, pointer: &str) -> (&'a Value, bool) {
    let mut node = root;
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        let next = match &node.kind {
            ValueKind::Map(entries) => entries.iter().find(|(k, _)| k.value == seg).map(|(_, v)| v),
            ValueKind::List(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return (node, false),
        }
    }
    (node, true)
}

/// A one-line summary of an object schema's properties, for hints.
pub(crate) fn describe_properties(schema: &serde_json::Value) -> String {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return "see the plugin's input schema: `GET /v1/plugins`".into();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let parts: Vec<String> = props
        .iter()
        .map(|(k, v)| {
            let req = if required.contains(&k.as_str()) {
                " (required)"
            } else {
                ""
            };
            format!("{k}: {}{req}", type_name(v))
        })
        .collect();
    format!("the plugin takes {}", parts.join(", "))
}

/// A short name for the type a schema accepts: `string`, `integer|null`, `GET|POST`, `Method`.
fn type_name(schema: &serde_json::Value) -> String {
    let join = |items: &Vec<serde_json::Value>| {
        items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("|")
    };
    if let Some(values) = schema.get("enum").and_then(|e| e.as_array()) {
        return join(values);
    }
    match schema.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(types)) => join(types),
        _ => match schema.get("$ref").and_then(|r| r.as_str()) {
            Some(r) => r.rsplit('/').next().unwrap_or(r).to_string(),
            None => "any".to_string(),
        },
    }
}
