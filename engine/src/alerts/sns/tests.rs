use super::*;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rsa::pkcs1v15::SigningKey;
use rsa::signature::{Keypair as _, SignatureEncoding as _, Signer as _};
use rsa::{Generate as _, PrivateKey};
use serde_json::json;
use x509_cert::builder::{Builder as _, CertificateBuilder, profile::cabf};
use x509_cert::der::EncodePem as _;
use x509_cert::der::pem::LineEnding;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfo;
use x509_cert::time::{Time, Validity};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:csmp-alerts";
const EMULATED: &str = "arn:aws:sns:us-east-1:000000000000:moto-topic";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem";
const EXPIRED_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-old.pem";
const SUBSCRIBE_URL: &str = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:csmp-alerts&Token=2336412f37";

struct Keys {
    v1: SigningKey<sha1::Sha1>,
    v2: SigningKey<rsa::sha2::Sha256>,
    other: SigningKey<rsa::sha2::Sha256>,
    valid_pem: String,
    expired_pem: String,
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("fits")
}

fn cert_pem(
    signer: &SigningKey<rsa::sha2::Sha256>,
    not_before: SystemTime,
    not_after: SystemTime,
) -> String {
    let subject = Name::from_str("CN=sns.amazonaws.com,O=csmp test,C=US").expect("name");
    let profile = cabf::Root::new(false, subject).expect("profile");
    let spki = SubjectPublicKeyInfo::from_key(&signer.verifying_key()).expect("spki");
    let validity = Validity::new(
        Time::try_from(not_before).expect("time"),
        Time::try_from(not_after).expect("time"),
    );
    let builder = CertificateBuilder::new(profile, SerialNumber::from(7_u32), validity, spki)
        .expect("builder");
    let cert = builder
        .build::<_, Signature>(signer)
        .expect("self-signed certificate");
    cert.to_pem(LineEnding::LF).expect("pem")
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = PrivateKey::generate();
        let v2 = SigningKey::<rsa::sha2::Sha256>::new(key.clone());
        let day = Duration::from_hours(24);
        let now = SystemTime::now();
        let valid_pem = cert_pem(&v2, now - day, now + day);
        let expired_pem = cert_pem(&v2, now - day * 30, now - day);
        Keys {
            v1: SigningKey::new(key),
            v2,
            other: SigningKey::new(PrivateKey::generate()),
            valid_pem,
            expired_pem,
        }
    })
}

/// A fetcher serving the test certificates, counting every call.
fn fetcher(calls: &Arc<AtomicUsize>, seen: &Arc<Mutex<Vec<String>>>) -> Fetcher {
    let calls = Arc::clone(calls);
    let seen = Arc::clone(seen);
    Box::new(move |url| {
        calls.fetch_add(1, Ordering::SeqCst);
        seen.lock().expect("lock").push(url.to_owned());
        match url {
            CERT_URL => Ok(keys().valid_pem.clone().into_bytes()),
            EXPIRED_URL => Ok(keys().expired_pem.clone().into_bytes()),
            SUBSCRIBE_URL => Ok(b"<ConfirmSubscriptionResponse/>".to_vec()),
            _ => Err("HTTP status 404".to_owned()),
        }
    })
}

struct Harness {
    verifier: Verifier,
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Harness {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn harness() -> Harness {
    let policy = SnsPolicy {
        topics: vec![TOPIC.to_owned()],
        unverified: vec![EMULATED.to_owned()],
        ..SnsPolicy::default()
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    Harness {
        verifier: Verifier::with_fetcher(policy, fetcher(&calls, &seen)),
        calls,
        seen,
    }
}

fn notification(subject: Option<&str>) -> Envelope {
    Envelope {
        kind: Kind::Notification,
        message_id: "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324".to_owned(),
        topic_arn: TOPIC.to_owned(),
        subject: subject.map(str::to_owned),
        message: "{\"AlarmName\":\"cpu\"}\nsecond line".to_owned(),
        timestamp: "2012-05-02T00:54:06.655Z".to_owned(),
        token: None,
        subscribe_url: None,
        signature_version: "2".to_owned(),
        signature: String::new(),
        signing_cert_url: CERT_URL.to_owned(),
    }
}

fn confirmation(kind: Kind) -> Envelope {
    Envelope {
        kind,
        message_id: "165545c9-2a5c-472c-8df2-7ff2be2b3b1b".to_owned(),
        topic_arn: TOPIC.to_owned(),
        subject: None,
        message: "You have chosen to subscribe to the topic.\nTo confirm the subscription, \
                  visit the SubscribeURL included in this message."
            .to_owned(),
        timestamp: "2012-04-26T20:45:04.751Z".to_owned(),
        token: Some("2336412f37".to_owned()),
        subscribe_url: Some(SUBSCRIBE_URL.to_owned()),
        signature_version: "2".to_owned(),
        signature: String::new(),
        signing_cert_url: CERT_URL.to_owned(),
    }
}

/// Signs `env` as SNS would with `SignatureVersion` `version`.
fn signed(mut env: Envelope, version: &str) -> Envelope {
    let text = string_to_sign(&env);
    let signature = match version {
        "1" => keys().v1.sign(text.as_bytes()).to_vec(),
        _ => keys().v2.sign(text.as_bytes()).to_vec(),
    };
    env.signature_version = version.to_owned();
    env.signature = STANDARD.encode(signature);
    env
}

#[test]
fn string_to_sign_notification_with_and_without_subject() {
    assert_eq!(
        string_to_sign(&notification(Some("My subject"))),
        "Message\n{\"AlarmName\":\"cpu\"}\nsecond line\n\
         MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
         Subject\nMy subject\n\
         Timestamp\n2012-05-02T00:54:06.655Z\n\
         TopicArn\narn:aws:sns:us-east-1:123456789012:csmp-alerts\n\
         Type\nNotification\n"
    );
    assert_eq!(
        string_to_sign(&notification(None)),
        "Message\n{\"AlarmName\":\"cpu\"}\nsecond line\n\
         MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n\
         Timestamp\n2012-05-02T00:54:06.655Z\n\
         TopicArn\narn:aws:sns:us-east-1:123456789012:csmp-alerts\n\
         Type\nNotification\n"
    );
}

#[test]
fn string_to_sign_confirmations() {
    let expected = |kind: &str| {
        format!(
            "Message\nYou have chosen to subscribe to the topic.\nTo confirm the \
             subscription, visit the SubscribeURL included in this message.\n\
             MessageId\n165545c9-2a5c-472c-8df2-7ff2be2b3b1b\n\
             SubscribeURL\n{SUBSCRIBE_URL}\n\
             Timestamp\n2012-04-26T20:45:04.751Z\n\
             Token\n2336412f37\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:csmp-alerts\n\
             Type\n{kind}\n"
        )
    };
    assert_eq!(
        string_to_sign(&confirmation(Kind::SubscriptionConfirmation)),
        expected("SubscriptionConfirmation")
    );
    assert_eq!(
        string_to_sign(&confirmation(Kind::UnsubscribeConfirmation)),
        expected("UnsubscribeConfirmation")
    );
    // A subject on a confirmation is not signed.
    let mut with_subject = confirmation(Kind::SubscriptionConfirmation);
    with_subject.subject = Some("ignored".to_owned());
    assert_eq!(
        string_to_sign(&with_subject),
        expected("SubscriptionConfirmation")
    );
}

#[test]
fn valid_messages_signed_with_version_1_and_2_are_accepted() {
    let h = harness();
    for version in ["1", "2"] {
        for env in [
            notification(Some("subject")),
            notification(None),
            confirmation(Kind::SubscriptionConfirmation),
            confirmation(Kind::UnsubscribeConfirmation),
        ] {
            let env = signed(env, version);
            assert_eq!(
                h.verifier.check(&env, now()),
                Ok(Verification::Verified),
                "{version} {:?}",
                env.kind
            );
        }
    }
    // Eight messages, one certificate URL: fetched once.
    assert_eq!(h.calls(), 1);
}

#[test]
fn altered_messages_are_refused() {
    let h = harness();
    let good = signed(notification(Some("subject")), "2");
    let mut altered = good.clone();
    altered.message.push('!');
    assert_eq!(
        h.verifier.check(&altered, now()),
        Err(SnsError::BadSignature)
    );
    let mut no_subject = good.clone();
    no_subject.subject = None;
    assert_eq!(
        h.verifier.check(&no_subject, now()),
        Err(SnsError::BadSignature)
    );
    let mut other_kind = signed(confirmation(Kind::SubscriptionConfirmation), "1");
    other_kind.kind = Kind::UnsubscribeConfirmation;
    assert_eq!(
        h.verifier.check(&other_kind, now()),
        Err(SnsError::BadSignature)
    );
    let mut other_url = signed(confirmation(Kind::SubscriptionConfirmation), "1");
    other_url.subscribe_url = Some("https://sns.us-east-1.amazonaws.com/?Action=Other".into());
    assert_eq!(
        h.verifier.check(&other_url, now()),
        Err(SnsError::BadSignature)
    );
    assert_eq!(h.verifier.check(&good, now()), Ok(Verification::Verified));
}

#[test]
fn forged_signatures_are_refused() {
    let h = harness();
    let mut env = notification(None);
    // Signed by a key that is not the certificate's.
    env.signature = STANDARD.encode(keys().other.sign(string_to_sign(&env).as_bytes()).to_vec());
    assert_eq!(h.verifier.check(&env, now()), Err(SnsError::BadSignature));
    // Random bytes of the right length.
    env.signature = STANDARD.encode([0x5a_u8; 384]);
    assert_eq!(h.verifier.check(&env, now()), Err(SnsError::BadSignature));
    // Not Base64, or empty: refused before any fetch.
    let fetched = h.calls();
    env.signature = "not base64!".to_owned();
    assert_eq!(h.verifier.check(&env, now()), Err(SnsError::BadSignature));
    env.signature = String::new();
    assert_eq!(h.verifier.check(&env, now()), Err(SnsError::BadSignature));
    assert_eq!(h.calls(), fetched);
}

#[test]
fn wrong_signature_version_is_refused() {
    let h = harness();
    let mut env = signed(notification(None), "2");
    env.signature_version = "1".to_owned();
    assert_eq!(h.verifier.check(&env, now()), Err(SnsError::BadSignature));
    let mut env = signed(notification(None), "1");
    env.signature_version = "2".to_owned();
    assert_eq!(h.verifier.check(&env, now()), Err(SnsError::BadSignature));

    let h = harness();
    for version in ["3", "", "01", "2 "] {
        let mut env = signed(notification(None), "2");
        env.signature_version = version.to_owned();
        assert_eq!(
            h.verifier.check(&env, now()),
            Err(SnsError::SignatureVersion(version.to_owned()))
        );
    }
    assert_eq!(h.calls(), 0);
}

#[test]
fn cert_url_outside_the_sources_is_never_fetched() {
    let h = harness();
    for url in [
        "https://sns.evil.com/SimpleNotificationService-test.pem",
        "https://sns.us-east-1.amazonaws.com.attacker.net/cert.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.txt",
        "https://sns.us-east-1.amazonaws.com/cert.pem?x=1",
        "https://sns.us-east-1.amazonaws.com@evil.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
        "file:///etc/ssl/cert.pem",
    ] {
        let mut env = signed(notification(None), "2");
        env.signing_cert_url = url.to_owned();
        assert_eq!(
            h.verifier.check(&env, now()),
            Err(SnsError::CertSourceNotAllowed(url.to_owned())),
            "{url}"
        );
    }
    assert_eq!(h.calls(), 0);
}

#[test]
fn certificate_is_fetched_once_for_two_messages() {
    let h = harness();
    let first = signed(notification(Some("one")), "2");
    let second = signed(confirmation(Kind::SubscriptionConfirmation), "1");
    assert_eq!(h.verifier.check(&first, now()), Ok(Verification::Verified));
    assert_eq!(h.verifier.check(&second, now()), Ok(Verification::Verified));
    assert_eq!(h.calls(), 1);
    assert_eq!(*h.seen.lock().expect("lock"), vec![CERT_URL.to_owned()]);
    assert!(format!("{:?}", h.verifier).contains("cached_certs: 1"));
}

#[test]
fn topic_not_allowed_is_refused_before_any_fetch() {
    let h = harness();
    let mut env = signed(notification(None), "2");
    env.topic_arn = "arn:aws:sns:us-east-1:123456789012:someone-else".to_owned();
    let err = h.verifier.check(&env, now()).expect_err("refused");
    assert_eq!(
        err,
        SnsError::TopicNotAllowed("arn:aws:sns:us-east-1:123456789012:someone-else".into())
    );
    assert!(err.to_string().contains("--sns-topic"), "{err}");
    assert_eq!(h.calls(), 0);
}

#[test]
fn unverified_topic_passes_without_fetching() {
    let h = harness();
    let mut env = notification(None);
    env.topic_arn = EMULATED.to_owned();
    env.signature = "EXAMPLE-not-a-signature".to_owned();
    env.signature_version = "1".to_owned();
    env.signing_cert_url = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem".to_owned();
    assert_eq!(h.verifier.check(&env, now()), Ok(Verification::Unverified));
    env.signing_cert_url = "http://localhost:4566/whatever".to_owned();
    env.signature_version = "9".to_owned();
    assert_eq!(h.verifier.check(&env, now()), Ok(Verification::Unverified));
    assert_eq!(h.calls(), 0);
}

#[test]
fn topic_in_both_lists_is_verified() {
    let h = harness();
    let policy = SnsPolicy {
        unverified: vec![TOPIC.to_owned()],
        ..h.verifier.policy().clone()
    };
    assert!(policy.validate().is_err());
    let verifier = Verifier::with_fetcher(policy, fetcher(&h.calls, &h.seen));
    let env = notification(None); // unsigned
    assert_eq!(verifier.check(&env, now()), Err(SnsError::BadSignature));
}

#[test]
fn expired_or_not_yet_valid_certificate_is_refused() {
    let h = harness();
    let mut env = signed(notification(None), "2");
    env.signing_cert_url = EXPIRED_URL.to_owned();
    match h.verifier.check(&env, now()) {
        Err(SnsError::CertInvalid(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("expected CertInvalid, got {other:?}"),
    }
    // The valid certificate, cached, is refused once `now` is past its end, and refetched.
    let env = signed(notification(None), "2");
    assert_eq!(h.verifier.check(&env, now()), Ok(Verification::Verified));
    let fetched = h.calls();
    match h.verifier.check(&env, now() + 3 * 86_400) {
        Err(SnsError::CertInvalid(why)) => assert!(why.contains("expired"), "{why}"),
        other => panic!("expected CertInvalid, got {other:?}"),
    }
    match h.verifier.check(&env, now() - 3 * 86_400) {
        Err(SnsError::CertInvalid(why)) => assert!(why.contains("not valid before"), "{why}"),
        other => panic!("expected CertInvalid, got {other:?}"),
    }
    assert_eq!(h.calls(), fetched + 2);
}

#[test]
fn unusable_certificates_and_failed_fetches_are_reported() {
    let policy = SnsPolicy {
        topics: vec![TOPIC.to_owned()],
        ..SnsPolicy::default()
    };
    let env = signed(notification(None), "2");
    let garbage = Verifier::with_fetcher(
        policy.clone(),
        Box::new(|_| {
            Ok(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec())
        }),
    );
    assert!(matches!(
        garbage.check(&env, now()),
        Err(SnsError::CertInvalid(_))
    ));
    let failing = Verifier::with_fetcher(policy, Box::new(|_| Err("HTTP status 503".into())));
    let err = failing.check(&env, now()).expect_err("refused");
    assert_eq!(err, SnsError::CertFetch("HTTP status 503".into()));
    // Nothing is cached after a failure.
    assert!(format!("{failing:?}").contains("cached_certs: 0"));
}

#[test]
fn parse_reads_a_notification() {
    let body = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "My First Message",
        "Message": "Hello world!\nline two",
        "Timestamp": "2012-05-02T00:54:06.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE==",
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "Token": "not signed here, dropped",
    });
    let env = parse(&body).expect("parses");
    assert_eq!(env.kind, Kind::Notification);
    assert_eq!(env.subject.as_deref(), Some("My First Message"));
    assert_eq!(env.message, "Hello world!\nline two");
    assert_eq!(env.token, None);
    assert_eq!(env.subscribe_url, None);
    assert_eq!(env.signing_cert_url, CERT_URL);

    let mut without = body.clone();
    without["Subject"] = Value::Null;
    assert_eq!(parse(&without).expect("parses").subject, None);
}

#[test]
fn parse_reports_every_problem_with_its_pointer() {
    let problems = parse(&json!({})).expect_err("empty");
    let pointers: Vec<&str> = problems.iter().map(|(at, _)| at.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/Type",
            "/MessageId",
            "/TopicArn",
            "/Message",
            "/Timestamp",
            "/SignatureVersion",
            "/Signature",
            "/SigningCertURL"
        ]
    );
    assert!(problems.iter().all(|(_, message)| message == "is required"));

    let problems = parse(&json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": 7,
        "TopicArn": TOPIC,
        "Message": "m",
        "Timestamp": "t",
        "SignatureVersion": "2",
        "Signature": "s",
        "SigningCertURL": CERT_URL,
    }))
    .expect_err("incomplete confirmation");
    assert_eq!(
        problems,
        [
            ("/MessageId".to_owned(), "must be a string".to_owned()),
            ("/Token".to_owned(), "is required".to_owned()),
            ("/SubscribeURL".to_owned(), "is required".to_owned()),
        ]
    );

    let problems = parse(&json!({
        "Type": "Publish",
        "MessageId": "id",
        "TopicArn": TOPIC,
        "Message": "m",
        "Timestamp": "t",
        "SignatureVersion": "2",
        "Signature": "s",
    }))
    .expect_err("bad type");
    assert_eq!(
        problems,
        [
            ("/SigningCertURL".to_owned(), "is required".to_owned()),
            (
                "/Type".to_owned(),
                "must be one of Notification, SubscriptionConfirmation, \
                 UnsubscribeConfirmation"
                    .to_owned()
            ),
        ]
    );

    let problems = parse(&json!(["not", "an", "object"])).expect_err("array");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].0, "");
}

#[test]
fn parse_then_verify_round_trip() {
    let env = signed(confirmation(Kind::SubscriptionConfirmation), "2");
    let body = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": env.message_id,
        "Token": env.token,
        "TopicArn": env.topic_arn,
        "Message": env.message,
        "SubscribeURL": env.subscribe_url,
        "Timestamp": env.timestamp,
        "SignatureVersion": env.signature_version,
        "Signature": env.signature,
        "SigningCertURL": env.signing_cert_url,
    });
    let text = serde_json::to_string(&body).expect("json");
    let parsed = parse(&serde_json::from_str(&text).expect("json")).expect("parses");
    assert_eq!(parsed, env);
    assert_eq!(
        harness().verifier.check(&parsed, now()),
        Ok(Verification::Verified)
    );
}

#[test]
fn cert_source_patterns() {
    let policy = SnsPolicy::default();
    assert!(policy.validate().is_ok());
    let allowed = |url: &str| policy.allows_cert_url(url);
    assert!(allowed(
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
    ));
    assert!(allowed("https://SNS.EU-WEST-3.amazonaws.com/a.pem"));
    assert!(allowed("https://sns.us-gov-west-1.amazonaws.com:443/a.pem"));
    for url in [
        "https://sns.evil.com/a.pem",
        "https://evil.amazonaws.com.attacker.net/a.pem",
        "https://sns.us-east-1.amazonaws.com.attacker.net/a.pem",
        "https://sns.amazonaws.com/a.pem",
        "https://sns.a.b.amazonaws.com/a.pem",
        "https://sns..amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com./a.pem",
        "https://xsns.us-east-1.amazonaws.com/a.pem",
        "http://sns.us-east-1.amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com:80/a.pem",
        "https://sns.us-east-1.amazonaws.com:/a.pem",
        "https://user@sns.us-east-1.amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com\\@evil.com/a.pem",
        "https://sns.us_east.amazonaws.com/a.pem",
        "https://sns.us-east-1.amazonaws.com/a.pem#x",
        "https://sns.us-east-1.amazonaws.com/a.pem ",
        "https://sns.us-east-1.amazonaws.com",
        "https://sns.us-east-1.amazonaws.com/",
        "sns.us-east-1.amazonaws.com/a.pem",
        "",
    ] {
        assert!(!allowed(url), "{url}");
    }

    let local = SnsPolicy {
        cert_sources: vec!["http://127.0.0.1:8443".into(), "https://[::1]".into()],
        ..SnsPolicy::default()
    };
    assert!(local.validate().is_ok());
    assert!(local.allows_cert_url("http://127.0.0.1:8443/test.pem"));
    assert!(!local.allows_cert_url("https://127.0.0.1:8443/test.pem"));
    assert!(!local.allows_cert_url("http://127.0.0.1:8444/test.pem"));
    assert!(!local.allows_cert_url("http://127.0.0.1/test.pem"));
    assert!(local.allows_cert_url("https://[::1]/test.pem"));
    assert!(!local.allows_cert_url("https://[::2]/test.pem"));

    // SubscribeURLs: same origins, any path and query.
    assert!(policy.allows_subscribe_url(SUBSCRIBE_URL));
    assert!(!policy.allows_subscribe_url("https://sns.evil.com/?Action=ConfirmSubscription"));
    assert!(!policy.allows_subscribe_url("http://169.254.169.254/latest/meta-data/"));

    let bad = SnsPolicy {
        cert_sources: vec![
            "https://*.amazonaws.*".into(),
            "https://*".into(),
            "ftp://sns.amazonaws.com".into(),
            "https://sns.*.amazonaws.com/path".into(),
            "https://sns-*.amazonaws.com".into(),
        ],
        ..SnsPolicy::default()
    };
    let problems = bad.validate().expect_err("bad sources");
    assert_eq!(problems.len(), 5, "{problems:?}");
    // Invalid patterns never match.
    assert!(!bad.allows_cert_url("https://sns-x.amazonaws.com/a.pem"));
    assert!(!bad.allows_cert_url("https://a.amazonaws.com/a.pem"));
}

#[test]
fn confirm_visits_an_allowed_subscribe_url_only() {
    let h = harness();
    let env = signed(confirmation(Kind::SubscriptionConfirmation), "2");
    assert_eq!(
        confirm(&h.verifier, &env, now()),
        Ok(Verification::Verified)
    );
    assert_eq!(
        *h.seen.lock().expect("lock"),
        vec![CERT_URL.to_owned(), SUBSCRIBE_URL.to_owned()]
    );

    // Not a SubscriptionConfirmation.
    let unsubscribe = signed(confirmation(Kind::UnsubscribeConfirmation), "2");
    assert_eq!(
        confirm(&h.verifier, &unsubscribe, now()),
        Err(SnsError::NotSubscriptionConfirmation(
            Kind::UnsubscribeConfirmation
        ))
    );

    // Forged (unsigned) confirmation on a verified topic: refused before any fetch.
    let h = harness();
    let mut forged = confirmation(Kind::SubscriptionConfirmation);
    forged.subscribe_url = Some("http://169.254.169.254/latest/meta-data/".to_owned());
    forged.signing_cert_url = "https://attacker.example/cert.pem".to_owned();
    assert!(matches!(
        confirm(&h.verifier, &forged, now()),
        Err(SnsError::CertSourceNotAllowed(_))
    ));
    // On an unverified topic the signature is skipped, but the URL is still checked.
    forged.topic_arn = EMULATED.to_owned();
    assert_eq!(
        confirm(&h.verifier, &forged, now()),
        Err(SnsError::SubscribeUrlNotAllowed(
            "http://169.254.169.254/latest/meta-data/".to_owned()
        ))
    );
    assert_eq!(h.calls(), 0);

    // A failing visit reports what the fetcher said (the status).
    let mut unlucky = confirmation(Kind::SubscriptionConfirmation);
    unlucky.topic_arn = EMULATED.to_owned();
    unlucky.subscribe_url = Some("https://sns.us-east-1.amazonaws.com/?Action=Gone".into());
    let err = confirm(&h.verifier, &unlucky, now()).expect_err("fails");
    assert_eq!(err, SnsError::ConfirmFailed("HTTP status 404".to_owned()));
    assert!(err.to_string().contains("404"), "{err}");
}

/// Serves `responses` in order on a loopback port, one connection each, then stops.
fn serve(responses: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for response in responses {
            let (mut stream, _) = listener.accept().expect("accept");
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut request = Vec::new();
            let mut buf = [0_u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&request);
            requests.push(text.lines().next().unwrap_or_default().to_owned());
            // The client may hang up early (body over the limit): ignore write errors.
            let _ = stream.write_all(&response);
        }
        requests
    });
    (port, handle)
}

fn http_response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn real_fetcher_over_loopback() {
    let pem = keys().valid_pem.clone().into_bytes();
    let (port, server) = serve(vec![
        http_response("404 Not Found", b"no"),
        http_response("200 OK", &pem),
        http_response("302 Found", b""),
        http_response("200 OK", &vec![b'x'; 70 * 1024]),
    ]);
    let origin = format!("http://127.0.0.1:{port}");
    let verifier = Verifier::new(SnsPolicy {
        topics: vec![TOPIC.to_owned()],
        unverified: Vec::new(),
        cert_sources: vec![origin.clone()],
    });
    let mut env = signed(notification(None), "2");
    env.signing_cert_url = format!("{origin}/missing.pem");
    match verifier.check(&env, now()) {
        Err(SnsError::CertFetch(why)) => assert!(why.contains("404"), "{why}"),
        other => panic!("expected CertFetch, got {other:?}"),
    }
    env.signing_cert_url = format!("{origin}/cert.pem");
    assert_eq!(verifier.check(&env, now()), Ok(Verification::Verified));
    assert_eq!(verifier.check(&env, now()), Ok(Verification::Verified));
    env.signing_cert_url = format!("{origin}/moved.pem");
    match verifier.check(&env, now()) {
        Err(SnsError::CertFetch(why)) => assert!(why.contains("302"), "{why}"),
        other => panic!("expected CertFetch, got {other:?}"),
    }
    env.signing_cert_url = format!("{origin}/huge.pem");
    assert!(matches!(
        verifier.check(&env, now()),
        Err(SnsError::CertFetch(_))
    ));
    let requests = server.join().expect("server");
    assert_eq!(
        requests,
        [
            "GET /missing.pem HTTP/1.1",
            "GET /cert.pem HTTP/1.1",
            "GET /moved.pem HTTP/1.1",
            "GET /huge.pem HTTP/1.1"
        ]
    );
}

#[test]
fn verifier_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<SnsError>();
}

#[test]
fn errors_quote_at_most_a_clipped_value() {
    let long = "a".repeat(5000);
    let err = SnsError::TopicNotAllowed(clip(&long));
    assert!(err.to_string().len() < 400);
    assert_eq!(clip("short"), "short");
    let err = SnsError::TopicNotAllowed(clip("line\nbreak"));
    assert!(err.to_string().contains("line\\nbreak"));
}
