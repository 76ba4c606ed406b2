//! Reading YAML with positions: a guarded parse and small readers that report every problem.
//!
//! Knows YAML nodes and spans; knows nothing about what a workflow means. The decoders in
//! `workflow.rs` and `catalog.rs` are written with these readers.

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, Node};

use crate::diag::{Diagnostic, Diagnostics, Span, nearest};

/// Largest definition file accepted. Workflows and catalog entries are a few KiB; anything
/// near this is a mistake, and refusing it early keeps validation fast.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Deepest nesting accepted, in mappings and lists. Real definitions nest fewer than ten.
pub const MAX_DEPTH: usize = 64;

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The decoded value.
    pub value: T,
    /// Where it starts in the file.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Wraps `value` found at `span`.
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// A free-form YAML value (as in `with:`, `inputs:`, `outputs:`) that keeps every position,
/// so template errors inside it can be located.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// Where the value starts.
    pub span: Span,
    /// What it is.
    pub kind: ValueKind,
}

/// The JSON-compatible shapes a [`Value`] can take.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string; may hold templates.
    Str(String),
    /// A sequence.
    List(Vec<Value>),
    /// A mapping, in written order.
    Map(Vec<(Spanned<String>, Value)>),
}

impl Value {
    /// The value as JSON (templates left as text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            ValueKind::Null => J::Null,
            ValueKind::Bool(b) => J::Bool(*b),
            ValueKind::Int(i) => J::from(*i),
            ValueKind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            ValueKind::Str(s) => J::String(s.clone()),
            ValueKind::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            ValueKind::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Visits every string in the value with its position (depth first, written order).
    pub fn for_each_str<'a>(&'a self, f: &mut impl FnMut(&'a str, Span)) {
        match &self.kind {
            ValueKind::Str(s) => f(s, self.span),
            ValueKind::List(items) => items.iter().for_each(|v| v.for_each_str(f)),
            ValueKind::Map(entries) => entries.iter().for_each(|(_, v)| v.for_each_str(f)),
            _ => {}
        }
    }
}

/// The position where a node starts (for a mapping, its first key: the parser's own mark for
/// a block mapping lies after that key).
pub fn span_of(node: &Node) -> Span {
    match node {
        Node::Mapping(m) => m
            .keys()
            .next()
            .map_or_else(|| marker_span(m.span()), scalar_span),
        other => marker_span(other.span()),
    }
}

/// The position where a scalar starts.
pub fn scalar_span(node: &MarkedScalarNode) -> Span {
    marker_span(node.span())
}

fn marker_span(span: &marked_yaml::Span) -> Span {
    span.start()
        .map_or(Span::FILE, |m| Span::new(m.line(), m.column()))
}

/// Parses `bytes` as a YAML document whose top level is a mapping. Every refusal is a located
/// diagnostic; nothing here panics, recurses without bound or expands aliases.
pub fn parse(bytes: &[u8], diags: &mut Diagnostics) -> Option<Node> {
    if bytes.len() > MAX_FILE_BYTES {
        diags.push(
            Diagnostic::new(
                "file-too-large",
                Span::FILE,
                format!(
                    "file is {} bytes, more than the {} bytes a definition may have",
                    bytes.len(),
                    MAX_FILE_BYTES
                ),
            )
            .help("split the definition, or move large data out of it into inputs"),
        );
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            diags.push(
                Diagnostic::new(
                    "not-utf8",
                    Span::new(line, column),
                    format!(
                        "file is not valid UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                )
                .help("save the file as UTF-8"),
            );
            return None;
        }
    };
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        diags.push(
            Diagnostic::new("empty-file", Span::new(1, 1), "file is empty")
                .help("a definition starts with `name:` (workflow) or `id:` (catalog entry)"),
        );
        return None;
    }
    if let Some((span, depth)) = too_deep(text) {
        diags.push(
            Diagnostic::new(
                "too-deep",
                span,
                format!("nesting is deeper than {MAX_DEPTH} levels (reached {depth})"),
            )
            .help("flatten the structure"),
        );
        return None;
    }
    let options = marked_yaml::LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    match marked_yaml::parse_yaml_with_options(0, text, options) {
        Ok(node) => Some(node),
        Err(e) => {
            // The scanner notices a tab only where it breaks the structure, often lines later
            // ("did not find expected key"); the tab itself is the thing to fix.
            diags.push(indenting_tab(text).unwrap_or_else(|| load_error(e)));
            None
        }
    }
}

/// The first line whose indentation holds a tab, which YAML forbids, as a diagnostic at the
/// tab. Only consulted when the file fails to parse: a tab inside a block scalar's text is
/// fine and parses.
fn indenting_tab(text: &str) -> Option<Diagnostic> {
    text.lines().enumerate().find_map(|(n, line)| {
        let indent = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
        let column = indent.find('\t')? + 1;
        if line.trim().is_empty() {
            return None;
        }
        Some(
            Diagnostic::new(
                "yaml-tab",
                Span::new(n + 1, column),
                "a tab in indentation: YAML indents with spaces only",
            )
            .help("replace the tab with spaces"),
        )
    })
}

fn load_error(e: marked_yaml::LoadError) -> Diagnostic {
    use marked_yaml::LoadError as E;
    let at = |m: &marked_yaml::Marker| Span::new(m.line(), m.column());
    match e {
        E::TopLevelMustBeMapping(m) => Diagnostic::new(
            "not-a-mapping",
            at(&m),
            "the top level must be a mapping of keys to values",
        )
        .help("start the file with `name: ...` (workflow) or `id: ...` (catalog entry)"),
        E::TopLevelMustBeSequence(m) => {
            Diagnostic::new("not-a-mapping", at(&m), "the top level must be a mapping")
        }
        E::UnexpectedAnchor(m) => Diagnostic::new(
            "yaml-anchor",
            at(&m),
            "YAML anchors and aliases are not supported in definitions",
        )
        .help("write the value out where it is needed"),
        E::MappingKeyMustBeScalar(m) => {
            Diagnostic::new("yaml-key", at(&m), "mapping keys must be plain strings")
        }
        E::UnexpectedTag(m) => Diagnostic::new(
            "yaml-tag",
            at(&m),
            "YAML tags (`!name`) are not supported in definitions",
        )
        .help("remove the tag"),
        E::ScanError(m, err) => Diagnostic::new(
            "yaml-syntax",
            at(&m),
            format!("YAML syntax error: {}", err.info()),
        )
        .help("check indentation, quotes and brackets around this point"),
        E::DuplicateKey(inner) => Diagnostic::new(
            "duplicate-key",
            scalar_span(&inner.key),
            format!(
                "key `{}` is given twice (first at {})",
                inner.key.as_str(),
                scalar_span(&inner.prev_key)
            ),
        )
        .help("remove one of them"),
    }
}

/// A conservative nesting check before parsing, so pathological input never reaches a
/// recursive algorithm: counts block indentation levels, `- ` sequence openers and flow
/// brackets outside quotes and comments.
fn too_deep(text: &str) -> Option<(Span, usize)> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if flow == 0 {
            while indents.last().is_some_and(|top| *top >= indent) {
                indents.pop();
            }
            indents.push(indent);
        }
        let mut dashes = 0;
        let mut rest = trimmed;
        while let Some(r) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = r.trim_start();
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut deepest_flow = flow;
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if prev.is_whitespace() || "[{,:".contains(prev) => {
                    quote = Some(c)
                }
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => {
                    flow += 1;
                    deepest_flow = deepest_flow.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev = c;
        }
        let depth = indents.len() + dashes + deepest_flow;
        if depth > MAX_DEPTH {
            return Some((Span::new(n + 1, indent + 1), depth));
        }
    }
    None
}

/// A human name for a node's shape, for "expected X, found Y" messages.
pub fn shape(node: &Node) -> &'static str {
    match node {
        Node::Scalar(s) if s.may_coerce() && s.as_str().is_empty() => "nothing",
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// Reads the keys of one mapping, reporting unknown keys with the nearest valid one.
#[derive(Debug)]
pub struct Fields<'a> {
    /// The mapping being read.
    map: &'a MarkedMappingNode,
}

impl<'a> Fields<'a> {
    /// Checks that `node` is a mapping whose keys are all in `allowed`; `what` names the
    /// mapping in messages ("step", "retry"). Unknown keys are reported; the known ones can
    /// still be read, so one typo does not hide the rest of the file's problems.
    pub fn read(
        node: &'a Node,
        what: &str,
        allowed: &[&'static str],
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let Some(map) = node.as_mapping() else {
            diags.push(Diagnostic::new(
                "wrong-type",
                span_of(node),
                format!("{what} must be a mapping, found {}", shape(node)),
            ));
            return None;
        };
        for key in map.keys() {
            let k = key.as_str();
            if allowed.contains(&k) {
                continue;
            }
            let mut d = Diagnostic::new(
                "unknown-key",
                scalar_span(key),
                format!("unknown key `{k}` in {what}"),
            );
            d = match nearest(k, allowed.iter().copied()) {
                Some(n) => d.help(format!("did you mean `{n}`?")),
                None => d.help(format!("valid keys here: {}", allowed.join(", "))),
            };
            diags.push(d);
        }
        Some(Self { map })
    }

    /// The node under `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.map.get_node(key)
    }

    /// The key's own position (for "missing"-style messages about its value).
    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.map.keys().find(|k| k.as_str() == key).map(scalar_span)
    }

    /// Where the mapping starts: its first key (the parser's own mark for a block mapping
    /// lies after that key).
    pub fn span(&self) -> Span {
        self.map
            .keys()
            .next()
            .map_or_else(|| marker_span(self.map.span()), scalar_span)
    }

    /// Reports `key` missing from this mapping.
    pub fn missing(&self, key: &str, what: &str, help: &str, diags: &mut Diagnostics) {
        diags.push(
            Diagnostic::new(
                "missing-key",
                self.span(),
                format!("{what} is missing `{key}`"),
            )
            .help(help.to_string()),
        );
    }

    /// Keys present, in written order.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.map.keys().map(MarkedScalarNode::as_str)
    }
}

/// A plain string scalar (a number or boolean written bare is accepted as its text).
pub fn string(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    match node {
        Node::Scalar(s) if !(s.may_coerce() && (s.as_str().is_empty() || s.as_str() == "~")) => {
            Some(Spanned::new(s.as_str().to_string(), scalar_span(s)))
        }
        other => {
            diags.push(Diagnostic::new(
                "wrong-type",
                span_of(other),
                format!("{what} must be a string, found {}", shape(other)),
            ));
            None
        }
    }
}

/// An integer scalar within `min..=max`.
pub fn integer(
    node: &Node,
    what: &str,
    min: i64,
    max: i64,
    diags: &mut Diagnostics,
) -> Option<Spanned<i64>> {
    let parsed = node
        .as_scalar()
        .and_then(|s| if s.may_coerce() { s.as_i64() } else { None });
    match parsed {
        Some(v) if (min..=max).contains(&v) => Some(Spanned::new(v, span_of(node))),
        Some(v) => {
            diags.push(
                Diagnostic::new(
                    "out-of-range",
                    span_of(node),
                    format!("{what} is {v}, outside the valid range {min}..={max}"),
                )
                .help(format!("use an integer from {min} to {max}")),
            );
            None
        }
        None => {
            let found = match node {
                Node::Scalar(s) => format!("`{}`", s.as_str()),
                other => shape(other).to_string(),
            };
            diags.push(
                Diagnostic::new(
                    "wrong-type",
                    span_of(node),
                    format!("{what} must be an integer, found {found}"),
                )
                .help(format!(
                    "use an integer from {min} to {max}, without quotes"
                )),
            );
            None
        }
    }
}

/// A boolean scalar.
pub fn boolean(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<bool> {
    match node.as_scalar().and_then(MarkedScalarNode::as_bool) {
        Some(b) => Some(b),
        None => {
            diags.push(
                Diagnostic::new(
                    "wrong-type",
                    span_of(node),
                    format!("{what} must be `true` or `false`"),
                )
                .help("write true or false without quotes"),
            );
            None
        }
    }
}

/// A list of strings; a single string is accepted as a list of one.
pub fn strings(node: &Node, what: &str, diags: &mut Diagnostics) -> Vec<Spanned<String>> {
    match node {
        Node::Sequence(items) => items
            .iter()
            .filter_map(|i| string(i, what, diags))
            .collect(),
        other => string(other, what, diags).into_iter().collect(),
    }
}

/// Reports a list that was written but holds nothing (`roles: []`). A list whose items were
/// refused has its own errors already, so only a truly empty sequence is reported here.
pub fn empty_list(node: &Node, what: &str, help: &str, diags: &mut Diagnostics) {
    if let Node::Sequence(items) = node
        && items.is_empty()
    {
        diags.push(
            Diagnostic::new("empty-list", span_of(node), format!("{what} is empty"))
                .help(help.to_string()),
        );
    }
}

/// Converts a free-form node into a [`Value`], typing bare scalars like YAML 1.2 core schema
/// does (quoted scalars always stay strings).
pub fn value(node: &Node, diags: &mut Diagnostics) -> Value {
    value_at(node, 0, diags)
}

fn value_at(node: &Node, depth: usize, diags: &mut Diagnostics) -> Value {
    let span = span_of(node);
    if depth > MAX_DEPTH {
        diags.push(Diagnostic::new(
            "too-deep",
            span,
            format!("nesting is deeper than {MAX_DEPTH} levels"),
        ));
        return Value {
            span,
            kind: ValueKind::Null,
        };
    }
    let kind = match node {
        Node::Scalar(s) => scalar_kind(s),
        Node::Sequence(items) => ValueKind::List(
            items
                .iter()
                .map(|i| value_at(i, depth + 1, diags))
                .collect(),
        ),
        Node::Mapping(map) => ValueKind::Map(
            map.iter()
                .map(|(k, v)| {
                    (
                        Spanned::new(k.as_str().to_string(), scalar_span(k)),
                        value_at(v, depth + 1, diags),
                    )
                })
                .collect(),
        ),
    };
    Value { span, kind }
}

fn scalar_kind(s: &MarkedScalarNode) -> ValueKind {
    let text = s.as_str();
    if !s.may_coerce() {
        return ValueKind::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return ValueKind::Null,
        _ => {}
    }
    if let Some(b) = s.as_bool() {
        return ValueKind::Bool(b);
    }
    if let Ok(i) = text.parse::<i64>() {
        return ValueKind::Int(i);
    }
    let looks_numeric = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || "+-.".contains(c))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric
        && let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return ValueKind::Float(f);
    }
    ValueKind::Str(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
        let mut d = Diagnostics::default();
        let node = parse(text.as_bytes(), &mut d);
        (node, d.into_sorted())
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let text = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        let (node, d) = parse_str(&text);
        assert!(node.is_none());
        assert_eq!(d[0].code, "too-deep");
        assert_eq!(d[0].span, Span::new(1, 1));
    }

    #[test]
    fn deep_block_nesting_is_refused_before_parsing() {
        // 10,000 levels: each line a sequence item one deeper (`- - - …`), then deep keys.
        let mut text = "k:\n".to_string();
        text.push_str(&"- ".repeat(10_000));
        text.push_str("x\n");
        for i in 0..500 {
            text.push_str(&" ".repeat(i + 1));
            text.push_str("k:\n");
        }
        let (node, d) = parse_str(&text);
        assert!(node.is_none());
        assert_eq!(d[0].code, "too-deep");
    }

    #[test]
    fn templates_in_quotes_do_not_count_as_nesting() {
        let text =
            "a: \"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{ x }}\"\n";
        let (node, d) = parse_str(text);
        assert!(node.is_some(), "{d:?}");
    }

    #[test]
    fn bare_scalars_are_typed_and_quoted_ones_stay_strings() {
        let (node, _) = parse_str("a: 3\nb: '3'\nc: true\nd: 1.5\ne: ~\nf: hello\ng: 1e3\n");
        let node = node.expect("parses");
        let v = value(&node, &mut Diagnostics::default()).to_json();
        assert_eq!(
            v,
            serde_json::json!({"a": 3, "b": "3", "c": true, "d": 1.5, "e": null, "f": "hello", "g": 1000.0})
        );
    }
}
