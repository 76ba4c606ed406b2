//! Every example in `workflows/` and `catalog/` validates against the real built-in plugins,
//! so the examples can never go stale.

use csmp::cli::validate;

use crate::helpers::repo_root;

#[test]
fn every_example_workflow_and_catalog_entry_validates() {
    let root = repo_root();
    let files = validate::collect_files(&[root.join("workflows"), root.join("catalog")])
        .expect("example folders exist");
    let plugins = csmp::cli::builtin_plugins().expect("built-in plugins load");
    let outcome = validate::validate_files(&files, &plugins);
    assert_eq!(outcome.errors(), 0, "{}", validate::render_text(&outcome));
    let workflows: Vec<&str> = outcome.plans.iter().map(|p| p.name()).collect();
    for wanted in [
        "provision-vms",
        "scale-service",
        "remediate-high-cpu",
        "escalate-incident",
        "predictive-scale",
        "hello",
    ] {
        assert!(
            workflows.contains(&wanted),
            "{wanted} missing from {workflows:?}"
        );
    }
    assert!(outcome.catalog.len() >= 3, "at least three catalog entries");
    for entry in &outcome.catalog {
        assert!(
            workflows.contains(&entry.workflow.as_str()),
            "{} names {}",
            entry.id,
            entry.workflow
        );
    }
    assert_eq!(outcome.files, outcome.plans.len() + outcome.catalog.len());
}
