//! Table tests of rendering, typing, strictness and reference extraction.

use serde_json::json;

use super::*;

fn scope() -> Context {
    context(json!({
        "inputs": { "count": 12, "size": "large", "tags": ["a", "b"], "zero": 0, "nothing": null },
        "steps": {
            "create": { "status": "succeeded", "output": [{ "id": "vm-1" }, { "id": "vm-2" }] },
            "quota-check": { "status": "succeeded", "output": { "ok": true } }
        },
        "run": { "id": "r1", "tenant": "acme" }
    }))
}

fn render(src: &str) -> Result<Json, String> {
    Template::compile(src)
        .map_err(|e| e.message)?
        .render(&scope())
        .map_err(|e| e.message)
}

#[test]
fn renders_keep_types_for_single_expressions() {
    let cases: &[(&str, Json)] = &[
        ("{{ inputs.count }}", json!(12)),
        ("{{inputs.size}}", json!("large")),
        ("  {{ inputs.tags }}  ", json!(["a", "b"])),
        ("{{ gt inputs.count 10 }}", json!(true)),
        ("{{ lte inputs.count 10 }}", json!(false)),
        ("{{ eq inputs.size 'large' }}", json!(true)),
        ("{{ ne inputs.size \"small\" }}", json!(true)),
        ("{{ and true inputs.count }}", json!(true)),
        ("{{ or inputs.zero false }}", json!(false)),
        ("{{ not inputs.zero }}", json!(true)),
        ("{{ len steps.create.output }}", json!(2)),
        ("{{ len inputs.size }}", json!(5)),
        ("{{ range 3 }}", json!([0, 1, 2])),
        (
            "{{ map steps.create.output 'id' }}",
            json!(["vm-1", "vm-2"]),
        ),
        ("{{ json inputs.tags }}", json!("[\"a\",\"b\"]")),
        ("{{ default inputs.region 'eu-west' }}", json!("eu-west")),
        ("{{ default inputs.nothing 3 }}", json!(3)),
        ("{{ default inputs.size 'x' }}", json!("large")),
        ("{{ join inputs.tags '-' }}", json!("a-b")),
        ("{{ contains inputs.tags 'b' }}", json!(true)),
        ("{{ concat run.tenant '-' inputs.count }}", json!("acme-12")),
        ("{{ steps.quota-check.output.ok }}", json!(true)),
        ("{{ len (map steps.create.output 'id') }}", json!(2)),
        ("plain text", json!("plain text")),
        (
            "{{ len steps.create.output }} machines ready",
            json!("2 machines ready"),
        ),
        (
            "tenant={{ run.tenant }}, n={{ inputs.count }}",
            json!("tenant=acme, n=12"),
        ),
        (
            "{{#if (gt inputs.count 10)}}big{{else}}small{{/if}}",
            json!("big"),
        ),
        ("{{#each inputs.tags}}[{{this}}]{{/each}}", json!("[a][b]")),
        ("<&>{{ inputs.size }}", json!("<&>large")),
    ];
    for (src, want) in cases {
        assert_eq!(render(src).as_ref(), Ok(want), "{src}");
    }
}

#[test]
fn strictness_and_helper_errors_are_clear() {
    let cases: &[(&str, &str)] = &[
        ("{{ inputs.missing }}", "unknown variable `inputs.missing`"),
        (
            "x {{ inputs.missing }}",
            "unknown variable `inputs.missing`",
        ),
        (
            "{{ gt inputs.missing 1 }}",
            "unknown variable `inputs.missing`",
        ),
        (
            "{{ gt inputs.size 1 }}",
            "helper `gt` compares two numbers or two strings, got \"large\" and 1",
        ),
        (
            "{{ range 1000000 }}",
            "helper `range` was asked for 1000000 items, more than the limit of 100000",
        ),
        (
            "{{ map steps.create.output 'name' }}",
            "helper `map`: item 0 has no field `name`",
        ),
        ("{{ not 1 2 }}", "helper `not` takes 1 argument, got 2"),
        (
            "{{ len 3 }}",
            "helper `len` needs a list, map or string, got 3",
        ),
    ];
    for (src, want) in cases {
        assert_eq!(render(src), Err(want.to_string()), "{src}");
    }
}

#[test]
fn syntax_errors_fail_at_compile() {
    for src in ["{{ inputs.count", "{{#if x}}no end", "{{/if}}", "a }} b {{"] {
        let e = Template::compile(src).expect_err(src);
        assert!(
            e.message.starts_with("invalid template"),
            "{src}: {}",
            e.message
        );
    }
}

#[test]
fn references_list_what_a_template_reads() {
    let refs = |src: &str| -> Vec<String> {
        Template::compile(src)
            .expect(src)
            .references()
            .into_iter()
            .map(|r| r.path.join("."))
            .collect()
    };
    assert_eq!(refs("{{ inputs.count }}"), ["inputs.count"]);
    assert_eq!(
        refs("{{ gt steps.a.output.n (len steps.b.output) }}"),
        ["steps.a.output.n", "steps.b.output"]
    );
    assert_eq!(refs("{{ item }} of {{ index }}"), ["item", "index"]);
    assert_eq!(
        refs("{{#if steps.x.output}}{{ run.id }}{{/if}}"),
        ["steps.x.output", "run.id"]
    );
    assert_eq!(
        refs("{{#each steps.x.output}}{{ name }}{{/each}}"),
        ["steps.x.output"]
    );
    assert_eq!(
        refs("{{ steps.quota-check.output }}"),
        ["steps.quota-check.output"]
    );
    assert!(refs("no templates").is_empty());
}

#[test]
fn value_trees_render_every_template() {
    let tv = TValue::Map(vec![
        (
            "n".into(),
            TValue::Template(Template::compile("{{ inputs.count }}").expect("compiles")),
        ),
        ("fixed".into(), TValue::Literal(json!([1, 2]))),
        (
            "list".into(),
            TValue::List(vec![TValue::Template(
                Template::compile("x-{{ run.id }}").expect("compiles"),
            )]),
        ),
    ]);
    assert_eq!(
        tv.render(&scope()),
        Ok(json!({"n": 12, "fixed": [1, 2], "list": ["x-r1"]}))
    );
    assert_eq!(tv.templates().len(), 2);
}
