//! The plugin against recorded EC2 answers (moto's, in `fixtures/`), through the SDK's mock
//! host: what it sends, what it makes of the answers, how failures are classified.

use std::sync::{Arc, Mutex};

use csmp_sdk::aws::query::decode_form;
use csmp_sdk::serde_json::{self, Value, json};
use csmp_sdk::testing::MockHost;
use csmp_sdk::{HttpError, Request, Response};

use super::*;

const DESCRIBE: &str = include_str!("../fixtures/ec2-describe-instances.xml");
const EMPTY: &str = include_str!("../fixtures/ec2-describe-instances-empty.xml");
const RUN: &str = include_str!("../fixtures/ec2-run-instances.xml");
const TERMINATE: &str = include_str!("../fixtures/ec2-terminate-instances.xml");
const STATUS: &str = include_str!("../fixtures/ec2-describe-instance-status.xml");
const NOT_FOUND: &str = include_str!("../fixtures/ec2-error-not-found.xml");
/// The shape AWS documents for a throttled EC2 call.
const THROTTLED: &str = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>5e5f3c1e-0000-4000-8000-000000000000</RequestID></Response>";

type Answer = (u16, String);

/// Decoded form bodies, one per request.
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A mock EC2: answers each action from `answer`, records the decoded forms.
struct Ec2 {
    host: MockHost,
    forms: Forms,
}

impl Ec2 {
    fn new(answer: impl Fn(&str, &[(String, String)]) -> Answer + Send + Sync + 'static) -> Self {
        let forms: Forms = Arc::default();
        let seen = Arc::clone(&forms);
        let host = MockHost::new()
            .with_idempotency_key("run-1/create#0")
            .with_secret("aws_access_key_id", "AKIDEXAMPLE")
            .with_secret(
                "aws_secret_access_key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            )
            .with_secret("aws_endpoint", "http://127.0.0.1:5000")
            .with_http(move |req: &Request| {
                let form = decode_form(req.body.as_deref().unwrap_or_default());
                let action = value(&form, "Action").unwrap_or_default().to_string();
                let (status, body) = answer(&action, &form);
                seen.lock()
                    .map_err(|e| HttpError::Transport(e.to_string()))?
                    .push(form);
                Ok(Response {
                    status,
                    headers: vec![("content-type".into(), "text/xml".into())],
                    body: body.into_bytes(),
                })
            });
        Self { host, forms }
    }

    fn actions(&self) -> Vec<String> {
        self.forms()
            .iter()
            .map(|f| value(f, "Action").unwrap_or_default().to_string())
            .collect()
    }

    fn forms(&self) -> Vec<Vec<(String, String)>> {
        self.forms.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn run(&self, with: Value) -> Result<Output, PluginError> {
        let input: Input = serde_json::from_value(with)?;
        run(&self.host.context(), input)
    }
}

fn value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn ok(body: &str) -> Answer {
    (200, body.to_string())
}

fn launch_input() -> Value {
    json!({
        "action": "run_instances",
        "image_id": "ami-03cf127a",
        "instance_type": "t3.micro",
        "tenant": "acme",
        "request": "req-9",
        "run": "run-1",
        "tags": {"Name": "web-0"},
    })
}

#[test]
fn run_instances_tags_the_instance_and_sends_the_idempotency_key_as_client_token()
-> Result<(), PluginError> {
    let ec2 = Ec2::new(|action, _| match action {
        "DescribeInstances" => ok(EMPTY),
        "RunInstances" => ok(RUN),
        other => (400, format!("unexpected {other}")),
    });
    let Output::Launched(out) = ec2.run(launch_input())? else {
        return Err(PluginError::permanent("not a launch output"));
    };
    assert!(!out.reused);
    assert!(out.instance_id.starts_with("i-"));
    assert_eq!(out.instance_ids, vec![out.instance_id.clone()]);
    assert_eq!(ec2.actions(), ["DescribeInstances", "RunInstances"]);

    let forms = ec2.forms();
    let lookup = &forms[0];
    assert_eq!(
        value(lookup, "Filter.1.Name"),
        Some("tag:csmp:idempotency-key")
    );
    assert_eq!(value(lookup, "Filter.1.Value.1"), Some("run-1/create#0"));
    assert_eq!(value(lookup, "Filter.2.Name"), Some("instance-state-name"));

    let launch = &forms[1];
    assert_eq!(value(launch, "ClientToken"), Some("run-1/create#0"));
    assert_eq!(value(launch, "ImageId"), Some("ami-03cf127a"));
    assert_eq!(value(launch, "MinCount"), Some("1"));
    assert_eq!(value(launch, "MaxCount"), Some("1"));
    assert_eq!(
        value(launch, "TagSpecification.1.ResourceType"),
        Some("instance")
    );
    let tags: BTreeMap<&str, &str> = (1..=5)
        .filter_map(|i| {
            Some((
                value(launch, &format!("TagSpecification.1.Tag.{i}.Key"))?,
                value(launch, &format!("TagSpecification.1.Tag.{i}.Value"))?,
            ))
        })
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("Name", "web-0"),
            ("csmp:idempotency-key", "run-1/create#0"),
            ("csmp:request", "req-9"),
            ("csmp:run", "run-1"),
            ("csmp:tenant", "acme"),
        ])
    );
    assert_eq!(
        value(launch, "TagSpecification.2.ResourceType"),
        Some("volume")
    );
    Ok(())
}

#[test]
fn a_retried_launch_returns_what_the_first_attempt_made() -> Result<(), PluginError> {
    let ec2 = Ec2::new(|action, _| match action {
        "DescribeInstances" => ok(DESCRIBE),
        other => (400, format!("unexpected {other}")),
    });
    let Output::Launched(out) = ec2.run(launch_input())? else {
        return Err(PluginError::permanent("not a launch output"));
    };
    assert!(out.reused);
    assert_eq!(ec2.actions(), ["DescribeInstances"], "nothing launched");
    Ok(())
}

#[test]
fn long_idempotency_keys_become_a_64_character_client_token() {
    assert_eq!(client_token("run-1/create#0"), "run-1/create#0");
    let long = format!("run-{}/create#12", "a".repeat(80));
    let token = client_token(&long);
    assert_eq!(token.len(), 64);
    assert_eq!(token, client_token(&long), "stable across attempts");
    assert_ne!(client_token("run-1/ünïcode"), "run-1/ünïcode");
}

#[test]
fn describe_until_running_is_retryable_while_pending_and_permanent_once_terminated() {
    let pending = RUN.to_string();
    let ec2 = Ec2::new(move |_, _| {
        ok(&pending
            .replace("<instancesSet>", "<reservationSet><item><instancesSet>")
            .replace("</instancesSet>", "</instancesSet></item></reservationSet>"))
    });
    let err = ec2
        .run(json!({"action": "describe_instances", "instance_ids": ["i-x"], "until_state": "running"}))
        .err();
    assert!(
        matches!(&err, Some(PluginError::Retryable(m)) if m.contains("not running yet") || m.contains("does not list")),
        "{err:?}"
    );

    let terminated = DESCRIBE.replace(
        "<code>16</code><name>running</name>",
        "<code>48</code><name>terminated</name>",
    );
    let ec2 = Ec2::new(move |_, _| ok(&terminated));
    let err = ec2
        .run(json!({"action": "describe_instances", "until_state": "running"}))
        .err();
    assert!(
        matches!(&err, Some(PluginError::Permanent(m)) if m.contains("is terminated and will never be running")),
        "{err:?}"
    );

    let ec2 = Ec2::new(|_, _| ok(DESCRIBE));
    let out = ec2.run(json!({"action": "describe_instances", "tags": {"csmp:tenant": "acme"}, "until_state": "running"}));
    assert!(matches!(out, Ok(Output::Described(d)) if d.count == 1));
    let forms = ec2.forms();
    assert_eq!(value(&forms[0], "Filter.1.Name"), Some("tag:csmp:tenant"));
}

#[test]
fn terminate_skips_ids_that_are_gone() -> Result<(), PluginError> {
    let ec2 = Ec2::new(|action, form| match (action, value(form, "InstanceId.1")) {
        ("DescribeInstances", Some("i-gone")) => (400, NOT_FOUND.to_string()),
        ("DescribeInstances", Some(_)) if value(form, "InstanceId.2").is_some() => {
            (400, NOT_FOUND.to_string())
        }
        ("DescribeInstances", _) => ok(DESCRIBE),
        ("TerminateInstances", _) => ok(TERMINATE),
        (other, _) => (400, format!("unexpected {other}")),
    });
    let live = instances::described(DESCRIBE)?.0[0].id.clone();
    let Output::Terminated(out) = ec2.run(json!({
        "action": "terminate_instances",
        "instance_ids": [live.clone(), "i-gone"],
    }))?
    else {
        return Err(PluginError::permanent("not a terminate output"));
    };
    assert_eq!(out.missing, ["i-gone"]);
    assert_eq!(out.terminated[0].current_state, "shutting-down");
    let forms = ec2.forms();
    let terminate = forms.last().cloned().unwrap_or_default();
    assert_eq!(value(&terminate, "InstanceId.1"), Some(live.as_str()));
    assert_eq!(value(&terminate, "InstanceId.2"), None);
    Ok(())
}

#[test]
fn instance_status_reports_health_and_can_wait_for_ok() -> Result<(), PluginError> {
    let ec2 = Ec2::new(|_, _| ok(STATUS));
    let Output::Statuses(out) =
        ec2.run(json!({"action": "instance_status", "instance_ids": ["i-8207a43e2a5861a8a"]}))?
    else {
        return Err(PluginError::permanent("not a status output"));
    };
    assert!(out.all_ok);
    assert_eq!(value(&ec2.forms()[0], "IncludeAllInstances"), Some("true"));

    let initializing = STATUS.replace(
        "<status>ok</status></instanceStatus>",
        "<status>initializing</status></instanceStatus>",
    );
    let ec2 = Ec2::new(move |_, _| ok(&initializing));
    let err = ec2
        .run(json!({"action": "instance_status", "instance_ids": ["i-8207a43e2a5861a8a"], "until_ok": true}))
        .err();
    assert!(
        matches!(&err, Some(PluginError::Retryable(m)) if m.contains("instance initializing")),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn quota_counts_the_tenants_live_instances() -> Result<(), PluginError> {
    let ec2 = Ec2::new(|_, _| ok(DESCRIBE));
    let Output::Quota(q) =
        ec2.run(json!({"action": "check_quota", "tenant": "acme", "requested": 2, "limit": 3}))?
    else {
        return Err(PluginError::permanent("not a quota output"));
    };
    assert_eq!((q.existing, q.remaining), (1, 0));
    let err = ec2
        .run(json!({"action": "check_quota", "tenant": "acme", "requested": 3, "limit": 3}))
        .err();
    assert!(
        matches!(&err, Some(PluginError::Permanent(m)) if m.contains("tenant acme has 1 instances; 3 more would exceed its quota of 3")),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn throttling_is_retryable_and_a_bad_image_is_not() {
    let ec2 = Ec2::new(|_, _| (503, THROTTLED.to_string()));
    let err = ec2.run(launch_input()).err();
    assert!(
        matches!(&err, Some(PluginError::Retryable(m)) if m.contains("RequestLimitExceeded")),
        "{err:?}"
    );

    let ec2 = Ec2::new(|action, _| {
        match action {
        "DescribeInstances" => ok(EMPTY),
        _ => (400, "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id '[ami-nope]' does not exist</Message></Error></Errors></Response>".into()),
    }
    });
    let err = ec2.run(launch_input()).err();
    assert!(
        matches!(&err, Some(PluginError::Permanent(m)) if m.contains("InvalidAMIID.NotFound")),
        "{err:?}"
    );
}

#[test]
fn inputs_are_strict_and_schemas_describe_each_action() {
    for bad in [
        json!({"action": "run_instances", "image_id": "a", "instance_type": "t", "tenant": "x", "imageid": "typo"}),
        json!({"action": "reboot_instances", "instance_ids": ["i-1"]}),
        json!({"action": "terminate_instances"}),
    ] {
        assert!(
            serde_json::from_value::<Input>(bad.clone()).is_err(),
            "{bad}"
        );
    }
    let d = csmp_descriptor();
    assert_eq!(d.name, "aws-ec2");
    let schema = d.input_schema.to_string();
    for action in [
        "run_instances",
        "describe_instances",
        "terminate_instances",
        "instance_status",
        "check_quota",
    ] {
        assert!(schema.contains(action), "{action} missing from {schema}");
    }
    assert!(schema.contains("\"additionalProperties\":false"));
    assert_eq!(d.capabilities.secrets, ["aws_*"]);
}
