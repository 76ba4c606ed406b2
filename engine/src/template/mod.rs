//! Templates: strict handlebars that keep JSON types.
//!
//! A string that is exactly one `{{ … }}` renders to a JSON value of the expression's own type
//! (a number stays a number, a list a list); any other string renders to text. Strict: a
//! variable that is not in scope is an error, never an empty string. This module also lists a
//! template's references so `plan` can check them statically.
//!
//! Pure: no I/O. Knows handlebars and JSON; knows nothing about steps, runs or plugins beyond
//! the names of the scope's roots.

mod helpers;

pub use helpers::truthy;

use std::sync::LazyLock;

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Context, Handlebars, Path, PathSeg, RenderContext, Renderable, StringOutput};
use serde_json::Value as Json;

/// The one registry every template renders with: strict, no HTML escaping, csmp's helpers.
static REGISTRY: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(handlebars::no_escape);
    helpers::register(&mut h);
    h
});

/// The helpers a template may call, for messages and for the static check.
pub const HELPERS: &[&str] = helpers::NAMES;

/// A template that failed to compile or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What went wrong, lowercase, naming the variable or helper involved.
    pub message: String,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A compiled template string.
#[derive(Debug, Clone)]
pub struct Template {
    /// The text as written, for messages.
    source: String,
    /// How it renders.
    form: Form,
}

#[derive(Debug, Clone)]
enum Form {
    /// No `{{` at all: the text itself.
    Literal,
    /// Exactly one expression: rendered through `json` so the type survives.
    Typed(handlebars::Template),
    /// Text with expressions: renders to a string.
    Text(handlebars::Template),
}

/// A variable path a template reads, e.g. `["steps", "quota", "output", "ok"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Path segments; the first is the scope root (`inputs`, `steps`, `run`, …).
    pub path: Vec<String>,
}

impl Template {
    /// Compiles `source`. Fails on handlebars syntax errors and unknown helpers in block form.
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        if !source.contains("{{") {
            return Ok(Self {
                source: source.to_string(),
                form: Form::Literal,
            });
        }
        let form = match single_expression(source) {
            Some(expr) => {
                let wrapped = if expr.split_whitespace().count() == 1 && !expr.starts_with('(') {
                    format!("{{{{json {expr}}}}}")
                } else {
                    format!("{{{{json ({expr})}}}}")
                };
                Form::Typed(compile_hbs(&wrapped, source)?)
            }
            None => Form::Text(compile_hbs(source, source)?),
        };
        Ok(Self {
            source: source.to_string(),
            form,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether rendering can only ever give back the source text.
    pub fn is_literal(&self) -> bool {
        matches!(self.form, Form::Literal)
    }

    /// Renders against `scope` (a JSON object holding `inputs`, `steps`, `run`, …).
    pub fn render(&self, scope: &Context) -> Result<Json, TemplateError> {
        match &self.form {
            Form::Literal => Ok(Json::String(self.source.clone())),
            Form::Typed(t) => {
                let text = render_hbs(t, scope)?;
                serde_json::from_str(&text).map_err(|e| {
                    TemplateError::new(format!("`{}` did not render to a value: {e}", self.source))
                })
            }
            Form::Text(t) => Ok(Json::String(render_hbs(t, scope)?)),
        }
    }

    /// Every variable path the template reads outside block helpers that change the context
    /// (`each`, `with`), whose inner paths are relative to the item.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        match &self.form {
            Form::Literal => {}
            Form::Typed(t) | Form::Text(t) => collect_template(t, &mut out),
        }
        out
    }
}

/// If `source` is exactly one `{{ expression }}` (whitespace around allowed), the expression.
fn single_expression(source: &str) -> Option<&str> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains(['{', '}']) {
        return None;
    }
    let inner = inner.trim_start_matches('~').trim_end_matches('~').trim();
    let special = inner.starts_with(['#', '/', '^', '!', '>', '{', '&'])
        || inner == "else"
        || inner.starts_with("else ");
    if inner.is_empty() || special {
        return None;
    }
    Some(inner)
}

fn compile_hbs(text: &str, source: &str) -> Result<handlebars::Template, TemplateError> {
    handlebars::Template::compile(text).map_err(|e| {
        let opens = source.matches("{{").count();
        let closes = source.matches("}}").count();
        let reason = if opens > closes {
            "a `{{` has no matching `}}`".to_string()
        } else if closes > opens {
            "a `}}` has no matching `{{`".to_string()
        } else {
            let r = e.reason().to_string().to_lowercase();
            // The parser's own rule names mean nothing to an author; keep the sentence.
            r.split(": expected").next().unwrap_or(&r).to_string()
        };
        TemplateError::new(format!("invalid template `{source}`: {reason}"))
    })
}

fn render_hbs(t: &handlebars::Template, scope: &Context) -> Result<String, TemplateError> {
    let mut rc = RenderContext::new(None);
    let mut out = StringOutput::new();
    t.render(&REGISTRY, scope, &mut rc, &mut out)
        .map_err(render_error)?;
    out.into_string()
        .map_err(|e| TemplateError::new(format!("template output: {e}")))
}

fn render_error(e: handlebars::RenderError) -> TemplateError {
    use handlebars::RenderErrorReason as R;
    let message = match e.reason() {
        R::MissingVariable(Some(path)) => format!("unknown variable `{path}`"),
        R::MissingVariable(None) => "unknown variable".to_string(),
        R::HelperNotFound(name) => {
            format!("unknown helper `{name}` (helpers: {})", HELPERS.join(", "))
        }
        R::Other(desc) => desc.clone(),
        other => other.to_string(),
    };
    TemplateError::new(message)
}

/// Builds the render context from a JSON scope.
pub fn context(scope: Json) -> Context {
    Context::from(scope)
}

fn collect_template(t: &handlebars::Template, out: &mut Vec<Reference>) {
    for el in &t.elements {
        match el {
            TemplateElement::Expression(ht) | TemplateElement::HtmlExpression(ht) => {
                collect_name(&ht.name, out);
                collect_params(&ht.params, ht.hash.values(), out);
            }
            TemplateElement::HelperBlock(ht) => {
                collect_params(&ht.params, ht.hash.values(), out);
                let keeps_context =
                    matches!(&ht.name, Parameter::Name(n) if n == "if" || n == "unless");
                if keeps_context {
                    if let Some(inner) = &ht.template {
                        collect_template(inner, out);
                    }
                    if let Some(inner) = &ht.inverse {
                        collect_template(inner, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn collect_name(name: &Parameter, out: &mut Vec<Reference>) {
    match name {
        Parameter::Name(n) if HELPERS.contains(&n.as_str()) => {}
        Parameter::Name(n) => out.push(Reference { path: split_raw(n) }),
        other => collect_param(other, out),
    }
}

fn collect_params<'a>(
    params: &'a [Parameter],
    hash: impl Iterator<Item = &'a Parameter>,
    out: &mut Vec<Reference>,
) {
    for p in params.iter().chain(hash) {
        collect_param(p, out);
    }
}

fn collect_param(p: &Parameter, out: &mut Vec<Reference>) {
    match p {
        Parameter::Path(Path::Relative((segs, raw))) => {
            let named: Option<Vec<String>> = segs
                .iter()
                .map(|s| match s {
                    PathSeg::Named(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            match named {
                Some(path) if !path.is_empty() => out.push(Reference { path }),
                _ if !raw.is_empty() && !raw.starts_with("this") && !raw.starts_with("..") => out
                    .push(Reference {
                        path: split_raw(raw),
                    }),
                _ => {}
            }
        }
        Parameter::Name(n) => out.push(Reference { path: split_raw(n) }),
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(ht) = sub.element.as_ref() {
                collect_name(&ht.name, out);
                collect_params(&ht.params, ht.hash.values(), out);
            }
        }
        _ => {}
    }
}

fn split_raw(raw: &str) -> Vec<String> {
    raw.split(['.', '/'])
        .map(|s| s.trim_start_matches('[').trim_end_matches(']').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A value tree whose strings may be templates: the compiled form of `with:`, `outputs:`, …
#[derive(Debug, Clone)]
pub enum TValue {
    /// A value with no template in it.
    Literal(Json),
    /// A templated string.
    Template(Template),
    /// A list with at least one template inside.
    List(Vec<TValue>),
    /// A mapping with at least one template inside.
    Map(Vec<(String, TValue)>),
}

impl TValue {
    /// Renders every template in the tree against `scope`.
    pub fn render(&self, scope: &Context) -> Result<Json, TemplateError> {
        match self {
            TValue::Literal(v) => Ok(v.clone()),
            TValue::Template(t) => t.render(scope),
            TValue::List(items) => items
                .iter()
                .map(|i| i.render(scope))
                .collect::<Result<_, _>>()
                .map(Json::Array),
            TValue::Map(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.clone(), v.render(scope)?);
                }
                Ok(Json::Object(map))
            }
        }
    }

    /// The value if it holds no template (then it is known before the run starts).
    pub fn as_literal(&self) -> Option<&Json> {
        match self {
            TValue::Literal(v) => Some(v),
            _ => None,
        }
    }

    /// Every template in the tree.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        self.collect_templates(&mut out);
        out
    }

    fn collect_templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            TValue::Literal(_) => {}
            TValue::Template(t) => out.push(t),
            TValue::List(items) => items.iter().for_each(|i| i.collect_templates(out)),
            TValue::Map(entries) => entries.iter().for_each(|(_, v)| v.collect_templates(out)),
        }
    }
}

#[cfg(test)]
mod tests;
