//! The AWS plugins and the workflows built on them, against moto (`moto.rs`), each result
//! checked with boto3: SigV4 accepted by moto's verifier (and a wrong key refused as a
//! permanent `AuthFailure`), a retried launch that launches nothing twice, `provision-vms`
//! leaving tagged running instances (and none after a forced failure), `scale-service`
//! changing a group's desired capacity, `remediate-high-cpu` reading CloudWatch, and
//! `predictive-scale` raising capacity ahead of a daily peak written with PutMetricData.
//!
//! Workflows run through the real `csmp run` in real time, with their waits shortened by
//! their inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use csmp::plugin::{
    CancellationToken, FailureKind, Grant, Grants, HostConfig, Invocation, PluginHost,
};
use serde_json::{Value, json};

use crate::helpers::repo_root;
use crate::moto::Moto;
use crate::receivers::Receivers;

/// Any credentials do when moto does not check them.
const KEY_ID: &str = "AKIDCSMPTEST";
const SECRET: &str = "csmp-test-secret";

fn workflow(name: &str) -> PathBuf {
    repo_root().join("workflows").join(format!("{name}.yaml"))
}

/// A plugin host with the built-ins, `aws-ec2` granted exactly this moto and `aws_*`.
fn ec2_host(moto: &Moto) -> PluginHost {
    let mut grants = Grants::default();
    grants.plugins.insert(
        "aws-ec2".into(),
        Grant {
            http_hosts: vec![moto.authority.clone()],
            secrets: vec!["aws_*".into()],
            ..Grant::default()
        },
    );
    let cache = crate::helpers::plugin_cache();
    let host = PluginHost::new(HostConfig::new(cache, grants)).expect("host starts");
    host.load_builtins().expect("built-ins load");
    host
}

/// One `aws-ec2` attempt with `input`, as step `key`, with these credentials.
fn ec2(
    host: &PluginHost,
    moto: &Moto,
    key: &str,
    credentials: (&str, &str),
    input: Value,
) -> Result<Value, csmp::plugin::StepFailure> {
    let secrets = BTreeMap::from([
        ("aws_access_key_id".to_string(), credentials.0.to_string()),
        (
            "aws_secret_access_key".to_string(),
            credentials.1.to_string(),
        ),
        ("aws_endpoint".to_string(), moto.endpoint.clone()),
    ]);
    host.invoke_blocking(Invocation {
        plugin: "aws-ec2".into(),
        version: semver::Version::new(1, 0, 0),
        input,
        idempotency_key: key.into(),
        secrets: Arc::new(secrets),
        timeout: Duration::from_secs(60),
        cancel: CancellationToken::new(),
    })
    .map(|o| o.output)
}

#[test]
fn moto_with_authentication_accepts_our_signatures_and_refuses_a_wrong_key() {
    // seed-auth makes three calls before moto starts checking.
    let moto = Moto::start_with_authentication(3);
    let key = moto.boto(&["seed-auth"]);
    let (id, secret) = (
        key["id"].as_str().expect("a key id"),
        key["secret"].as_str().expect("a secret"),
    );

    // The right key, through every plugin: moto recomputes and compares each signature.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("describe-all.yaml");
    std::fs::write(
        &file,
        "name: describe-all\nversion: 1\nsteps:\n  \
         - id: ec2\n    uses: aws-ec2@^1\n    with: { action: describe_instances }\n  \
         - id: groups\n    uses: aws-autoscaling@^1\n    with: { action: describe_groups }\n  \
         - id: alarms\n    uses: aws-cloudwatch@^1\n    with: { action: describe_alarms }\n  \
         - id: put\n    uses: aws-cloudwatch@^1\n    with: { action: put_metric_data, namespace: csmp/test, data: [{ metric: Signed, value: 1 }] }\n\
         outputs:\n  instances: \"{{ steps.ec2.output.count }}\"\n  groups: \"{{ len steps.groups.output.groups }}\"\n",
    )
    .expect("workflow written");
    let grants = moto.grants(None);
    let ran = moto.csmp_run(&file, &[], &grants, &moto.secrets(id, secret));
    assert_eq!(ran.code, Some(0), "{}", ran.printed);
    assert_eq!(ran.outputs, json!({"instances": 0, "groups": 0}));

    // boto3 with the same key agrees that it works.
    let seen = moto.boto_as(
        Some((id, secret)),
        &["instances", "--tag", "csmp:tenant=nobody"],
    );
    assert_eq!(seen["instances"], json!([]));

    // A key moto never issued, and a wrong secret for the real key: permanent AuthFailure.
    let host = ec2_host(&moto);
    for (credentials, what) in [
        (("AKIDNOTAREALKEY00000", secret), "an unknown key id"),
        ((id, "not-the-secret"), "a wrong secret"),
    ] {
        let failure = ec2(
            &host,
            &moto,
            "run-x/d",
            credentials,
            json!({"action": "describe_instances"}),
        )
        .err()
        .unwrap_or_else(|| panic!("{what} was accepted"));
        assert_eq!(failure.kind, FailureKind::Permanent, "{what}: {failure:?}");
        assert!(
            failure
                .message
                .contains("ec2 DescribeInstances failed: AuthFailure"),
            "{what}: {}",
            failure.message
        );
        assert!(
            failure.message.contains("aws_secret_access_key"),
            "{}",
            failure.message
        );
    }
}

#[test]
fn a_retried_launch_launches_nothing_twice() {
    let moto = Moto::start();
    let image = moto.boto(&["image"])["image_id"]
        .as_str()
        .expect("an image")
        .to_string();
    let host = ec2_host(&moto);
    let launch = json!({
        "action": "run_instances",
        "image_id": image,
        "instance_type": "t3.micro",
        "tenant": "acme",
        "run": "run-retried",
    });
    let key = "run-retried/create#0";
    let first = ec2(&host, &moto, key, (KEY_ID, SECRET), launch.clone()).expect("first attempt");
    let second = ec2(&host, &moto, key, (KEY_ID, SECRET), launch.clone()).expect("the retry");
    assert_eq!(first["instance_id"], second["instance_id"]);
    assert_eq!(
        (first["reused"].clone(), second["reused"].clone()),
        (json!(false), json!(true))
    );

    let made = moto.instances("csmp:run", "run-retried");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["client_token"], key);
    assert_eq!(made[0]["tags"]["csmp:idempotency-key"], key);

    // Its health checks, as DescribeInstanceStatus reports them.
    let status = ec2(
        &host,
        &moto,
        "run-retried/health",
        (KEY_ID, SECRET),
        json!({"action": "instance_status", "instance_ids": [first["instance_id"]], "until_ok": true}),
    )
    .expect("health checks");
    assert_eq!(status["all_ok"], true, "{status}");
    assert_eq!(status["statuses"][0]["state"], "running", "{status}");

    // Another step (another key) does launch.
    ec2(
        &host,
        &moto,
        "run-retried/create#1",
        (KEY_ID, SECRET),
        launch,
    )
    .expect("another step");
    assert_eq!(moto.instances("csmp:run", "run-retried").len(), 2);
}

/// Starts moto and the notification receivers; returns the grants and environment for them.
async fn moto_and_ops() -> (Moto, Receivers, PathBuf, Vec<(String, String)>) {
    let moto = Moto::start();
    let ops = Receivers::start().await;
    let grants = moto.grants(Some(ops.authority()));
    let image = moto.boto(&["image"])["image_id"]
        .as_str()
        .expect("an image")
        .to_string();
    let mut env = moto.secrets(KEY_ID, SECRET);
    env.push(("CSMP_SECRET_AWS_IMAGE_ID".into(), image));
    for (name, value) in ops.secrets() {
        env.push((format!("CSMP_SECRET_{}", name.to_ascii_uppercase()), value));
    }
    (moto, ops, grants, env)
}

/// Runs `csmp run` off the async test's thread.
async fn csmp_run(
    moto: &Moto,
    file: PathBuf,
    inputs: &[(&str, &str)],
    grants: &std::path::Path,
    env: &[(String, String)],
) -> crate::moto::Ran {
    tokio::task::block_in_place(|| moto.csmp_run(&file, inputs, grants, env))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_vms_leaves_tagged_running_instances_and_tells_ops() {
    let (moto, ops, grants, env) = moto_and_ops().await;
    let inputs = [
        ("count", "3"),
        ("size", "small"),
        ("project", "web"),
        ("poll", "1s"),
    ];
    let ran = csmp_run(&moto, workflow("provision-vms"), &inputs, &grants, &env).await;
    assert_eq!(ran.code, Some(0), "{}", ran.printed);

    let made = moto.instances("csmp:run", &ran.run_id);
    assert_eq!(made.len(), 3, "{made:?}");
    for instance in &made {
        assert_eq!(instance["state"], "running", "{instance}");
        assert_eq!(instance["type"], "t3.small", "{instance}");
        let tags = &instance["tags"];
        assert_eq!(tags["csmp:tenant"], "local", "{instance}");
        assert_eq!(tags["csmp:project"], "web", "{instance}");
        assert!(
            tags["Name"]
                .as_str()
                .is_some_and(|n| n.starts_with("local-web-")),
            "{instance}"
        );
        assert!(
            tags["csmp:idempotency-key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&format!("{}/create#", ran.run_id))),
            "{instance}"
        );
    }
    let mut reported: Vec<String> = ran.outputs["instance_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut seen: Vec<String> = made
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    reported.sort();
    seen.sort();
    assert_eq!(reported, seen);
    assert_eq!(
        ops.state().messages,
        [(
            "ops".to_string(),
            "3 small machines running for local".to_string()
        )]
    );

    // The quota counts them: 20 allowed, 3 live, 18 more do not fit.
    let over = [("count", "18"), ("size", "small"), ("poll", "1s")];
    let ran = csmp_run(&moto, workflow("provision-vms"), &over, &grants, &env).await;
    assert_eq!(ran.code, Some(1), "{}", ran.printed);
    assert!(
        ran.printed
            .contains("tenant local has 3 instances; 18 more would exceed its quota of 20"),
        "{}",
        ran.printed
    );
    assert!(moto.instances("csmp:run", &ran.run_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_vms_terminates_what_it_made_when_a_later_step_fails() {
    let (moto, ops, grants, env) = moto_and_ops().await;
    // The shipped workflow plus one step that fails once both machines exist: a second quota
    // check that two live machines already exceed.
    let shipped = std::fs::read_to_string(workflow("provision-vms")).expect("provision-vms.yaml");
    let forced = shipped.replacen(
        "\noutputs:\n",
        "\n  - id: forced-failure\n    needs: [create]\n    uses: aws-ec2@^1\n    \
         with: { action: check_quota, tenant: \"{{ run.tenant }}\", requested: 1, limit: 1 }\noutputs:\n",
        1,
    );
    assert_ne!(forced, shipped, "the failing step was added");
    let file = moto.dir.path().join("provision-vms.yaml");
    std::fs::write(&file, forced).expect("workflow written");

    let ran = csmp_run(
        &moto,
        file,
        &[("count", "2"), ("size", "small"), ("poll", "1s")],
        &grants,
        &env,
    )
    .await;
    assert_eq!(ran.code, Some(1), "{}", ran.printed);
    assert!(
        ran.printed.contains("step `forced-failure` failed"),
        "{}",
        ran.printed
    );

    let made = moto.instances("csmp:run", &ran.run_id);
    assert_eq!(
        made.len(),
        2,
        "both machines were launched before the failure: {made:?}"
    );
    for instance in &made {
        assert!(
            matches!(
                instance["state"].as_str(),
                Some("shutting-down" | "terminated")
            ),
            "compensation terminates every machine it made: {instance}"
        );
    }
    let pages = ops.state().messages.clone();
    assert!(
        pages
            .iter()
            .any(|(channel, text)| channel == "ops" && text.contains("failed")),
        "{pages:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_service_changes_the_desired_capacity_of_the_tenants_group_only() {
    let (moto, ops, grants, env) = moto_and_ops().await;
    moto.boto(&[
        "create-group",
        "web",
        "--min",
        "1",
        "--max",
        "10",
        "--desired",
        "2",
        "--tag",
        "csmp:tenant=local",
    ]);
    moto.boto(&[
        "create-group",
        "theirs",
        "--min",
        "1",
        "--max",
        "10",
        "--desired",
        "2",
        "--tag",
        "csmp:tenant=globex",
    ]);

    let ran = csmp_run(
        &moto,
        workflow("scale-service"),
        &[("group", "web"), ("desired", "5"), ("settle", "1s")],
        &grants,
        &env,
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.printed);
    assert_eq!(
        ran.outputs,
        json!({"previous_desired": 2, "desired": 5, "changed": true})
    );
    let web = moto.boto(&["group", "web"]);
    assert_eq!(web["desired"], 5, "{web}");
    assert_eq!(
        ops.state().messages,
        [(
            "ops".to_string(),
            "web now desires 5 instances (was 2)".to_string()
        )]
    );

    let ran = csmp_run(
        &moto,
        workflow("scale-service"),
        &[("group", "theirs"), ("desired", "9"), ("settle", "1s")],
        &grants,
        &env,
    )
    .await;
    assert_eq!(ran.code, Some(1), "{}", ran.printed);
    assert!(
        ran.printed.contains("not tagged csmp:tenant=local"),
        "{}",
        ran.printed
    );
    assert_eq!(moto.boto(&["group", "theirs"])["desired"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediate_high_cpu_adds_capacity_and_reads_cloudwatch() {
    let (moto, ops, grants, env) = moto_and_ops().await;
    moto.boto(&[
        "create-group",
        "shop",
        "--min",
        "1",
        "--max",
        "10",
        "--desired",
        "2",
    ]);
    moto.boto(&[
        "put-now",
        "--namespace",
        "AWS/EC2",
        "--metric",
        "CPUUtilization",
        "--group",
        "shop",
        "--value",
        "42",
    ]);

    let inputs = [
        ("group", "shop"),
        ("service", "shop"),
        ("cpu", "97"),
        ("add", "2"),
        ("settle", "1s"),
    ];
    let ran = csmp_run(
        &moto,
        workflow("remediate-high-cpu"),
        &inputs,
        &grants,
        &env,
    )
    .await;
    assert_eq!(ran.code, Some(0), "{}", ran.printed);
    assert_eq!(ran.outputs["resolved"], true, "{}", ran.printed);
    assert_eq!(ran.outputs["cpu"], 42.0);
    assert_eq!(moto.boto(&["group", "shop"])["desired"], 4);
    assert!(ops.state().messages.is_empty(), "nobody is paged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_scale_raises_capacity_ahead_of_a_daily_peak() {
    let (moto, _ops, grants, env) = moto_and_ops().await;
    moto.boto(&[
        "create-group",
        "web",
        "--min",
        "1",
        "--max",
        "20",
        "--desired",
        "2",
    ]);
    // Three days of hourly load: 100 an hour, 900 in the hour that comes two hours after
    // the current one.
    let written = moto.boto(&[
        "put-daily-peak",
        "--namespace",
        "csmp/test",
        "--metric",
        "Load",
        "--group",
        "web",
        "--base",
        "100",
        "--peak",
        "900",
        "--peak-in",
        "2",
    ]);
    assert_eq!(written["published"], 72);

    let mut inputs = vec![
        ("group", "web"),
        ("namespace", "csmp/test"),
        ("metric", "Load"),
        ("per_instance", "100"),
        ("floor", "2"),
        ("ceiling", "20"),
        ("dry_run", "true"),
    ];
    // A dry run says what it would do and changes nothing.
    let ran = csmp_run(&moto, workflow("predictive-scale"), &inputs, &grants, &env).await;
    assert_eq!(ran.code, Some(0), "{}", ran.printed);
    // The newest complete hour is the one before the current one, so the peak two hours after
    // the current hour is three periods after the newest data point.
    assert_eq!(ran.outputs["peak_periods_ahead"], 3, "{}", ran.printed);
    // 900 an hour with 20 % headroom at 100 per instance: 11 instances.
    assert_eq!(ran.outputs["capacity"], 11, "{}", ran.printed);
    assert_eq!(
        (
            ran.outputs["dry_run"].clone(),
            ran.outputs["changed"].clone()
        ),
        (json!(true), json!(true))
    );
    assert_eq!(moto.boto(&["group", "web"])["desired"], 2);

    // For real: the group is raised before the peak comes.
    inputs.retain(|(k, _)| *k != "dry_run");
    let ran = csmp_run(&moto, workflow("predictive-scale"), &inputs, &grants, &env).await;
    assert_eq!(ran.code, Some(0), "{}", ran.printed);
    assert_eq!(ran.outputs["previous_desired"], 2);
    assert_eq!(ran.outputs["desired"], 11);
    assert_eq!(moto.boto(&["group", "web"])["desired"], 11);

    // Within the ceiling, and never lowering what the group already has.
    inputs.push(("ceiling", "6"));
    inputs.retain(|(k, v)| *k != "ceiling" || *v == "6");
    let ran = csmp_run(&moto, workflow("predictive-scale"), &inputs, &grants, &env).await;
    assert_eq!(ran.code, Some(0), "{}", ran.printed);
    assert_eq!(
        (
            ran.outputs["capacity"].clone(),
            ran.outputs["desired"].clone(),
            ran.outputs["changed"].clone()
        ),
        (json!(6), json!(11), json!(false))
    );
    assert_eq!(moto.boto(&["group", "web"])["desired"], 11);
}
