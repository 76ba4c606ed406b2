//! The plugin against answers recorded from moto (`fixtures/`), through the SDK's mock host.

use std::sync::{Arc, Mutex};

use csmp_sdk::aws::query::decode_form;
use csmp_sdk::serde_json::{self, Value, json};
use csmp_sdk::testing::MockHost;
use csmp_sdk::{HttpError, Request, Response};

use super::*;

/// Group `web`: min 1, max 10, desired 2, two healthy instances in service.
const DESCRIBE: &str = include_str!("../fixtures/asg-describe-groups.xml");
const SET: &str = include_str!("../fixtures/asg-set-desired-capacity.xml");
const UPDATE: &str = include_str!("../fixtures/asg-update-group.xml");

/// Decoded form bodies, one per request.
type Forms = Arc<Mutex<Vec<Form>>>;

/// One decoded form body.
type Form = Vec<(String, String)>;

fn value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A mock Auto Scaling answering from the fixtures; `describe` overrides the group answer.
fn autoscaling(describe: String) -> (MockHost, Forms) {
    let forms: Forms = Arc::default();
    let seen = Arc::clone(&forms);
    let host = MockHost::new()
        .with_secret("aws_access_key_id", "AKIDEXAMPLE")
        .with_secret("aws_secret_access_key", "secret")
        .with_http(move |req: &Request| {
            let form = decode_form(req.body.as_deref().unwrap_or_default());
            let body = match value(&form, "Action") {
                Some("DescribeAutoScalingGroups") => describe.clone(),
                Some("SetDesiredCapacity") => SET.to_string(),
                Some("UpdateAutoScalingGroup") => UPDATE.to_string(),
                other => format!("unexpected {other:?}"),
            };
            seen.lock()
                .map_err(|e| HttpError::Transport(e.to_string()))?
                .push(form);
            Ok(Response {
                status: 200,
                headers: vec![],
                body: body.into_bytes(),
            })
        });
    (host, forms)
}

fn run_with(describe: &str, with: Value) -> (Result<Output, PluginError>, Vec<Form>) {
    let (host, forms) = autoscaling(describe.to_string());
    let result = serde_json::from_value::<Input>(with)
        .map_err(PluginError::from)
        .and_then(|input| run(&host.context(), input));
    let forms = forms.lock().map(|f| f.clone()).unwrap_or_default();
    (result, forms)
}

fn actions(forms: &[Vec<(String, String)>]) -> Vec<&str> {
    forms.iter().filter_map(|f| value(f, "Action")).collect()
}

#[test]
fn reads_a_recorded_group() -> Result<(), PluginError> {
    let (groups, next) = parse_groups(DESCRIBE)?;
    assert_eq!(next, None);
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        (g.name.as_str(), g.min_size, g.max_size, g.desired_capacity),
        ("web", 1, 10, 2)
    );
    assert_eq!(g.in_service, 2);
    assert!(g.instances.iter().all(|m| m.id.starts_with("i-")));
    Ok(())
}

#[test]
fn set_desired_capacity_reports_what_it_replaced() {
    let (out, forms) = run_with(
        DESCRIBE,
        json!({"action": "set_desired_capacity", "group": "web", "desired": 4}),
    );
    let Ok(Output::Capacity(c)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (c.previous_desired, c.desired, c.changed, c.dry_run),
        (2, 4, true, false)
    );
    assert_eq!(
        actions(&forms),
        ["DescribeAutoScalingGroups", "SetDesiredCapacity"]
    );
    let set = &forms[1];
    assert_eq!(value(set, "AutoScalingGroupName"), Some("web"));
    assert_eq!(value(set, "DesiredCapacity"), Some("4"));
    assert_eq!(value(set, "HonorCooldown"), Some("false"));
    assert_eq!(
        value(&forms[0], "AutoScalingGroupNames.member.1"),
        Some("web")
    );
}

#[test]
fn relative_changes_stay_within_the_group_and_never_lower_keeps_more() {
    for (with, desired, changed) in [
        (json!({"change_by": 3}), 5, true),
        (json!({"change_by": 20}), 10, true),
        (json!({"change_by": -5}), 1, true),
        (json!({"desired": 1, "never_lower": true}), 2, false),
        (json!({"desired": 7, "never_lower": true}), 7, true),
        // Below the group's minimum, but the current capacity is kept anyway.
        (json!({"desired": 0, "never_lower": true}), 2, false),
    ] {
        let mut input = json!({"action": "set_desired_capacity", "group": "web"});
        if let (Some(i), Some(w)) = (input.as_object_mut(), with.as_object()) {
            i.extend(w.clone());
        }
        let (out, forms) = run_with(DESCRIBE, input);
        let Ok(Output::Capacity(c)) = out else {
            panic!("{with}: {out:?}")
        };
        assert_eq!((c.desired, c.changed), (desired, changed), "{with}");
        assert_eq!(
            actions(&forms).contains(&"SetDesiredCapacity"),
            changed,
            "{with}"
        );
    }
}

#[test]
fn a_dry_run_changes_nothing() {
    let (out, forms) = run_with(
        DESCRIBE,
        json!({"action": "set_desired_capacity", "group": "web", "desired": 6, "dry_run": true}),
    );
    let Ok(Output::Capacity(c)) = out else {
        panic!("{out:?}")
    };
    assert_eq!((c.desired, c.changed, c.dry_run), (6, true, true));
    assert_eq!(actions(&forms), ["DescribeAutoScalingGroups"]);
}

#[test]
fn bad_requests_say_how_to_fix_them() {
    for (with, expected) in [
        (
            json!({"group": "web", "desired": 50}),
            "outside group web's range 1–10",
        ),
        (json!({"group": "web"}), "exactly one of `desired`"),
        (
            json!({"group": "web", "desired": 2, "change_by": 1}),
            "exactly one of `desired`",
        ),
        (
            json!({"group": "nope", "desired": 2}),
            "no auto scaling group `nope`",
        ),
    ] {
        let mut input = json!({"action": "set_desired_capacity"});
        if let (Some(i), Some(w)) = (input.as_object_mut(), with.as_object()) {
            i.extend(w.clone());
        }
        let (out, _) = run_with(DESCRIBE, input);
        assert!(
            matches!(&out, Err(PluginError::Permanent(m)) if m.contains(expected)),
            "{with}: {out:?}"
        );
    }
}

#[test]
fn require_tags_keeps_tenants_to_their_own_groups() {
    let tagged = DESCRIBE.replace(
        "<Tags/>",
        "<Tags><member><ResourceId>web</ResourceId><ResourceType>auto-scaling-group</ResourceType><Key>csmp:tenant</Key><Value>acme</Value><PropagateAtLaunch>true</PropagateAtLaunch></member></Tags>",
    );
    let with = |tenant: &str| json!({"action": "set_desired_capacity", "group": "web", "desired": 3, "require_tags": {"csmp:tenant": tenant}});
    let (out, forms) = run_with(&tagged, with("acme"));
    assert!(
        matches!(&out, Ok(Output::Capacity(c)) if c.desired == 3),
        "{out:?}"
    );
    assert_eq!(actions(&forms).len(), 2);
    let (out, forms) = run_with(&tagged, with("globex"));
    assert!(
        matches!(&out, Err(PluginError::Permanent(m)) if m.contains("not tagged csmp:tenant=globex")),
        "{out:?}"
    );
    assert_eq!(
        actions(&forms),
        ["DescribeAutoScalingGroups"],
        "nothing changed"
    );
}

#[test]
fn until_in_service_polls_while_instances_are_pending() {
    let pending = DESCRIBE.replacen(
        "<LifecycleState>InService</LifecycleState>",
        "<LifecycleState>Pending</LifecycleState>",
        1,
    );
    let (out, _) = run_with(
        &pending,
        json!({"action": "describe_groups", "names": ["web"], "until_in_service": true}),
    );
    assert!(
        matches!(&out, Err(PluginError::Retryable(m)) if m.contains("web has 1 of 2 in service")),
        "{out:?}"
    );
    let (out, _) = run_with(
        DESCRIBE,
        json!({"action": "describe_groups", "names": ["web"], "until_in_service": true}),
    );
    assert!(matches!(out, Ok(Output::Groups(g)) if g.groups[0].in_service == 2));
}

#[test]
fn update_group_changes_bounds_and_keeps_desired_inside() {
    let (out, forms) = run_with(
        DESCRIBE,
        json!({"action": "update_group", "group": "web", "min_size": 3, "max_size": 12}),
    );
    let Ok(Output::Updated(u)) = out else {
        panic!("{out:?}")
    };
    assert_eq!(
        (
            u.previous_min_size,
            u.min_size,
            u.max_size,
            u.previous_desired,
            u.desired
        ),
        (1, 3, 12, 2, 3)
    );
    let update = &forms[1];
    assert_eq!(value(update, "MinSize"), Some("3"));
    assert_eq!(value(update, "MaxSize"), Some("12"));
    assert_eq!(value(update, "DesiredCapacity"), Some("3"));

    let (out, _) = run_with(
        DESCRIBE,
        json!({"action": "update_group", "group": "web", "min_size": 11}),
    );
    assert!(
        matches!(&out, Err(PluginError::Permanent(m)) if m.contains("min_size 11 is above max_size 10")),
        "{out:?}"
    );
}

#[test]
fn throttling_is_retryable() {
    let host = MockHost::new()
        .with_secret("aws_access_key_id", "AKIDEXAMPLE")
        .with_secret("aws_secret_access_key", "secret")
        .with_http(|_| {
            Ok(Response {
                status: 400,
                headers: vec![],
                body: b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>".to_vec(),
            })
        });
    let input = serde_json::from_value::<Input>(json!({"action": "describe_groups"}));
    let out = input
        .map_err(PluginError::from)
        .and_then(|i| run(&host.context(), i));
    assert!(
        matches!(&out, Err(PluginError::Retryable(m)) if m.contains("Throttling: Rate exceeded")),
        "{out:?}"
    );
}

#[test]
fn describes_itself() {
    let d = csmp_descriptor();
    assert_eq!(d.name, "aws-autoscaling");
    let schema = d.input_schema.to_string();
    for action in ["describe_groups", "set_desired_capacity", "update_group"] {
        assert!(schema.contains(action), "{action}");
    }
}
