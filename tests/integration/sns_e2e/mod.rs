//! CloudWatch alarms through Amazon SNS into a real `csmp serve` (`POST
//! /v1/events/cloudwatch`), end to end.
//!
//! Signed (no emulator): the test plays SNS. It makes an RSA key and a self-signed certificate,
//! serves the certificate and a `SubscribeURL` from a loopback HTTP server of its own (counting
//! every request), and signs each message as SNS does (`SignatureVersion` 2: SHA256withRSA,
//! PKCS#1 v1.5, over the string to sign written out here independently of the engine's).
//!
//! moto: a topic of a real SNS emulator delivers to csmp over HTTP, the subscription endpoint
//! carrying the integration token as `http://csmp:TOKEN@…`. moto signs nothing csmp can verify
//! (its `SigningCertURL` names AWS), so its topic is given with `--sns-unverified-topic`. A
//! recorder subscribed beside csmp keeps what moto sent, as evidence of its headers.
//!
//! Waits poll (every 250 ms, at most a minute each); nothing asserts on how long anything took.

mod serve;
mod signer;
mod site;

use std::sync::Barrier;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use self::serve::{
    Answer, Auth, Serve, alarm_alerts, assert_firing_alert, assert_refused, assert_taken, items,
    poll,
};
use self::signer::{Signer, alarm_message, confirmation, notification};
use self::site::{Reply, Seen, Site};
use crate::moto::Moto;

/// The most any one wait may take.
const WAIT: Duration = Duration::from_secs(60);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// The verified topic of the signed test.
const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:alarms";
/// A topic nobody allowed.
const OTHER_TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:someone-elses";
/// The alarm every test raises and clears.
const ALARM: &str = "csmp-e2e-high-cpu";
/// Its ARN, which csmp takes as the alert's fingerprint.
const ALARM_ARN: &str = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:csmp-e2e-high-cpu";
/// The Auto Scaling group the alarm watches (a dimension, so a label).
const GROUP: &str = "web-asg";
/// Where the test's certificate is served (the name SNS gives its own).
const PEM_PATH: &str = "/SimpleNotificationService-test.pem";
/// The rule that starts `hello` for the alarm.
const RULE: &str = "sns-high-cpu";
const RULE_YAML: &str = r#"name: RULE
description: The SNS end-to-end test's CloudWatch alarm starts hello for its group
match:
  source: [cloudwatch]
  labels: { alertname: "ALARM" }
group_wait: 0s
then:
  - workflow: hello
    inputs: { who: "{{ alert.labels.AutoScalingGroupName }}", times: 1 }
"#;

/// The whole life of a verified topic: the subscription confirmed (its `SubscribeURL`
/// visited), a signed ALARM taken once and acted on, every kind of forgery refused with
/// nothing stored and no fetch from anywhere not allowed, and the OK resolving the alert.
#[test]
fn sns_signed_alarms_from_a_verified_topic_are_confirmed_taken_once_refused_when_forged_and_resolved()
 {
    let sns = Signer::new();
    let pem = sns.pem.clone();
    let certs = Site::start(
        "127.0.0.1",
        Box::new(move |seen| {
            if seen.method == "GET" && seen.target == PEM_PATH {
                Reply::new(200, "application/x-pem-file", pem.clone())
            } else if seen.method == "GET"
                && seen.target.starts_with("/?Action=ConfirmSubscription")
            {
                Reply::new(
                    200,
                    "text/xml",
                    "<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>\
                     arn:aws:sns:eu-west-1:123456789012:alarms:1</SubscriptionArn>\
                     </ConfirmSubscriptionResult></ConfirmSubscriptionResponse>",
                )
            } else {
                Reply::new(404, "text/plain", "not here")
            }
        }),
    );
    // Another host serving the same certificate for any path: csmp must never ask it.
    let pem = sns.pem.clone();
    let elsewhere = Site::start(
        "127.0.0.2",
        Box::new(move |_| Reply::new(200, "application/x-pem-file", pem.clone())),
    );
    let cert_url = format!("{}{PEM_PATH}", certs.origin());
    let serve = Serve::start(
        "signed",
        &["--sns-topic", TOPIC, "--sns-cert-source", &certs.origin()],
    );
    serve.put_rule();
    let basic = Auth::Basic("csmp", &serve.integration);
    let bearer = Auth::Bearer(&serve.integration);

    // The subscription confirmation (HTTP Basic, as SNS sends it for `csmp:TOKEN@host`): its
    // SubscribeURL is visited, once.
    let subscribe_target = format!(
        "/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425c464de"
    );
    let subscribe_url = format!("{}{subscribe_target}", certs.origin());
    let confirmed = serve.sns(
        basic,
        &sns.sign(confirmation(
            TOPIC,
            "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            &subscribe_url,
            "2336412f37fb687f5d51e6e2425c464de",
            &cert_url,
        )),
    );
    assert_eq!(
        (confirmed.status, confirmed.json.clone()),
        (200, json!({ "confirmed": TOPIC })),
        "the subscription is confirmed: {}; csmp's log: {}",
        confirmed.text,
        serve.log()
    );
    assert_eq!(
        certs.hits_of(&subscribe_target),
        1,
        "the SubscribeURL was visited once: {:?}",
        certs.seen()
    );
    assert_eq!(certs.hits_of(PEM_PATH), 1, "the certificate was fetched");
    assert!(
        serve.events().is_empty(),
        "a confirmation is no notification"
    );

    // A signed ALARM: taken, stored, matched by the rule, which starts hello for the group.
    let alarm = sns.sign(notification(
        TOPIC,
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    let taken = serve.sns(bearer, &alarm);
    assert_taken(&taken, "firing", &serve);
    assert_eq!(
        taken.json["decisions"][0]["outcome"], "matched",
        "{}",
        taken.text
    );
    assert_eq!(
        taken.json["decisions"][0]["rules"][0]["rule"], RULE,
        "{}",
        taken.text
    );
    let stored = alarm_alerts(&serve);
    assert_eq!(stored.len(), 1, "one alert stored: {stored:?}");
    assert_firing_alert(&stored[0]);
    assert_eq!(stored[0]["event_id"], taken.json["id"], "{}", stored[0]);
    let events = serve.events();
    assert_eq!(events.len(), 1, "one notification stored: {events:?}");
    assert_eq!(events[0]["source"], "cloudwatch", "{events:?}");
    let run = serve.wait_for_hello();
    assert_eq!(
        run["outputs"]["greeting"],
        format!("hello, {GROUP}"),
        "the run was given the alarm's dimension: {run}"
    );
    assert_eq!(run["labels"]["rule"], RULE, "{run}");

    // SNS delivering the same message again (same MessageId): a duplicate, nothing stored.
    let again = serve.sns(basic, &alarm);
    assert_eq!(
        (again.status, again.json.clone()),
        (
            200,
            json!({ "duplicate": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324" })
        ),
        "a redelivery: {}",
        again.text
    );

    // Forgeries and strangers: each refused, nothing stored, nothing fetched.
    let fetched = certs.hits();
    let mut altered = sns.sign(notification(
        TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000001",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    altered["Message"] = alarm_message("ALARM").replace(GROUP, "db-asg").into();
    assert_refused(
        &serve.sns(bearer, &altered),
        "signature does not verify",
        "a Message altered after signing",
    );

    let stranger = Signer::new();
    let forged = stranger.sign(notification(
        TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000002",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    assert_refused(
        &serve.sns(bearer, &forged),
        "signature does not verify",
        "a message signed by another key",
    );
    let mut garbage = alarm.clone();
    garbage["MessageId"] = "5a0b1c2d-0000-4000-8000-000000000003".into();
    garbage["Signature"] = "Zm9yZ2Vk".into();
    assert_refused(
        &serve.sns(bearer, &garbage),
        "signature does not verify",
        "a made-up signature",
    );

    for (n, url) in [
        format!("{}{PEM_PATH}", elsewhere.origin()),
        format!("https://evil.example{PEM_PATH}"),
        format!("{}/SimpleNotificationService-test.txt", certs.origin()),
        format!("{}{PEM_PATH}?x=1", certs.origin()),
    ]
    .iter()
    .enumerate()
    {
        let elsewhere_signed = sns.sign(notification(
            TOPIC,
            &format!("5a0b1c2d-0000-4000-8000-00000000010{n}"),
            &alarm_message("ALARM"),
            url,
        ));
        assert_refused(
            &serve.sns(bearer, &elsewhere_signed),
            "--sns-cert-source",
            &format!("a SigningCertURL of {url}"),
        );
    }

    let elsewhere_confirm = sns.sign(confirmation(
        TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000200",
        &format!(
            "{}/?Action=ConfirmSubscription&Token=steal",
            elsewhere.origin()
        ),
        "steal",
        &cert_url,
    ));
    assert_refused(
        &serve.sns(basic, &elsewhere_confirm),
        "SubscribeURL",
        "a confirmation whose SubscribeURL is on another host",
    );

    let not_ours = sns.sign(notification(
        OTHER_TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000300",
        &alarm_message("ALARM"),
        &cert_url,
    ));
    assert_refused(
        &serve.sns(bearer, &not_ours),
        "--sns-topic",
        "a topic not allowed",
    );
    let not_ours_confirm = sns.sign(confirmation(
        OTHER_TOPIC,
        "5a0b1c2d-0000-4000-8000-000000000301",
        &subscribe_url,
        "2336412f37fb687f5d51e6e2425c464de",
        &cert_url,
    ));
    assert_refused(
        &serve.sns(basic, &not_ours_confirm),
        "--sns-topic",
        "a confirmation of a topic not allowed",
    );

    assert_eq!(
        elsewhere.hits(),
        0,
        "nothing was fetched from another host: {:?}",
        elsewhere.seen()
    );
    assert_eq!(
        certs.hits(),
        fetched,
        "no refused message made csmp fetch anything: {:?}",
        certs.seen()
    );
    assert_eq!(
        alarm_alerts(&serve).len(),
        1,
        "no refused message stored an alert"
    );
    assert_eq!(serve.events().len(), 1, "no refused message was stored");

    // A wrong token, as Basic: 401, nothing stored.
    let wrong = serve.sns(Auth::Basic("csmp", "csmp_nobody_wrong"), &alarm);
    assert_eq!(wrong.status, 401, "{}", wrong.text);

    // The alarm clears: OK resolves the alert.
    let ok = sns.sign(notification(
        TOPIC,
        "3c4d5e6f-0000-4000-8000-000000000400",
        &alarm_message("OK"),
        &cert_url,
    ));
    let resolved = serve.sns(basic, &ok);
    assert_taken(&resolved, "resolved", &serve);
    let latest = alarm_alerts(&serve);
    assert_eq!(
        latest.len(),
        2,
        "the firing and the resolved alert: {latest:?}"
    );
    assert_eq!(latest[0]["status"], "resolved", "the newest: {}", latest[0]);
    assert!(
        latest[0]["ends_at"].is_string(),
        "it says when: {}",
        latest[0]
    );
    assert_eq!(latest[0]["labels"]["alertname"], ALARM, "{}", latest[0]);
    let resolved_alerts = items(&serve.ok("/v1/alerts?source=cloudwatch&status=resolved"));
    assert!(
        resolved_alerts
            .iter()
            .any(|a| a["fingerprint"] == ALARM_ARN),
        "listed as resolved: {resolved_alerts:?}"
    );
    assert_eq!(serve.events().len(), 2);
    assert_eq!(serve.rule_runs().len(), 1, "still the one run");
    // One certificate URL, fetched once for every message that verified.
    assert_eq!(certs.hits_of(PEM_PATH), 1, "{:?}", certs.seen());
}

/// SNS POSTs every message with `Content-Type: text/plain; charset=UTF-8` unless the
/// subscription's delivery policy says otherwise
/// (<https://docs.aws.amazon.com/sns/latest/dg/http-header.html>); csmp must take it.
#[test]
fn sns_notification_with_the_content_type_sns_sends_is_taken() {
    let topic = "arn:aws:sns:us-east-1:123456789012:emulated";
    let serve = Serve::start("text-plain", &["--sns-unverified-topic", topic]);
    let envelope = notification(
        topic,
        "0d1e2f30-0000-4000-8000-000000000001",
        &alarm_message("ALARM"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    let answer = serve.sns_as(
        Auth::Basic("csmp", &serve.integration),
        "text/plain; charset=UTF-8",
        &envelope,
    );
    assert_taken(&answer, "firing", &serve);
    assert_eq!(alarm_alerts(&serve).len(), 1);
}

/// SNS sends an endpoint's user and password only when challenged: "The client service must
/// be able to support the HTTP/1.1 401 Unauthorized header response"
/// (<https://docs.aws.amazon.com/sns/latest/dg/sns-http-https-endpoint-as-subscriber.html>),
/// so a call without credentials must be answered 401 with a `Basic` challenge.
#[test]
fn sns_delivery_without_credentials_is_challenged_for_basic_auth() {
    let topic = "arn:aws:sns:us-east-1:123456789012:emulated";
    let serve = Serve::start("challenge", &["--sns-unverified-topic", topic]);
    let envelope = notification(
        topic,
        "0d1e2f30-0000-4000-8000-000000000002",
        &alarm_message("ALARM"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    let first = serve.sns(Auth::None, &envelope);
    assert_eq!(first.status, 401, "{}", first.text);
    let challenge = first.www_authenticate.clone().unwrap_or_default();
    assert!(
        challenge
            .split(',')
            .any(|part| part.trim_start().to_ascii_lowercase().starts_with("basic ")),
        "the 401 offers Basic (with a realm), so SNS sends its credentials; it says \
         `WWW-Authenticate: {challenge}`"
    );
    let second = serve.sns(Auth::Basic("csmp", &serve.integration), &envelope);
    assert_taken(&second, "firing", &serve);
}

/// SNS delivers at least once, and a redelivery may arrive while the first delivery is being
/// handled: however many arrive together, one is taken and the others are duplicates.
#[test]
fn sns_redeliveries_arriving_together_are_taken_once() {
    const COPIES: usize = 8;
    let topic = "arn:aws:sns:us-east-1:123456789012:emulated";
    let serve = Serve::start("together", &["--sns-unverified-topic", topic]);
    let envelope = notification(
        topic,
        "0d1e2f30-0000-4000-8000-000000000003",
        &alarm_message("ALARM"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    );
    let barrier = Barrier::new(COPIES);
    let answers: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..COPIES)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let answer = serve.sns(Auth::Bearer(&serve.integration), &envelope);
                    (answer.status, answer.text)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sender thread"))
            .collect()
    });
    let taken = answers.iter().filter(|(status, _)| *status == 202).count();
    let duplicates = answers
        .iter()
        .filter(|(status, text)| *status == 200 && text.contains("\"duplicate\""))
        .count();
    assert_eq!(
        (taken, duplicates),
        (1, COPIES - 1),
        "{COPIES} copies of one MessageId sent at once: one taken, the rest duplicates; \
         csmp answered {answers:?}"
    );
    assert_eq!(alarm_alerts(&serve).len(), 1, "one alert stored");
    assert_eq!(serve.events().len(), 1, "one notification stored");
}

/// A moto topic subscribed straight to csmp (`http://csmp:TOKEN@…/v1/events/cloudwatch`):
/// what moto POSTs is taken, the rule acts, and OK resolves the alert. A recorder subscribed
/// beside csmp keeps what moto sent.
#[test]
fn sns_moto_topic_delivers_alarms_straight_to_csmp() {
    let moto = Moto::start();
    let topic = moto.boto(&["sns-create-topic", "csmp-alarms"])["arn"]
        .as_str()
        .expect("a topic ARN")
        .to_owned();
    let serve = Serve::start(
        "moto",
        &[
            "--sns-unverified-topic",
            &topic,
            "--sns-cert-source",
            &moto.endpoint,
        ],
    );
    serve.put_rule();

    let recorder = Site::start(
        "127.0.0.1",
        Box::new(|_| Reply::new(200, "text/plain", "recorded")),
    );
    let credentials = format!("csmp:{}", serve.integration);
    let at_recorder = format!(
        "http://{credentials}@{}/v1/events/cloudwatch",
        recorder.addr
    );
    let subscribed = moto.boto(&["sns-subscribe", &topic, &at_recorder]);
    assert_eq!(subscribed["attributes"]["Protocol"], "http", "{subscribed}");
    let at_csmp = format!(
        "http://{credentials}@{}/v1/events/cloudwatch",
        serve.authority()
    );
    moto.boto(&["sns-subscribe", &topic, &at_csmp]);
    // moto (5.2) marks an http(s) subscription confirmed at once and POSTs no
    // SubscriptionConfirmation, so there is no SubscribeURL to visit.
    assert!(
        recorder
            .seen()
            .iter()
            .all(|s| s.json()["Type"] != "SubscriptionConfirmation"),
        "moto sent a SubscriptionConfirmation: {:?}",
        recorder.seen()
    );

    // The alarm fires.
    let message = alarm_message("ALARM");
    moto.boto(&[
        "sns-publish",
        &topic,
        "--message",
        &message,
        "--subject",
        &format!("ALARM: \"{ALARM}\" in EU (Ireland)"),
    ]);
    let sent = poll(|| {
        recorder
            .seen()
            .into_iter()
            .find(|s| s.json()["Type"] == "Notification")
    })
    .unwrap_or_else(|| panic!("moto POSTed no notification to its http subscriber"));
    // What moto sends: a POST to the endpoint's path, its user and password as HTTP Basic.
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/v1/events/cloudwatch");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Basic {}", STANDARD.encode(&credentials)).as_str()),
        "moto sends the endpoint URL's credentials as HTTP Basic: {:?}",
        sent.headers
    );
    let body = sent.json();
    assert_eq!(body["TopicArn"], topic.as_str(), "{body}");
    assert_eq!(body["Message"], message.as_str(), "{body}");

    let stored = poll(|| {
        let found = alarm_alerts(&serve);
        (!found.is_empty()).then_some(found)
    })
    .unwrap_or_else(|| {
        let replayed = replay(&serve, &sent);
        panic!(
            "csmp stored no alert for the alarm moto delivered.\n\
             --- moto sent: {} {} with headers {:?}\n--- the same request sent again to csmp \
             is answered {} {}\n--- csmp's events: {:?}\n--- csmp serve's log:\n{}",
            sent.method,
            sent.target,
            sent.headers,
            replayed.status,
            replayed.text,
            serve.events(),
            serve.log()
        )
    });
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_firing_alert(&stored[0]);
    let run = serve.wait_for_hello();
    assert_eq!(
        run["outputs"]["greeting"],
        format!("hello, {GROUP}"),
        "{run}"
    );

    // The alarm clears.
    moto.boto(&[
        "sns-publish",
        &topic,
        "--message",
        &alarm_message("OK"),
        "--subject",
        &format!("OK: \"{ALARM}\" in EU (Ireland)"),
    ]);
    let resolved = serve.wait_for("the alarm's OK to resolve the alert", || {
        alarm_alerts(&serve)
            .into_iter()
            .next()
            .filter(|a| a["status"] == "resolved")
    });
    assert_eq!(resolved["labels"]["alertname"], ALARM, "{resolved}");
    assert_eq!(alarm_alerts(&serve).len(), 2);
    assert_eq!(serve.rule_runs().len(), 1, "still the one run");
    let notifications = recorder
        .seen()
        .into_iter()
        .filter(|s| s.json()["Type"] == "Notification")
        .count();
    assert_eq!(notifications, 2, "moto delivered each publish once");
}

/// Sends `seen` (what moto sent) to csmp again, exactly: its headers and body.
fn replay(serve: &Serve, seen: &Seen) -> Answer {
    let headers: Vec<(&str, &str)> = seen
        .headers
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "host" | "content-length" | "connection" | "content-type" | "authorization"
            )
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let auth = seen
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let (user, password) = auth
        .as_deref()
        .and_then(|a| a.split_once(':'))
        .unwrap_or_default();
    serve.call(
        "POST",
        "/v1/events/cloudwatch",
        if auth.is_some() {
            Auth::Basic(user, password)
        } else {
            Auth::None
        },
        &headers,
        Some((seen.header("content-type").unwrap_or_default(), &seen.body)),
    )
}
