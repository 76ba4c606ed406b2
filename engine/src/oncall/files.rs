//! An on-call set from named sources: the files of the on-call directory with those set over
//! the API laid over them by name, decoded and planned as one set (a person defined in one file
//! may be paged by a policy of another).

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Diagnostics, Span};

/// A name that files may not take: it is the path of their listing (`/v1/oncall/files`).
pub const RESERVED: &str = "files";

/// Plans `sources` (name → YAML) as one set; `Err` has every file's problems, by name (files
/// without problems are left out).
pub fn plan(
    sources: &BTreeMap<String, String>,
) -> Result<super::OnCall, Vec<(String, Vec<Diagnostic>)>> {
    let mut names = Vec::new();
    let mut decoded = Vec::new();
    let mut unreadable: Vec<(String, Vec<Diagnostic>)> = Vec::new();
    for (name, yaml) in sources {
        let mut diags = Diagnostics::default();
        match crate::dsl::decode_any(yaml.as_bytes(), &mut diags) {
            Some(crate::dsl::Definition::OnCall(file)) => {
                names.push(name.clone());
                decoded.push((file, diags));
            }
            Some(_) => {
                diags.push(
                    Diagnostic::new(
                        "not-oncall",
                        Span::FILE,
                        "this is not an on-call file: it has none of `users`, `teams`, `schedules`, `escalation_policies`",
                    )
                    .help("workflows, catalog entries and rules have their own endpoints"),
                );
                unreadable.push((name.clone(), diags.into_sorted()));
            }
            None => unreadable.push((name.clone(), diags.into_sorted())),
        }
    }
    let planned = super::plan(decoded);
    match planned {
        Ok(set) if unreadable.is_empty() => Ok(set),
        Ok(_) => Err(unreadable),
        Err(per_file) => {
            let mut all = unreadable;
            all.extend(
                names
                    .into_iter()
                    .zip(per_file)
                    .filter(|(_, d)| !d.is_empty()),
            );
            all.sort_by(|a, b| a.0.cmp(&b.0));
            Err(all)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_plan_as_one_set_and_each_problem_names_its_file() {
        let people = "users:\n  - { id: ann }\n".to_string();
        let policy = "escalation_policies:\n  - { id: p, levels: [{ delay: 5m, targets: [{ user: ann }] }] }\n".to_string();
        let mut sources = BTreeMap::from([
            ("people".to_string(), people),
            ("policy".to_string(), policy.clone()),
        ]);
        let set = plan(&sources).expect("ann is known across files");
        assert!(set.policies.contains_key("p"));
        sources.remove("people");
        let problems = plan(&sources).expect_err("ann is gone");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "policy");
        assert_eq!(problems[0].1[0].code, "unknown-user");
        sources.insert(
            "rule".into(),
            "name: r\nmatch: { source: [webhook] }\nthen: []\n".into(),
        );
        let problems = plan(&sources).expect_err("a rule is no on-call file");
        assert_eq!(
            problems.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["policy", "rule"]
        );
    }
}
