//! The step DAG: `needs` resolved to indices, cycles found with their path, ancestry.
//!
//! Knows step ids and `needs`; knows nothing about what steps do.

use std::collections::{BTreeSet, HashMap};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::diag::{Diagnostic, Diagnostics, nearest};
use crate::dsl::Step;

/// The dependency graph of one list of steps (the main steps, or the `on_failure` steps).
#[derive(Debug, Clone, Default)]
pub(crate) struct Dag {
    /// Step ids in written order.
    ids: Vec<String>,
    /// Id → written index.
    index: HashMap<String, usize>,
    /// Resolved `needs` of each step (written indices; unknown names dropped).
    needs: Vec<Vec<usize>>,
    /// Edges from each need to its dependant; node `i` is step `i`.
    graph: DiGraph<usize, ()>,
    /// Transitive `needs` of each step.
    ancestors: Vec<BTreeSet<usize>>,
    /// Whether the graph has a cycle.
    cyclic: bool,
}

impl Dag {
    /// Builds the graph of `steps`, reporting unknown and self `needs` and every cycle.
    /// `others` are steps of the other section, named only to explain a wrong `needs`.
    pub(crate) fn build(steps: &[Step], others: &[Step], diags: &mut Diagnostics) -> Self {
        let ids: Vec<String> = steps.iter().map(|s| s.id.value.clone()).collect();
        let mut index = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            index.entry(id.clone()).or_insert(i);
        }
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..steps.len()).map(|i| graph.add_node(i)).collect();
        let mut needs = vec![Vec::new(); steps.len()];
        for (i, s) in steps.iter().enumerate() {
            for n in &s.needs {
                match index.get(&n.value) {
                    Some(&j) if j == i => diags.push(
                        Diagnostic::new(
                            "self-need",
                            n.span,
                            format!("step `{}` needs itself", s.id.value),
                        )
                        .help("remove it from its own `needs`"),
                    ),
                    Some(&j) => {
                        if !needs[i].contains(&j) {
                            needs[i].push(j);
                            graph.add_edge(nodes[j], nodes[i], ());
                        }
                    }
                    None => {
                        let mut d = Diagnostic::new(
                            "unknown-need",
                            n.span,
                            format!(
                                "step `{}` needs `{}`, which is not a step here",
                                s.id.value, n.value
                            ),
                        );
                        d = if others.iter().any(|o| o.id.value == n.value) {
                            d.help("`on_failure` steps run after the main steps and may only need each other; read the main step's result with `{{ steps.ID.status }}` instead")
                        } else if let Some(near) = nearest(&n.value, ids.iter().map(String::as_str))
                        {
                            d.help(format!("did you mean `{near}`?"))
                        } else {
                            d.help(format!("steps here: {}", ids.join(", ")))
                        };
                        diags.push(d);
                    }
                }
            }
        }
        let mut dag = Self {
            ids,
            index,
            needs,
            graph,
            ancestors: Vec::new(),
            cyclic: false,
        };
        dag.report_cycles(steps, diags);
        dag.ancestors = (0..steps.len()).map(|i| dag.walk_ancestors(i)).collect();
        dag
    }

    fn report_cycles(&mut self, steps: &[Step], diags: &mut Diagnostics) {
        for scc in tarjan_scc(&self.graph) {
            if scc.len() < 2 {
                continue;
            }
            self.cyclic = true;
            let members: BTreeSet<usize> = scc.iter().map(|n| self.graph[*n]).collect();
            let Some(&start) = members.iter().next() else {
                continue;
            };
            let path = self.cycle_path(start, &members);
            let shown: Vec<&str> = path.iter().map(|&i| self.ids[i].as_str()).collect();
            let second = path.get(1).copied().unwrap_or(start);
            let span = steps[start]
                .needs
                .iter()
                .find(|n| n.value == self.ids[second])
                .map_or(steps[start].id.span, |n| n.span);
            diags.push(
                Diagnostic::new(
                    "cycle",
                    span,
                    format!(
                        "steps form a cycle: {} (each step needs the next)",
                        shown.join(" → ")
                    ),
                )
                .help("remove one of these `needs` so the steps can run in some order"),
            );
        }
    }

    /// A cycle through `start` within `members`, following `needs`, ending back at `start`.
    fn cycle_path(&self, start: usize, members: &BTreeSet<usize>) -> Vec<usize> {
        // Depth-first search over `needs` edges, remembering the path.
        let mut path = vec![start];
        let mut visited = BTreeSet::from([start]);
        let mut stack: Vec<std::vec::IntoIter<usize>> = vec![self.needs[start].clone().into_iter()];
        while let Some(top) = stack.last_mut() {
            match top.next() {
                Some(next) if next == start => {
                    path.push(start);
                    return path;
                }
                Some(next) if members.contains(&next) && visited.insert(next) => {
                    path.push(next);
                    stack.push(self.needs[next].clone().into_iter());
                }
                Some(_) => {}
                None => {
                    stack.pop();
                    path.pop();
                }
            }
        }
        vec![start, start]
    }

    fn walk_ancestors(&self, i: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = self.needs[i].clone();
        while let Some(j) = todo.pop() {
            if seen.insert(j) {
                todo.extend(&self.needs[j]);
            }
        }
        seen
    }

    /// Written indices in an order where each step follows all it needs; `None` if cyclic.
    pub(crate) fn topo_order(&self) -> Option<Vec<usize>> {
        if self.cyclic {
            return None;
        }
        let sorted = toposort(&self.graph, None).ok()?;
        Some(sorted.into_iter().map(|n| self.graph[n]).collect())
    }

    /// Resolved `needs` of step `i`.
    pub(crate) fn needs_of(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }

    /// Whether step `ancestor` must finish before step `i` starts.
    pub(crate) fn is_upstream(&self, ancestor: usize, i: usize) -> bool {
        self.ancestors.get(i).is_some_and(|a| a.contains(&ancestor))
    }

    /// Written index of a step id.
    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Step ids in written order.
    pub(crate) fn ids(&self) -> &[String] {
        &self.ids
    }
}
