//! Located diagnostics: what is wrong, where (`file:line:column`) and how to fix it.
//!
//! Pure data and rendering. Knows nothing about YAML or workflows: the `dsl` and `plan` layers
//! produce [`Diagnostic`]s, the CLI and the API render them.

use std::fmt;

use serde::Serialize;

/// A position in a source text, 1-based like editors and compilers print it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    /// Line number, starting at 1; 0 means "the file as a whole".
    pub line: usize,
    /// Column number in characters, starting at 1; 0 means "the line as a whole".
    pub column: usize,
}

impl Span {
    /// A span at `line:column`.
    pub const fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }

    /// The whole file (no better location is known).
    pub const FILE: Span = Span { line: 0, column: 0 };
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// A stable machine-readable code, e.g. `unknown-key`, `cycle`.
    pub code: &'static str,
    /// Where the problem is.
    pub span: Span,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// How to fix it, when we know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic without a hint.
    pub fn new(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self {
            code,
            span,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint saying how to fix the problem.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Collects every problem instead of stopping at the first.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    /// Problems in the order they were found; sorted by position when read.
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Records a problem built from its parts.
    pub fn error(&mut self, code: &'static str, span: Span, message: impl Into<String>) {
        self.push(Diagnostic::new(code, span, message));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many problems were recorded.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Every problem, sorted by position (stable for equal positions), duplicates removed.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| d.span);
        self.items.dedup();
        self.items
    }
}

/// Every problem of one file, ready to print.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The path as the user gave it.
    pub file: String,
    /// Problems, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    /// Renders the report like a compiler: a header per problem, the source line, a caret.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = String::new();
        let lines: Vec<&str> = source.map(|s| s.lines().collect()).unwrap_or_default();
        for d in &self.diagnostics {
            out.push_str(&format!("error[{}]: {}\n", d.code, d.message));
            // The gutter is as wide as the line number, like rustc's.
            let pad = " ".repeat(d.span.line.max(1).to_string().len());
            if d.span.line == 0 {
                out.push_str(&format!("{pad}--> {}\n", self.file));
            } else {
                out.push_str(&format!("{pad}--> {}:{}\n", self.file, d.span));
                if let Some(text) = lines.get(d.span.line - 1) {
                    let shown: String = text.chars().take(200).collect();
                    out.push_str(&format!("{pad} |\n{} | {shown}\n", d.span.line));
                    if d.span.column > 0 {
                        let caret = " ".repeat(d.span.column.saturating_sub(1).min(200));
                        out.push_str(&format!("{pad} | {caret}^\n"));
                    }
                }
            }
            if let Some(help) = &d.help {
                out.push_str(&format!("{pad} = help: {help}\n"));
            }
            out.push('\n');
        }
        out
    }
}

/// `"s"` after a count other than one: `format!("{n} file{}", plural(n))`.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One reference token of an RFC 6901 JSON pointer: `~` becomes `~0`, `/` becomes `~1`.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The nearest candidate to `word`, if one is close enough to be a plausible typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(dist, c)| *dist <= (c.len().max(word.len()) / 3).max(1) || c.starts_with(word))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_finds_typos_and_rejects_strangers() {
        let keys = ["needs", "when", "uses", "with", "timeout"];
        assert_eq!(nearest("neds", keys), Some("needs"));
        assert_eq!(nearest("wiht", keys), Some("with"));
        assert_eq!(nearest("timout", keys), Some("timeout"));
        assert_eq!(nearest("banana", keys), None);
    }

    #[test]
    fn render_points_at_the_column() {
        let report = FileReport {
            file: "w.yaml".into(),
            diagnostics: vec![
                Diagnostic::new("unknown-key", Span::new(2, 3), "unknown key `neds`")
                    .help("did you mean `needs`?"),
            ],
        };
        let text = report.render(Some("steps:\n  neds: [a]\n"));
        assert_eq!(
            text,
            "error[unknown-key]: unknown key `neds`\n --> w.yaml:2:3\n  |\n2 |   neds: [a]\n  |   ^\n  = help: did you mean `needs`?\n\n"
        );
    }
}
