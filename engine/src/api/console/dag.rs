//! A run's DAG drawn as SVG on the server, from its plan and its units' counts: steps in
//! layers by depth (a step one column right of the deepest step it needs), a fan-out drawn as
//! one node with its items counted by status, each node coloured by status and labelled with
//! it (symbol and word), `on_failure` steps in a last, dashed column. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use maud::{Markup, PreEscaped, html};

use super::layout::symbol;
use crate::plan::{Plan, PlanKind, PlanStep};

const W: usize = 190;
const H: usize = 56;
const GAP_X: usize = 56;
const GAP_Y: usize = 22;
const PAD: usize = 8;

/// One node to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// The step's id.
    pub id: String,
    /// What it does, short (`echo@1.0.0`, `wait`, `approval`).
    pub kind: String,
    /// Indices of the nodes it needs.
    pub needs: Vec<usize>,
    /// A fan-out (`for_each`).
    pub fan_out: bool,
    /// An `on_failure` step.
    pub on_failure: bool,
}

fn kind(step: &PlanStep) -> String {
    match &step.kind {
        PlanKind::Uses {
            plugin, version, ..
        } => format!("{plugin}@{version}"),
        PlanKind::Wait(_) => "wait".into(),
        PlanKind::Approval { .. } => "approval".into(),
        PlanKind::Signal { name, .. } => format!("signal {name}"),
        PlanKind::Workflow { name, .. } => format!("workflow {name}"),
        PlanKind::Incident(_) => "incident".into(),
        PlanKind::Silence(_) => "silence".into(),
        PlanKind::Escalate(_) => "escalate".into(),
    }
}

/// The nodes of a plan: its steps in order, then its `on_failure` steps.
pub(super) fn nodes(plan: &Plan) -> Vec<Node> {
    let main = plan.steps().iter().map(|s| Node {
        id: s.id.clone(),
        kind: kind(s),
        needs: s.needs.clone(),
        fan_out: s.for_each.is_some(),
        on_failure: false,
    });
    let after = plan.on_failure().iter().map(|s| Node {
        id: s.id.clone(),
        kind: kind(s),
        needs: Vec::new(),
        fan_out: s.for_each.is_some(),
        on_failure: true,
    });
    main.chain(after).collect()
}

/// Each node's column: 0 for a step that needs nothing, else one more than the deepest step
/// it needs; `on_failure` steps go one column past every main step.
pub(super) fn columns(nodes: &[Node]) -> Vec<usize> {
    let mut col = vec![0usize; nodes.len()];
    // Plans list a step after what it needs, so one pass in order settles every depth.
    for i in 0..nodes.len() {
        col[i] = nodes[i]
            .needs
            .iter()
            .filter(|&&n| n < i)
            .map(|&n| col[n] + 1)
            .max()
            .unwrap_or(0);
    }
    let last = nodes
        .iter()
        .zip(&col)
        .filter(|(n, _)| !n.on_failure)
        .map(|(_, c)| *c + 1)
        .max()
        .unwrap_or(0);
    for (n, c) in nodes.iter().zip(col.iter_mut()) {
        if n.on_failure {
            *c = last;
        }
    }
    col
}

/// A node's status from its units' counts, and the line shown under its id: a step's own
/// status, or for a fan-out how many items are in each status.
pub(super) fn standing(fan_out: bool, counts: &[(String, i64)]) -> (String, String) {
    let n = |s: &str| {
        counts
            .iter()
            .filter(|(st, _)| st == s)
            .map(|(_, c)| *c)
            .sum::<i64>()
    };
    let total: i64 = counts.iter().map(|(_, c)| *c).sum();
    let status = if total == 0 {
        "pending"
    } else if n("failed") > 0 {
        "failed"
    } else if n("running") + n("retrying") > 0 {
        "running"
    } else if n("waiting") > 0 {
        "waiting"
    } else if n("pending") > 0 {
        if n("succeeded") + n("skipped") > 0 {
            "running"
        } else {
            "pending"
        }
    } else if n("cancelled") > 0 {
        "cancelled"
    } else if n("succeeded") > 0 {
        "succeeded"
    } else {
        "skipped"
    };
    if !fan_out {
        return (status.to_string(), status.to_string());
    }
    let mut line = format!("{} of {total} done", n("succeeded") + n("skipped"));
    for s in ["failed", "running", "retrying", "waiting", "cancelled"] {
        let c = n(s);
        if c > 0 {
            let _ = write!(line, " · {c} {s}");
        }
    }
    (status.to_string(), line)
}

/// The SVG of the nodes, with `counts` by step id (status → units; for a fan-out, its items).
pub(super) fn draw(nodes: &[Node], counts: &BTreeMap<String, Vec<(String, i64)>>) -> Markup {
    let cols = columns(nodes);
    let mut rows = vec![0usize; nodes.len()];
    let mut per_col: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, c) in cols.iter().enumerate() {
        let r = per_col.entry(*c).or_default();
        rows[i] = *r;
        *r += 1;
    }
    let ncols = per_col.keys().max().map_or(0, |c| c + 1);
    let nrows = per_col.values().max().copied().unwrap_or(0);
    let width = PAD * 2 + ncols * W + ncols.saturating_sub(1) * GAP_X;
    let height = PAD * 2 + nrows * H + nrows.saturating_sub(1) * GAP_Y;
    let at = |i: usize| (PAD + cols[i] * (W + GAP_X), PAD + rows[i] * (H + GAP_Y));
    let mut edges = String::new();
    for (i, node) in nodes.iter().enumerate() {
        for &n in node.needs.iter().filter(|&&n| n < nodes.len()) {
            let (x1, y1) = at(n);
            let (x2, y2) = at(i);
            let (x1, y1, x2, y2) = (x1 + W, y1 + H / 2, x2, y2 + H / 2);
            let mid = (x1 + x2) / 2;
            let _ = write!(
                edges,
                r#"<path class="edge" d="M{x1} {y1} C{mid} {y1} {mid} {y2} {x2} {y2}" marker-end="url(#arrow)"/>"#
            );
        }
    }
    let empty = Vec::new();
    html! {
        svg class="dag" xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (height) }
            width=(width) height=(height) role="group" aria-label="The run's steps as a graph" {
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M0 0 L10 5 L0 10 z" class="arrowhead" {}
                }
            }
            (PreEscaped(edges))
            @for (i, node) in nodes.iter().enumerate() {
                @let (x, y) = at(i);
                @let (status, line) = standing(node.fan_out, counts.get(&node.id).unwrap_or(&empty));
                @let class = format!(
                    "node st-{status}{}{}",
                    if node.on_failure { " on-failure" } else { "" },
                    if node.fan_out { " fan-out" } else { "" }
                );
                a href={ "#unit-" (node.id) } {
                    g class=(class)
                        data-step=(node.id) data-status=(status) transform={ "translate(" (x) " " (y) ")" } {
                        title { (node.id) " (" (node.kind) "): " (line) }
                        @if node.fan_out { rect class="stack" x="5" y="5" width=(W) height=(H) rx="6" {} }
                        rect width=(W) height=(H) rx="6" {}
                        text x="10" y="21" class="id" { (node.id) @if node.fan_out { " ×" } }
                        text x="10" y="42" class="sub" { (symbol(&status)) " " (line) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, needs: &[usize]) -> Node {
        Node {
            id: id.into(),
            kind: "echo@1.0.0".into(),
            needs: needs.to_vec(),
            fan_out: false,
            on_failure: false,
        }
    }

    #[test]
    fn a_step_sits_one_column_right_of_the_deepest_step_it_needs() {
        // a → b → d, a → c → d, a → d; e alone; f on failure.
        let mut nodes = vec![
            node("a", &[]),
            node("b", &[0]),
            node("c", &[0]),
            node("d", &[0, 1, 2]),
            node("e", &[]),
            node("f", &[]),
        ];
        nodes[5].on_failure = true;
        assert_eq!(columns(&nodes), vec![0, 1, 1, 2, 0, 3]);
    }

    #[test]
    fn a_fan_out_is_one_node_counting_its_items() {
        let counts = vec![
            ("succeeded".to_string(), 7),
            ("running".to_string(), 2),
            ("failed".to_string(), 1),
        ];
        assert_eq!(
            standing(true, &counts),
            (
                "failed".into(),
                "7 of 10 done · 1 failed · 2 running".into()
            )
        );
        let done = vec![("succeeded".to_string(), 3), ("skipped".to_string(), 1)];
        assert_eq!(standing(true, &done).0, "succeeded");
        assert_eq!(standing(false, &[]), ("pending".into(), "pending".into()));
        let half = vec![("succeeded".to_string(), 1), ("pending".to_string(), 4)];
        assert_eq!(standing(true, &half).0, "running");
    }

    #[test]
    fn every_node_is_drawn_with_its_status_as_a_word_and_edges_join_needs() {
        let nodes = vec![node("a", &[]), node("b", &[0])];
        let mut counts = BTreeMap::new();
        counts.insert("a".to_string(), vec![("succeeded".to_string(), 1)]);
        let svg = draw(&nodes, &counts).into_string();
        assert!(
            svg.contains(r#"data-step="a" data-status="succeeded""#),
            "{svg}"
        );
        assert!(
            svg.contains(r#"data-step="b" data-status="pending""#),
            "{svg}"
        );
        assert!(svg.contains("✓ succeeded"), "{svg}");
        assert_eq!(svg.matches(r#"class="edge""#).count(), 1, "{svg}");
    }
}
