//! The helpers a workflow author may call in templates.
//!
//! Every helper is strict: a parameter naming a variable that is not in scope is an error
//! (except the first argument of `default`, whose purpose is to supply a missing value).

use handlebars::{
    Context, Handlebars, Helper, HelperDef, PathAndJson, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value as Json;

/// Names of every registered helper; block helpers `if`, `unless`, `each`, `with` come built in.
pub(super) const NAMES: &[&str] = &[
    "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len", "range", "map", "json",
    "default", "join", "contains", "concat", "if", "unless", "each", "with", "lookup",
];

/// Largest list `range` will build; larger fan-outs are a mistake or an attack.
const MAX_RANGE: u64 = 100_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    And,
    Or,
    Not,
    Len,
    Range,
    Map,
    Json,
    Default,
    Join,
    Contains,
    Concat,
}

#[derive(Debug, Clone, Copy)]
struct Strict {
    /// Which helper this is.
    kind: Kind,
    /// Its name, for messages.
    name: &'static str,
}

pub(super) fn register(h: &mut Handlebars<'static>) {
    let all = [
        (Kind::Eq, "eq"),
        (Kind::Ne, "ne"),
        (Kind::Gt, "gt"),
        (Kind::Gte, "gte"),
        (Kind::Lt, "lt"),
        (Kind::Lte, "lte"),
        (Kind::And, "and"),
        (Kind::Or, "or"),
        (Kind::Not, "not"),
        (Kind::Len, "len"),
        (Kind::Range, "range"),
        (Kind::Map, "map"),
        (Kind::Json, "json"),
        (Kind::Default, "default"),
        (Kind::Join, "join"),
        (Kind::Contains, "contains"),
        (Kind::Concat, "concat"),
    ];
    for (kind, name) in all {
        h.register_helper(name, Box::new(Strict { kind, name }));
    }
}

fn fail(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

fn missing(p: &PathAndJson<'_>) -> RenderError {
    match p.relative_path() {
        Some(path) => fail(format!("unknown variable `{path}`")),
        None => fail("unknown variable".to_string()),
    }
}

/// The truthiness rule of templates: false, null, 0, "" and empty lists and maps are false.
pub fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

fn compare(a: &Json, b: &Json) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Json::String(x), Json::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl HelperDef for Strict {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let params = h.params();
        let lenient = matches!(self.kind, Kind::Default);
        for (i, p) in params.iter().enumerate() {
            if p.is_value_missing() && !(lenient && i == 0) {
                return Err(missing(p));
            }
        }
        let arity = |n: usize| -> Result<(), RenderError> {
            if params.len() == n {
                Ok(())
            } else {
                Err(fail(format!(
                    "helper `{}` takes {n} argument{}, got {}",
                    self.name,
                    if n == 1 { "" } else { "s" },
                    params.len()
                )))
            }
        };
        let v = |i: usize| params[i].value();
        let out = match self.kind {
            Kind::Eq | Kind::Ne => {
                arity(2)?;
                let equal = match (v(0), v(1)) {
                    (Json::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
                    (a, b) => a == b,
                };
                Json::Bool(equal == matches!(self.kind, Kind::Eq))
            }
            Kind::Gt | Kind::Gte | Kind::Lt | Kind::Lte => {
                arity(2)?;
                let ord = compare(v(0), v(1)).ok_or_else(|| {
                    fail(format!(
                        "helper `{}` compares two numbers or two strings, got {} and {}",
                        self.name,
                        v(0),
                        v(1)
                    ))
                })?;
                use std::cmp::Ordering::*;
                Json::Bool(match self.kind {
                    Kind::Gt => ord == Greater,
                    Kind::Gte => ord != Less,
                    Kind::Lt => ord == Less,
                    _ => ord != Greater,
                })
            }
            Kind::And => {
                if params.len() < 2 {
                    return Err(fail("helper `and` takes at least 2 arguments".into()));
                }
                Json::Bool(params.iter().all(|p| truthy(p.value())))
            }
            Kind::Or => {
                if params.len() < 2 {
                    return Err(fail("helper `or` takes at least 2 arguments".into()));
                }
                Json::Bool(params.iter().any(|p| truthy(p.value())))
            }
            Kind::Not => {
                arity(1)?;
                Json::Bool(!truthy(v(0)))
            }
            Kind::Len => {
                arity(1)?;
                let n = match v(0) {
                    Json::Array(a) => a.len(),
                    Json::Object(o) => o.len(),
                    Json::String(s) => s.chars().count(),
                    other => {
                        return Err(fail(format!(
                            "helper `len` needs a list, map or string, got {other}"
                        )));
                    }
                };
                Json::from(n)
            }
            Kind::Range => {
                arity(1)?;
                let n = v(0).as_u64().ok_or_else(|| {
                    fail(format!(
                        "helper `range` needs a non-negative integer, got {}",
                        v(0)
                    ))
                })?;
                if n > MAX_RANGE {
                    return Err(fail(format!(
                        "helper `range` was asked for {n} items, more than the limit of {MAX_RANGE}"
                    )));
                }
                Json::Array((0..n).map(Json::from).collect())
            }
            Kind::Map => {
                arity(2)?;
                let Json::Array(items) = v(0) else {
                    return Err(fail(format!(
                        "helper `map` needs a list first, got {}",
                        v(0)
                    )));
                };
                let Json::String(field) = v(1) else {
                    return Err(fail(
                        "helper `map` needs a field name second, e.g. 'id'".into(),
                    ));
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item.get(field) {
                        Some(x) => out.push(x.clone()),
                        None => {
                            return Err(fail(format!(
                                "helper `map`: item {i} has no field `{field}`"
                            )));
                        }
                    }
                }
                Json::Array(out)
            }
            Kind::Json => {
                arity(1)?;
                Json::String(v(0).to_string())
            }
            Kind::Default => {
                arity(2)?;
                if params[0].is_value_missing() || v(0).is_null() {
                    v(1).clone()
                } else {
                    v(0).clone()
                }
            }
            Kind::Join => {
                arity(2)?;
                let Json::Array(items) = v(0) else {
                    return Err(fail(format!(
                        "helper `join` needs a list first, got {}",
                        v(0)
                    )));
                };
                let sep = v(1).as_str().unwrap_or(",");
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        Json::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                Json::String(parts.join(sep))
            }
            Kind::Contains => {
                arity(2)?;
                Json::Bool(match v(0) {
                    Json::Array(a) => a.contains(v(1)),
                    Json::String(s) => v(1).as_str().is_some_and(|n| s.contains(n)),
                    Json::Object(o) => v(1).as_str().is_some_and(|k| o.contains_key(k)),
                    _ => false,
                })
            }
            Kind::Concat => {
                let mut s = String::new();
                for p in params {
                    match p.value() {
                        Json::String(x) => s.push_str(x),
                        other => s.push_str(&other.to_string()),
                    }
                }
                Json::String(s)
            }
        };
        Ok(ScopedJson::Derived(out))
    }
}
