//! Table tests of validation: each broken input, every problem it has, at its exact place.

use serde_json::json;

use super::*;
use crate::plugin::{Capabilities, PluginDescriptor};

fn descriptor(name: &str, version: &str, input_schema: serde_json::Value) -> PluginDescriptor {
    PluginDescriptor {
        name: name.into(),
        version: semver::Version::parse(version).expect("test version"),
        description: format!("{name} for tests"),
        input_schema,
        output_schema: json!({}),
        capabilities: Capabilities::default(),
    }
}

pub(crate) fn test_plugins() -> PluginIndex {
    PluginIndex::new([
        descriptor("echo", "1.0.0", json!({ "type": "object" })),
        descriptor(
            "http",
            "1.2.0",
            json!({
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "method": { "type": "string", "enum": ["GET", "POST", "PUT", "DELETE", "PATCH"] },
                    "url": { "type": "string" },
                    "body": {},
                    "expected_status": { "type": "integer" }
                }
            }),
        ),
        descriptor("notify", "1.0.0", json!({ "type": "object" })),
    ])
}

fn workflows() -> WorkflowNames {
    WorkflowNames::from([
        ("provision-vms".to_string(), vec![1, 2]),
        ("demo".to_string(), vec![1]),
    ])
}

/// Validates `yaml` and renders each problem as `line:column code: message`.
fn check(yaml: &str) -> Vec<String> {
    let plugins = test_plugins();
    let names = workflows();
    let env = Env {
        plugins: &plugins,
        workflows: Some(&names),
    };
    let mut diags = Diagnostics::default();
    let result = match crate::dsl::decode_any(yaml.as_bytes(), &mut diags) {
        Some(crate::dsl::Definition::Workflow(wf)) => build(&wf, env, diags).map(|_| ()),
        Some(crate::dsl::Definition::Catalog(c)) => {
            build_catalog(&c, Some(&names), diags).map(|_| ())
        }
        Some(crate::dsl::Definition::Rule(r)) => {
            crate::alerts::rules::plan_rule(&r, yaml, Some(&names), diags).map(|_| ())
        }
        Some(crate::dsl::Definition::Check(c)) => crate::checks::build(&c, diags).map(|_| ()),
        Some(crate::dsl::Definition::OnCall(f)) => crate::oncall::plan(vec![(f, diags)])
            .map(|_| ())
            .map_err(|mut per_file| per_file.pop().unwrap_or_default()),
        None => Err(diags.into_sorted()),
    };
    match result {
        Ok(()) => Vec::new(),
        Err(ds) => ds
            .iter()
            .map(|d| format!("{} {}: {}", d.span, d.code, d.message))
            .collect(),
    }
}

/// Validates and returns the help texts, for the cases that promise a specific hint.
fn helps(yaml: &str) -> Vec<String> {
    let plugins = test_plugins();
    let names = workflows();
    let env = Env {
        plugins: &plugins,
        workflows: Some(&names),
    };
    let mut diags = Diagnostics::default();
    let Some(crate::dsl::Definition::Workflow(wf)) =
        crate::dsl::decode_any(yaml.as_bytes(), &mut diags)
    else {
        return Vec::new();
    };
    match build(&wf, env, diags) {
        Ok(_) => Vec::new(),
        Err(ds) => ds.into_iter().filter_map(|d| d.help).collect(),
    }
}

const HEAD: &str = "name: demo\nversion: 1\n";

#[test]
fn a_valid_workflow_has_no_problems() {
    let yaml = r#"name: provision
version: 3
description: Create machines
inputs:
  type: object
  required: [count, size]
  properties:
    count: { type: integer, minimum: 1, maximum: 50 }
    size: { type: string, enum: [small, medium, large] }
defaults:
  timeout: 2m
  retry: { max_attempts: 3, backoff: exponential, initial_delay: 1s, max_delay: 1m }
triggers:
  - cron: "0 */15 * * * *"
    timezone: Europe/Paris
    overlap: skip
    inputs: { count: 1, size: small }
steps:
  - id: quota
    uses: echo@^1
    with: { tenant: "{{ run.tenant }}", requested: "{{ inputs.count }}" }
  - id: approve
    needs: [quota]
    when: "{{ gt inputs.count 10 }}"
    approval: { roles: [operator], timeout: 24h }
  - id: create
    needs: [quota, approve]
    for_each: "{{ range inputs.count }}"
    max_parallel: 5
    uses: http@^1
    with: { method: POST, url: "https://cloud.test/instances/{{ index }}?key={{ secrets.cloud }}", body: { size: "{{ inputs.size }}" } }
    compensate:
      uses: http@^1
      with: { method: DELETE, url: "https://cloud.test/instances/{{ output.id }}?key={{ secrets.cloud }}" }
  - id: settle
    needs: [create]
    wait: 30s
  - id: child
    needs: [settle]
    workflow: demo@1
    with: { n: "{{ len steps.create.output }}" }
  - id: incident
    needs: [child]
    incident: { action: open, title: "vm {{ run.id }}", severity: sev3 }
  - id: tell
    needs: [incident]
    uses: notify@^1
    with: { channel: ops, text: "{{ len steps.create.output }} machines ready" }
outputs:
  instance_ids: "{{ map steps.create.output 'id' }}"
on_failure:
  - id: page
    uses: notify@^1
    with: { channel: oncall, text: "{{ run.id }} failed: {{ run.error }} at {{ steps.create.status }}" }
"#;
    assert_eq!(check(yaml), Vec::<String>::new());
    let plugins = test_plugins();
    let names = workflows();
    let plan = validate_workflow(
        yaml.as_bytes(),
        Env {
            plugins: &plugins,
            workflows: Some(&names),
        },
    )
    .expect("valid");
    let order: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        order,
        [
            "quota", "approve", "create", "settle", "child", "incident", "tell"
        ]
    );
    assert_eq!(plan.steps[2].needs, vec![0, 1]);
    assert_eq!(plan.steps[2].max_parallel, Some(5));
    assert_eq!(plan.steps[2].retry.max_attempts, 3);
    assert_eq!(plan.steps[0].timeout, Duration::from_secs(120));
    assert_eq!(plan.triggers[0].timezone, chrono_tz::Europe::Paris);
}

#[test]
fn the_plan_orders_steps_topologically_whatever_the_written_order() {
    let yaml = format!(
        "{HEAD}steps:\n  - id: c\n    needs: [b]\n    wait: 1s\n  - id: b\n    needs: [a]\n    wait: 1s\n  - id: a\n    wait: 1s\n"
    );
    let plugins = test_plugins();
    let plan = validate_workflow(
        yaml.as_bytes(),
        Env {
            plugins: &plugins,
            workflows: None,
        },
    )
    .expect("valid");
    let order: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["a", "b", "c"]);
    assert_eq!(plan.steps[2].needs, vec![1]);
}

/// (what is broken, the file, every problem expected as `line:column code: message`).
type Case = (&'static str, String, &'static [&'static str]);

fn cases() -> Vec<Case> {
    let s = |body: &str| format!("{HEAD}steps:\n{body}");
    vec![
        ("misspelt top-level key", "nmae: demo\nversion: 1\nsteps:\n  - id: a\n    wait: 1s\n".into(), &[
            "1:1 unknown-key: unknown key `nmae` in workflow",
            "1:1 missing-key: workflow is missing `name`",
        ]),
        ("misspelt step key", s("  - id: a\n    wait: 1s\n  - id: b\n    neds: [a]\n    wait: 1s\n"), &[
            "7:5 unknown-key: unknown key `neds` in step",
        ]),
        ("duplicate step id", s("  - id: a\n    wait: 1s\n  - id: a\n    wait: 2s\n"), &[
            "6:9 duplicate-step: step id `a` is used twice (first at 4:9)",
        ]),
        ("unknown need", s("  - id: first\n    wait: 1s\n  - id: b\n    needs: [frist]\n    wait: 1s\n"), &[
            "7:13 unknown-need: step `b` needs `frist`, which is not a step here",
        ]),
        ("step needs itself", s("  - id: a\n    needs: [a]\n    wait: 1s\n"), &[
            "5:13 self-need: step `a` needs itself",
        ]),
        ("two-step cycle", s("  - id: a\n    needs: [b]\n    wait: 1s\n  - id: b\n    needs: [a]\n    wait: 1s\n"), &[
            "5:13 cycle: steps form a cycle: a → b → a (each step needs the next)",
        ]),
        ("three-step cycle", s("  - id: a\n    needs: [c]\n    wait: 1s\n  - id: b\n    needs: [a]\n    wait: 1s\n  - id: c\n    needs: [b]\n    wait: 1s\n"), &[
            "5:13 cycle: steps form a cycle: a → c → b → a (each step needs the next)",
        ]),
        ("template reads a step that is not upstream", s("  - id: a\n    wait: 1s\n  - id: b\n    uses: echo@^1\n    with: { x: \"{{ steps.a.output }}\" }\n"), &[
            "8:16 not-upstream: step `b` reads `steps.a`, but `a` is not upstream of `b`",
        ]),
        ("template reads a step that does not exist", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ steps.nope.output }}\" }\n"), &[
            "6:16 unknown-step: template reads `steps.nope`, but there is no step `nope`",
        ]),
        ("template reads an unknown root", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ input.count }}\" }\n"), &[
            "6:16 unknown-variable: unknown variable `input.count`",
        ]),
        ("item outside for_each", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ item }}\" }\n"), &[
            "6:16 out-of-scope: `item` is only in scope in a step with `for_each`",
        ]),
        ("output outside compensate", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ output.id }}\" }\n"), &[
            "6:16 out-of-scope: `output` is only in scope in `compensate`",
        ]),
        ("unknown plugin", s("  - id: a\n    uses: ehco@^1\n"), &[
            "5:11 unknown-plugin: plugin `ehco` does not exist",
        ]),
        ("no plugin version satisfies", s("  - id: a\n    uses: http@^2\n    with: { url: x }\n"), &[
            "5:11 no-matching-version: no version of plugin `http` satisfies `^2`",
        ]),
        ("with misses a required field", s("  - id: a\n    uses: http@^1\n    with: { method: GET }\n"), &[
            "6:13 plugin-input: `with` does not match the input schema of plugin `http@1.2.0`: \"url\" is a required property",
        ]),
        ("with has a value outside an enum", s("  - id: a\n    uses: http@^1\n    with:\n      url: https://x.test\n      method: FETCH\n"), &[
            "8:15 plugin-input: `with.method` does not match the input schema of plugin `http@1.2.0`: \"FETCH\" is not one of \"GET\", \"POST\" or 3 other candidates",
        ]),
        ("with has a key the plugin does not take", s("  - id: a\n    uses: http@^1\n    with: { url: x, methdo: GET }\n"), &[
            "6:21 plugin-input: `with` does not match the input schema of plugin `http@1.2.0`: Additional properties are not allowed ('methdo' was unexpected)",
        ]),
        ("with has a wrong type but templates are left to run time", s("  - id: a\n    uses: http@^1\n    with: { url: x, expected_status: \"{{ run.id }}\", method: 3 }\n"), &[
            "6:62 plugin-input: `with.method` does not match the input schema of plugin `http@1.2.0`: 3 is not of type \"string\"",
            "6:62 plugin-input: `with.method` does not match the input schema of plugin `http@1.2.0`: 3 is not one of \"GET\", \"POST\" or 3 other candidates",
        ]),
        ("invalid inputs schema", format!("{HEAD}inputs:\n  type: objekt\nsteps:\n  - id: a\n    wait: 1s\n"), &[
            "4:9 invalid-schema: `inputs` is not a valid JSON Schema: \"objekt\" is not valid under any of the schemas listed in the 'anyOf' keyword",
        ]),
        ("invalid cron expression", format!("{HEAD}triggers:\n  - cron: \"every minute\"\nsteps:\n  - id: a\n    wait: 1s\n"), &[
            "4:11 invalid-cron: invalid cron expression `every minute`: The 'Seconds' field does not support using names. 'every' specified.",
        ]),
        ("unknown time zone", format!("{HEAD}triggers:\n  - cron: \"0 * * * * *\"\n    timezone: Mars/Olympus\nsteps:\n  - id: a\n    wait: 1s\n"), &[
            "5:15 invalid-timezone: unknown time zone `Mars/Olympus`",
        ]),
        ("unknown overlap policy", format!("{HEAD}triggers:\n  - cron: \"0 * * * * *\"\n    overlap: queue\nsteps:\n  - id: a\n    wait: 1s\n"), &[
            "5:14 invalid-value: unknown overlap policy `queue`",
        ]),
        ("duration without a unit", s("  - id: a\n    uses: echo@^1\n    timeout: 10 minutes\n"), &[
            "6:14 invalid-duration: `timeout`: `10 minutes` has an unknown unit ` minutes`",
        ]),
        ("zero duration", s("  - id: a\n    wait: 0s\n"), &[
            "5:11 invalid-duration: `wait` must be longer than zero",
        ]),
        ("retry attempts out of range", s("  - id: a\n    uses: echo@^1\n    retry: { max_attempts: 0 }\n"), &[
            "6:28 out-of-range: `retry.max_attempts` is 0, outside the valid range 1..=100",
        ]),
        ("unknown backoff", s("  - id: a\n    uses: echo@^1\n    retry: { backoff: linear }\n"), &[
            "6:23 invalid-value: unknown backoff `linear`",
        ]),
        ("max_delay shorter than initial_delay", s("  - id: a\n    uses: echo@^1\n    retry: { initial_delay: 1m, max_delay: 10s }\n"), &[
            "6:44 invalid-value: `retry.max_delay` is shorter than `retry.initial_delay`",
        ]),
        ("missing version", "name: demo\nsteps:\n  - id: a\n    wait: 1s\n".into(), &[
            "1:1 missing-key: workflow is missing `version`",
        ]),
        ("version is not an integer", "name: demo\nversion: three\nsteps:\n  - id: a\n    wait: 1s\n".into(), &[
            "2:10 wrong-type: `version` must be an integer, found `three`",
        ]),
        ("invalid workflow name", "name: Provision VMs\nversion: 1\nsteps:\n  - id: a\n    wait: 1s\n".into(), &[
            "1:7 invalid-name: workflow name `Provision VMs` is not valid",
        ]),
        ("step without a kind", s("  - id: a\n    needs: []\n"), &[
            "4:5 missing-kind: step does nothing: it has none of `uses`, `wait`, `approval`, `signal`, `workflow`, `incident`, `silence`, `escalate`",
        ]),
        ("step with two kinds", s("  - id: a\n    uses: echo@^1\n    wait: 1s\n"), &[
            "6:5 conflicting-kind: step has both `uses` and `wait`",
        ]),
        ("with on a wait step", s("  - id: a\n    wait: 1s\n    with: { x: 1 }\n"), &[
            "6:5 misplaced-key: `with` only applies to `uses` and `workflow` steps",
        ]),
        ("max_parallel without for_each", s("  - id: a\n    uses: echo@^1\n    max_parallel: 3\n"), &[
            "6:19 misplaced-key: `max_parallel` only applies to steps with `for_each`",
        ]),
        ("for_each that is not a list", s("  - id: a\n    uses: echo@^1\n    for_each: 3\n"), &[
            "6:15 wrong-type: `for_each` must be a list or a template giving one",
        ]),
        ("approval with a misspelt role", s("  - id: a\n    approval: { roles: [operater] }\n"), &[
            "5:25 invalid-value: unknown role `operater`",
        ]),
        ("approval without roles", s("  - id: a\n    approval: { timeout: 1h }\n"), &[
            "5:17 missing-key: `approval` is missing `roles`",
        ]),
        ("unknown incident action", s("  - id: a\n    incident: { action: close, id: x }\n"), &[
            "5:25 invalid-value: unknown incident action `close`",
        ]),
        ("incident opened without a title", s("  - id: a\n    incident: { action: open, severity: sev2 }\n"), &[
            "5:17 missing-key: `incident` with `action: open` is missing `title`",
        ]),
        ("unknown severity", s("  - id: a\n    incident: { action: open, title: t, severity: critical }\n"), &[
            "5:51 invalid-value: unknown severity `critical`",
        ]),
        ("template syntax error", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ run.id\" }\n"), &[
            "6:16 template-syntax: invalid template `{{ run.id`: a `{{` has no matching `}}`",
        ]),
        ("misspelt input", format!("{HEAD}inputs:\n  type: object\n  properties:\n    count: {{ type: integer }}\nsteps:\n  - id: a\n    uses: echo@^1\n    with: {{ n: \"{{{{ inputs.cuont }}}}\" }}\n"), &[
            "10:16 unknown-input: `inputs.cuont` is not declared in the workflow's `inputs` schema",
        ]),
        ("unknown run field", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ run.tennant }}\" }\n"), &[
            "6:16 unknown-variable: `run` has no field `tennant`",
        ]),
        ("run.error outside on_failure", s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ run.error }}\" }\n"), &[
            "6:16 out-of-scope: `run.error` is only set in `on_failure` steps",
        ]),
        ("unknown step field", s("  - id: a\n    wait: 1s\n  - id: b\n    needs: [a]\n    uses: echo@^1\n    with: { x: \"{{ steps.a.outptu }}\" }\n"), &[
            "9:16 unknown-variable: `steps.a` has no field `outptu`",
        ]),
        ("on_failure step needs a main step", format!("{HEAD}steps:\n  - id: a\n    wait: 1s\non_failure:\n  - id: page\n    needs: [a]\n    uses: notify@^1\n"), &[
            "8:13 unknown-need: step `page` needs `a`, which is not a step here",
        ]),
        ("for_each in an on_failure step", format!("{HEAD}steps:\n  - id: a\n    wait: 1s\non_failure:\n  - id: page\n    for_each: [1, 2]\n    uses: notify@^1\n"), &[
            "8:15 misplaced-key: `for_each` is not supported in `on_failure` steps",
        ]),
        ("compensate on a wait step", s("  - id: a\n    wait: 1s\n    compensate: { uses: echo@^1 }\n"), &[
            "6:19 misplaced-key: `compensate` only applies to `uses` and `workflow` steps",
        ]),
        ("compensate without uses", s("  - id: a\n    uses: echo@^1\n    compensate: { with: { x: 1 } }\n"), &[
            "6:19 missing-key: `compensate` is missing `uses`",
        ]),
        ("yaml syntax error", "name: demo\nversion: 1\nsteps:\n  - id: \"a\n".into(), &[
            "4:9 yaml-syntax: YAML syntax error: while scanning a quoted scalar, found unexpected end of stream",
        ]),
        ("duplicate key", s("  - id: a\n    wait: 1s\n    wait: 2s\n"), &[
            "6:5 duplicate-key: key `wait` is given twice (first at 5:5)",
        ]),
        ("empty file", "\n# nothing here\n".into(), &["1:1 empty-file: file is empty"]),
        ("top level is a list", "- name: demo\n".into(), &[
            "1:1 not-a-mapping: the top level must be a mapping of keys to values",
        ]),
        ("anchors and aliases", "name: &n demo\nversion: 1\nsteps:\n  - id: a\n    wait: 1s\n".into(), &[
            "1:10 yaml-anchor: YAML anchors and aliases are not supported in definitions",
        ]),
        ("steps is not a list", format!("{HEAD}steps:\n  id: a\n"), &[
            "4:3 wrong-type: `steps` must be a list, found a mapping",
        ]),
        ("needs holds a mapping", s("  - id: a\n    wait: 1s\n  - id: b\n    needs: [{ a: 1 }]\n    wait: 1s\n"), &[
            "7:15 wrong-type: `needs` must be a string, found a mapping",
        ]),
        ("trigger inputs violate the inputs schema", format!("{HEAD}inputs:\n  type: object\n  properties:\n    count: {{ type: integer }}\ntriggers:\n  - cron: \"0 * * * * *\"\n    inputs: {{ count: many }}\nsteps:\n  - id: a\n    wait: 1s\n"), &[
            "9:22 trigger-inputs: trigger inputs do not match the workflow's `inputs` schema: \"many\" is not of type \"integer\"",
        ]),
        ("unknown sub-workflow", s("  - id: a\n    workflow: provision-vm\n"), &[
            "5:15 unknown-workflow: workflow `provision-vm` does not exist",
        ]),
        ("unknown sub-workflow version", s("  - id: a\n    workflow: provision-vms@7\n"), &[
            "5:15 unknown-workflow: workflow `provision-vms` has no version 7",
        ]),
        ("continue_on_error is not a boolean", s("  - id: a\n    uses: echo@^1\n    continue_on_error: sometimes\n"), &[
            "6:24 wrong-type: `continue_on_error` must be `true` or `false`",
        ]),
        ("invalid step id", s("  - id: Create VM\n    wait: 1s\n"), &[
            "4:9 invalid-name: step id `Create VM` is not valid",
        ]),
        ("no steps", format!("{HEAD}steps: []\n"), &["3:8 no-steps: workflow has no steps"]),
        ("malformed plugin reference", s("  - id: a\n    uses: echo@latest\n"), &[
            "5:11 invalid-plugin-ref: `latest` is not a semver requirement: unexpected character 'l' while parsing major version number",
        ]),
        ("every problem of a file at once", s("  - id: a\n    uses: ehco@^1\n    neds: [b]\n  - id: a\n    wait: soon\n"), &[
            "5:11 unknown-plugin: plugin `ehco` does not exist",
            "6:5 unknown-key: unknown key `neds` in step",
            "7:9 duplicate-step: step id `a` is used twice (first at 4:9)",
            "8:11 invalid-duration: `wait`: `soon` is not a duration",
        ]),
        ("catalog: misspelt key", "id: vms\ntitle: VMs\nworkflow: provision-vms\ntenant: [acme]\n".into(), &[
            "4:1 unknown-key: unknown key `tenant` in catalog entry",
        ]),
        ("catalog: missing title", "id: vms\nworkflow: provision-vms\n".into(), &[
            "1:1 missing-key: catalog entry is missing `title`",
        ]),
        ("catalog: unknown workflow", "id: vms\ntitle: VMs\nworkflow: provison-vms\n".into(), &[
            "3:11 unknown-workflow: workflow `provison-vms` does not exist",
        ]),
        ("catalog: default for an input that does not exist", "id: vms\ntitle: VMs\nworkflow: provision-vms\ninputs:\n  type: object\n  properties:\n    size: { type: string }\ndefaults: { sise: small }\n".into(), &[
            "8:13 unknown-input: default `sise` is not an input of this entry",
        ]),
        ("catalog: default of the wrong type", "id: vms\ntitle: VMs\nworkflow: provision-vms\ninputs:\n  type: object\n  properties:\n    count: { type: integer }\ndefaults: { count: lots }\n".into(), &[
            "8:20 invalid-default: default `count` does not match its schema: \"lots\" is not of type \"integer\"",
        ]),
        ("uses without a version requirement", s("  - id: a\n    uses: http\n    with: { url: x }\n"), &[
            "5:11 missing-version: `uses: http` says no version requirement",
        ]),
        ("compensate uses without a version requirement", s("  - id: a\n    uses: echo@^1\n    compensate:\n      uses: echo\n"), &[
            "7:13 missing-version: `uses: echo` says no version requirement",
        ]),
        ("when that is not a template", s("  - id: a\n    when: inputs.count > 10\n    wait: 1s\n"), &[
            "5:11 not-a-template: `when: inputs.count > 10` is not a template: as plain text it is always true",
        ]),
        ("approval with an empty list of roles", s("  - id: a\n    approval: { roles: [] }\n"), &[
            "5:24 empty-list: `approval.roles` is empty",
        ]),
        ("a tab in indentation", s("  - id: a\n\t  wait: 1s\n  - id: b\n    wait: 1s\n"), &[
            "5:1 yaml-tab: a tab in indentation: YAML indents with spaces only",
        ]),
        ("a tab after spaces in indentation", s("  - id: a\n    wait: 1s\n  - id: b\n   \twait: 1s\n"), &[
            "7:4 yaml-tab: a tab in indentation: YAML indents with spaces only",
        ]),
        ("catalog: approval with an empty list of roles", "id: vms\ntitle: VMs\nworkflow: provision-vms\napproval: { roles: [] }\n".into(), &[
            "4:20 empty-list: `approval.roles` is empty",
        ]),
        ("a secret in when", s("  - id: a\n    when: \"{{ secrets.token }}\"\n    wait: 1s\n"), &[
            "5:11 secret-out-of-place: `secrets.token` may only be read in `with:` of a `uses:` step or of its `compensate:`; anywhere else its value would be stored",
        ]),
        ("a secret in the outputs", format!("{HEAD}steps:\n  - id: a\n    wait: 1s\noutputs:\n  leaked: \"{{{{ secrets.token }}}}\"\n"), &[
            "7:11 secret-out-of-place: `secrets.token` may only be read in `with:` of a `uses:` step or of its `compensate:`; anywhere else its value would be stored",
        ]),
        ("a secret in a child workflow's inputs", s("  - id: a\n    workflow: demo@1\n    with: { n: \"{{ secrets.token }}\" }\n"), &[
            "6:16 secret-out-of-place: `secrets.token` may only be read in `with:` of a `uses:` step or of its `compensate:`; anywhere else its value would be stored",
        ]),
        ("a secret in an incident", s("  - id: a\n    incident: { action: open, title: \"x {{ secrets.token }}\", severity: sev3 }\n"), &[
            "5:38 secret-out-of-place: `secrets.token` may only be read in `with:` of a `uses:` step or of its `compensate:`; anywhere else its value would be stored",
        ]),
        ("a secret in an approval message", s("  - id: a\n    approval: { roles: [operator], message: \"{{ secrets.token }}\" }\n"), &[
            "5:45 secret-out-of-place: `secrets.token` may only be read in `with:` of a `uses:` step or of its `compensate:`; anywhere else its value would be stored",
        ]),
        ("escalate without an incident", s("  - id: a\n    escalate: { policy: shop, page: demo }\n"), &[
            "5:17 missing-key: `escalate` is missing `incident`",
        ]),
        ("escalate paging through a workflow that does not exist", s("  - id: a\n    escalate: { incident: inc-1, page: pager }\n"), &[
            "5:40 unknown-workflow: workflow `pager`, which pages each responder, does not exist",
        ]),
        ("escalate naming a policy in capitals", s("  - id: a\n    escalate: { incident: inc-1, policy: Shop, page: demo }\n"), &[
            "5:42 invalid-name: `Shop` is not a valid name ([a-z0-9-]+)",
        ]),
        ("on-call: a contact secret notify cannot read", "users:\n  - { id: ann, contacts: [{ type: slack, secret: slack_ann }] }\n".into(), &[
            "2:50 invalid-value: contact secret `slack_ann` does not start with `notify_`",
        ]),
        ("on-call: a policy naming an unknown schedule", "escalation_policies:\n  - id: p\n    levels: [{ delay: 5m, targets: [{ schedule: primary }] }]\n".into(), &[
            "3:49 unknown-schedule: schedule `primary` is not defined",
        ]),
        ("on-call: a target naming two kinds", "users:\n  - { id: ann }\nescalation_policies:\n  - id: p\n    levels: [{ delay: 5m, targets: [{ user: ann, team: ops }] }]\n".into(), &[
            "5:39 invalid-target: an escalation target names exactly one of `user`, `schedule` or `team`",
        ]),
        ("on-call: two policies for one service", "users:\n  - { id: ann }\nescalation_policies:\n  - { id: p, services: [shop], levels: [{ delay: 5m, targets: [{ user: ann }] }] }\n  - { id: q, services: [shop], levels: [{ delay: 5m, targets: [{ user: ann }] }] }\n".into(), &[
            "5:25 duplicate-service: service `shop` already follows policy `p`",
        ]),
        ("on-call: a level without a delay", "users:\n  - { id: ann }\nescalation_policies:\n  - { id: p, levels: [{ targets: [{ user: ann }] }] }\n".into(), &[
            "4:25 missing-key: escalation level is missing `delay`",
        ]),
        ("catalog: an objective that is not a percent", "id: vms\ntitle: VMs\nworkflow: provision-vms\nslo: { objective: 100.5 }\n".into(), &[
            "4:19 invalid-value: `slo.objective` must be a percent between 0 and 100, found `100.5`",
        ]),
        ("catalog: an SLO window under an hour", "id: vms\ntitle: VMs\nworkflow: provision-vms\nslo: { objective: 99.9, window: 5m }\n".into(), &[
            "4:33 invalid-duration: `slo.window` must be at least an hour",
        ]),
        ("check: a URL that is not http, an interval too short, a condition without an operator", "name: shop\nservice: shop\nurl: ftp://x\ninterval: 500ms\nconditions:\n  - \"[STATUS] = 200\"\n".into(), &[
            "3:6 invalid-value: `ftp://x` is not an http(s) URL",
            "4:11 invalid-duration: `interval` must be at least 1s",
            "6:5 invalid-condition: after the placeholder comes one of ==, !=, <, <=, >, >=",
        ]),
        ("check: a certificate condition on a plain http URL", "name: shop\nservice: shop\nurl: http://x\nconditions: [\"[CERTIFICATE_EXPIRATION] > 14d\"]\n".into(), &[
            "3:6 invalid-condition: `[CERTIFICATE_EXPIRATION]` needs an `https://` URL",
        ]),
        ("check: no service, a timeout past the interval", "name: shop\nurl: http://x\nconditions: [\"[STATUS] == 200\"]\ntimeout: 2m\ninterval: 1m\n".into(), &[
            "1:1 missing-key: check is missing `service`",
            "1:1 invalid-duration: the `timeout` is longer than the `interval`",
        ]),
        ("catalog: invalid SLA", "id: vms\ntitle: VMs\nworkflow: provision-vms\nsla: { fulfil_within: fast }\n".into(), &[
            "4:23 invalid-duration: `sla.fulfil_within`: `fast` is not a duration",
        ]),
    ]
}

#[test]
fn every_broken_input_gets_its_located_message() {
    let cases = cases();
    assert!(cases.len() >= 40, "at least 40 distinct broken inputs");
    let mut failures = Vec::new();
    for (what, yaml, want) in &cases {
        let got = check(yaml);
        if got != *want {
            failures.push(format!("{what}:\n  want {want:#?}\n  got  {got:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn hints_name_the_fix() {
    let s = |body: &str| format!("{HEAD}steps:\n{body}");
    let cases: &[(String, &str)] = &[
        (
            s("  - id: a\n    wait: 1s\n  - id: b\n    neds: [a]\n    wait: 1s\n"),
            "did you mean `needs`?",
        ),
        (
            s("  - id: first\n    wait: 1s\n  - id: b\n    needs: [frist]\n    wait: 1s\n"),
            "did you mean `first`?",
        ),
        (
            s(
                "  - id: a\n    wait: 1s\n  - id: b\n    uses: echo@^1\n    with: { x: \"{{ steps.a.output }}\" }\n",
            ),
            "add `a` to the `needs` of `b`",
        ),
        (s("  - id: a\n    uses: ehco@^1\n"), "did you mean `echo`?"),
        (
            s("  - id: a\n    uses: http@^2\n    with: { url: x }\n"),
            "available versions: 1.2.0",
        ),
        (
            s("  - id: a\n    approval: { roles: [operater] }\n"),
            "did you mean `operator`?",
        ),
        (
            s("  - id: a\n    uses: echo@^1\n    retry: { max_attempts: 0 }\n"),
            "use an integer from 1 to 100",
        ),
        (
            s("  - id: a\n    uses: echo@^1\n    with: { x: \"{{ run.tennant }}\" }\n"),
            "did you mean `run.tenant`?",
        ),
        (
            s("  - id: a\n    when: \"{{ secrets.token }}\"\n    wait: 1s\n"),
            "hand the secret to the plugin that needs it in that step's `with:` (what the plugin returns is masked)",
        ),
        (
            s("  - id: a\n    uses: http\n    with: { url: x }\n"),
            "pin the major version you tested with, e.g. `uses: http@^1`",
        ),
        (
            s("  - id: a\n    when: inputs.count > 10\n    wait: 1s\n"),
            "write the condition as a template: `when: \"{{ gt inputs.count 10 }}\"`",
        ),
        (
            s("  - id: a\n    when: steps.b.output.ok\n    wait: 1s\n"),
            "write the condition as a template: `when: \"{{ steps.b.output.ok }}\"`",
        ),
    ];
    for (yaml, want) in cases {
        let got = helps(yaml);
        assert!(
            got.iter().any(|h| h == want),
            "want hint {want:?}, got {got:?}"
        );
    }
}

#[test]
fn retry_delays_grow_and_are_capped() {
    let r = RetryPolicy {
        max_attempts: 10,
        backoff: Backoff::Exponential,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
    };
    let delays: Vec<u64> = (2..=7).map(|a| r.delay_before(a).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    let fixed = RetryPolicy {
        backoff: Backoff::Fixed,
        ..r
    };
    assert_eq!(fixed.delay_before(5), Duration::from_secs(1));
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    const VALID: &str = "name: demo\nversion: 1\ninputs:\n  type: object\n  properties:\n    n: { type: integer }\nsteps:\n  - id: a\n    uses: http@^1\n    with: { url: \"x/{{ inputs.n }}\", method: GET }\n  - id: b\n    needs: [a]\n    for_each: \"{{ range inputs.n }}\"\n    uses: echo@^1\n    with: { i: \"{{ item }}\", prev: \"{{ steps.a.output }}\" }\n    compensate: { uses: echo@^1, with: { o: \"{{ output }}\" } }\n  - id: c\n    needs: [b]\n    wait: 1s\ntriggers:\n  - cron: \"0 * * * * *\"\n";

    const TOKENS: &[&str] = &[
        "name:",
        "version:",
        "steps:",
        "- id:",
        "needs:",
        "uses:",
        "with:",
        "{{",
        "}}",
        "[",
        "]",
        "{",
        "}",
        ":",
        "-",
        "\n",
        "  ",
        "&a",
        "*a",
        "!tag",
        "\"",
        "'",
        "#",
        "|",
        ">",
        "a",
        "1",
        "echo@^1",
        "for_each:",
        "wait:",
        "1s",
        "steps.a.output",
        "inputs.n",
        ",",
        "~",
        "null",
    ];

    fn validate(bytes: &[u8]) {
        let plugins = test_plugins();
        let env = Env {
            plugins: &plugins,
            workflows: None,
        };
        let _ = validate_workflow(bytes, env);
        let _ = catalog::validate_catalog(bytes, None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            validate(&bytes);
        }

        #[test]
        fn yaml_like_token_soup(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)) {
            validate(tokens.concat().as_bytes());
        }

        #[test]
        fn mutations_of_a_valid_workflow(at in 0usize..VALID.len(), cut in 0usize..20, insert in proptest::sample::select(TOKENS)) {
            let mut text = VALID.as_bytes().to_vec();
            let end = (at + cut).min(text.len());
            text.splice(at..end, insert.bytes());
            validate(&text);
        }
    }
}
