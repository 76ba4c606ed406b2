//! Order forms generated from a catalog entry's JSON Schema, and the form's fields read back
//! into the entry's inputs. Each top-level property is one field: a string is a text box (a
//! select when it has an `enum`), an integer or number a number box with its bounds, a boolean
//! a checkbox, anything else a JSON text area. Required fields, defaults and descriptions come
//! from the schema. The server's validation is the one that counts: a value the form cannot
//! read as its type is sent as the text it is, and the API's error lands on its field. Pure.

use maud::{Markup, html};
use serde_json::{Map, Value};

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    /// Free text.
    Text,
    /// One of these strings.
    Choice(Vec<String>),
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// Yes or no.
    Boolean,
    /// Any JSON (arrays, objects).
    Json,
}

/// One field of an order form.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Field {
    /// The property's name (the form field's name too).
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// Listed in the schema's `required`.
    pub required: bool,
    /// The schema's `description`.
    pub description: Option<String>,
    /// The entry's default, else the schema's.
    pub default: Option<Value>,
    /// `minimum` / `minLength`.
    pub min: Option<f64>,
    /// `maximum` / `maxLength`.
    pub max: Option<f64>,
    /// A string's `pattern`.
    pub pattern: Option<String>,
}

/// The fields of `schema`, with the entry's `defaults` over the schema's own.
pub(super) fn fields(schema: &Value, defaults: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    // Required fields first, each group in name order (a JSON object keeps no order here).
    let mut names: Vec<&String> = props.keys().collect();
    names.sort_by_key(|n| (!required.contains(&n.as_str()), n.as_str()));
    names
        .into_iter()
        .filter_map(|name| props.get(name).map(|p| (name, p)))
        .map(|(name, p)| {
            let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
            let choices = p.get("enum").and_then(Value::as_array).map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            });
            let kind = match (ty, choices) {
                (_, Some(c)) if !c.is_empty() => Kind::Choice(c),
                ("string", _) => Kind::Text,
                ("integer", _) => Kind::Integer,
                ("number", _) => Kind::Number,
                ("boolean", _) => Kind::Boolean,
                _ => Kind::Json,
            };
            let num = |k: &str| p.get(k).and_then(Value::as_f64);
            let (min, max) = if kind == Kind::Text {
                (num("minLength"), num("maxLength"))
            } else {
                (num("minimum"), num("maximum"))
            };
            Field {
                name: name.clone(),
                required: required.contains(&name.as_str()),
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                default: defaults.get(name).or_else(|| p.get("default")).cloned(),
                pattern: p.get("pattern").and_then(Value::as_str).map(str::to_string),
                kind,
                min,
                max,
            }
        })
        .collect()
}

/// The inputs a posted form gives: each field read as its kind; an empty field is left out;
/// a value that is not of its kind is sent as its text, for the API to refuse at its pointer.
pub(super) fn read(fields: &[Field], posted: &[(String, String)]) -> Map<String, Value> {
    let get = |name: &str| {
        posted
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let mut out = Map::new();
    for f in fields {
        let raw = get(&f.name);
        let value = match (&f.kind, raw) {
            (Kind::Boolean, raw) => Value::Bool(raw.is_some_and(|v| v == "on" || v == "true")),
            (_, None) => continue,
            (_, Some(v)) if v.is_empty() => continue,
            (Kind::Text | Kind::Choice(_), Some(v)) => Value::String(v),
            (Kind::Integer, Some(v)) => v
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(v)),
            (Kind::Number, Some(v)) => v
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::String(v.clone()), Value::Number),
            (Kind::Json, Some(v)) => serde_json::from_str(&v).unwrap_or(Value::String(v)),
        };
        out.insert(f.name.clone(), value);
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn bound(v: Option<f64>) -> Option<String> {
    v.map(|n| {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", n as i64)
        } else {
            n.to_string()
        }
    })
}

/// The fields as HTML: each labelled, described, with its error (a message from the API for
/// its pointer `/inputs/<name>`) beside it; `values` are what was sent last, if anything.
pub(super) fn render(
    fields: &[Field],
    values: Option<&Map<String, Value>>,
    errors: &[(String, String)],
) -> Markup {
    html! {
        @for f in fields {
            @let id = format!("in-{}", f.name);
            @let help = format!("{id}-help");
            @let err_id = format!("{id}-error");
            @let error: Vec<&str> = errors
                .iter()
                .filter(|(p, _)| p == &format!("/inputs/{}", f.name) || p.starts_with(&format!("/inputs/{}/", f.name)))
                .map(|(_, m)| m.as_str())
                .collect();
            @let value = values.and_then(|v| v.get(&f.name)).or(f.default.as_ref()).map(text);
            @let described = {
                let mut d = Vec::new();
                if f.description.is_some() { d.push(help.clone()); }
                if !error.is_empty() { d.push(err_id.clone()); }
                (!d.is_empty()).then(|| d.join(" "))
            };
            @let invalid = (!error.is_empty()).then_some("true");
            div class="field" data-field=(f.name) {
                @match &f.kind {
                    Kind::Boolean => {
                        label for=(id) {
                            input type="checkbox" id=(id) name=(f.name)
                                checked[value.as_deref() == Some("true")]
                                aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                            " " (f.name)
                        }
                    }
                    kind => {
                        label for=(id) { (f.name) @if f.required { " " abbr title="required" { "*" } } }
                        @match kind {
                            Kind::Choice(choices) => {
                                select id=(id) name=(f.name) required[f.required]
                                    aria-describedby=[described.as_deref()] aria-invalid=[invalid] {
                                    @if !f.required { option value="" { "—" } }
                                    @for c in choices {
                                        option value=(c) selected[value.as_deref() == Some(c.as_str())] { (c) }
                                    }
                                }
                            }
                            Kind::Integer | Kind::Number => {
                                input type="number" id=(id) name=(f.name) value=[value.as_deref()]
                                    step=(if f.kind == Kind::Integer { "1" } else { "any" })
                                    min=[bound(f.min)] max=[bound(f.max)] required[f.required]
                                    aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                            }
                            Kind::Json => {
                                textarea id=(id) name=(f.name) rows="4" required[f.required]
                                    aria-describedby=[described.as_deref()] aria-invalid=[invalid] {
                                    (value.unwrap_or_default())
                                }
                            }
                            _ => {
                                input type="text" id=(id) name=(f.name) value=[value.as_deref()]
                                    minlength=[bound(f.min)] maxlength=[bound(f.max)]
                                    pattern=[f.pattern.as_deref()] required[f.required]
                                    aria-describedby=[described.as_deref()] aria-invalid=[invalid];
                            }
                        }
                    }
                }
                @if let Some(d) = &f.description { p class="help" id=(help) { (d) } }
                @if !error.is_empty() {
                    p class="error" id=(err_id) role="alert" { (error.join("; ")) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["count"],
            "properties": {
                "count": {"type": "integer", "minimum": 1, "maximum": 50, "description": "how many"},
                "size": {"type": "string", "enum": ["small", "large"]},
                "name": {"type": "string", "maxLength": 20, "pattern": "^[a-z]+$"},
                "public": {"type": "boolean"},
                "tags": {"type": "array"}
            }
        })
    }

    #[test]
    fn each_property_becomes_a_field_of_its_kind_with_bounds_and_defaults() {
        let f = fields(&schema(), &json!({"size": "small"}));
        let by = |n: &str| f.iter().find(|x| x.name == n).expect("field").clone();
        assert_eq!(by("count").kind, Kind::Integer);
        assert!(by("count").required);
        assert_eq!((by("count").min, by("count").max), (Some(1.0), Some(50.0)));
        assert_eq!(
            by("size").kind,
            Kind::Choice(vec!["small".into(), "large".into()])
        );
        assert_eq!(by("size").default, Some(json!("small")));
        assert_eq!(by("name").max, Some(20.0));
        assert_eq!(by("public").kind, Kind::Boolean);
        assert_eq!(by("tags").kind, Kind::Json);
    }

    #[test]
    fn a_posted_form_reads_back_typed_and_leaves_bad_values_to_the_server() {
        let f = fields(&schema(), &Value::Null);
        let posted = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let got = read(
            &f,
            &posted(&[
                ("count", "3"),
                ("size", "large"),
                ("name", ""),
                ("tags", "[1]"),
            ]),
        );
        assert_eq!(
            Value::Object(got),
            json!({"count": 3, "size": "large", "public": false, "tags": [1]})
        );
        let got = read(&f, &posted(&[("count", "three"), ("public", "on")]));
        assert_eq!(
            Value::Object(got),
            json!({"count": "three", "public": true})
        );
    }

    #[test]
    fn an_error_is_shown_on_its_field_and_linked_to_it() {
        let f = fields(&schema(), &Value::Null);
        let html = render(
            &f,
            None,
            &[("/inputs/count".into(), "must be at most 50".into())],
        )
        .into_string();
        assert!(html.contains(r#"id="in-count-error""#), "{html}");
        assert!(html.contains("must be at most 50"), "{html}");
        assert!(
            html.contains(r#"aria-describedby="in-count-help in-count-error""#),
            "{html}"
        );
        assert_eq!(html.matches(r#"role="alert""#).count(), 1, "{html}");
    }
}
