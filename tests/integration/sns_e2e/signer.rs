//! Playing SNS: a key, its certificate, signed messages, and the CloudWatch alarm they carry.

use std::str::FromStr as _;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::{Signature, SigningKey};
use rsa::sha2::Sha256;
use rsa::signature::{Keypair as _, SignatureEncoding as _, Signer as _};
use rsa::{Generate as _, PrivateKey};
use serde_json::{Value, json};
use x509_cert::builder::{Builder as _, CertificateBuilder, profile::cabf};
use x509_cert::der::EncodePem as _;
use x509_cert::der::pem::LineEnding;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfo;
use x509_cert::time::{Time, Validity};

use super::{ALARM, ALARM_ARN, GROUP, TOPIC};

/// A signing key and its self-signed certificate (PEM), valid from a day ago to a day ahead.
pub(crate) struct Signer {
    key: SigningKey<Sha256>,
    pub(crate) pem: String,
}

impl Signer {
    pub(crate) fn new() -> Self {
        let key = SigningKey::<Sha256>::new(PrivateKey::generate());
        let subject = Name::from_str("CN=sns.amazonaws.com,O=csmp e2e test,C=US").expect("name");
        let profile = cabf::Root::new(false, subject).expect("profile");
        let spki = SubjectPublicKeyInfo::from_key(&key.verifying_key()).expect("spki");
        let day = Duration::from_secs(24 * 3600);
        let now = SystemTime::now();
        let validity = Validity::new(
            Time::try_from(now - day).expect("time"),
            Time::try_from(now + day).expect("time"),
        );
        let cert = CertificateBuilder::new(profile, SerialNumber::from(7_u32), validity, spki)
            .expect("builder")
            .build::<_, Signature>(&key)
            .expect("a self-signed certificate");
        let pem = cert.to_pem(LineEnding::LF).expect("pem");
        Self { key, pem }
    }

    /// Signs `envelope` in place (`SignatureVersion` 2).
    pub(crate) fn sign(&self, mut envelope: Value) -> Value {
        let text = string_to_sign(&envelope);
        let signature = self.key.sign(text.as_bytes()).to_vec();
        envelope["SignatureVersion"] = "2".into();
        envelope["Signature"] = STANDARD.encode(signature).into();
        envelope
    }
}

/// What SNS signs: `Name\nValue\n` for each present name, in this order, per message type.
fn string_to_sign(envelope: &Value) -> String {
    let names: &[&str] = if envelope["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = String::new();
    for name in names {
        if let Some(value) = envelope[*name].as_str() {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

/// Now, as SNS writes its `Timestamp`.
fn sns_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A CloudWatch alarm state change as CloudWatch publishes it to SNS (the `Message`), its
/// `StateChangeTime` now.
pub(crate) fn alarm_message(state: &str) -> String {
    let (old, reason) = match state {
        "ALARM" => (
            "OK",
            "Threshold Crossed: 1 datapoint [97.5] was greater than the threshold (90.0).",
        ),
        _ => (
            "ALARM",
            "Threshold Crossed: 1 datapoint [41.0] was not greater than the threshold (90.0).",
        ),
    };
    json!({
        "AlarmName": ALARM,
        "AlarmDescription": "CPU of the web Auto Scaling group above 90%",
        "AWSAccountId": "123456789012",
        "AlarmConfigurationUpdatedTimestamp": "2026-11-30T09:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        "Region": "EU (Ireland)",
        "AlarmArn": ALARM_ARN,
        "OldStateValue": old,
        "OKActions": [],
        "AlarmActions": [TOPIC],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/EC2",
            "StatisticType": "Statistic",
            "Statistic": "AVERAGE",
            "Unit": null,
            "Dimensions": [{ "value": GROUP, "name": "AutoScalingGroupName" }],
            "Period": 300,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 90.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": ""
        }
    })
    .to_string()
}

/// An (unsigned) SNS `Notification` of `message` on `topic`.
pub(crate) fn notification(topic: &str, id: &str, message: &str, cert_url: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": topic,
        "Subject": format!("ALARM: \"{ALARM}\" in EU (Ireland)"),
        "Message": message,
        "Timestamp": sns_now(),
        "SignatureVersion": "2",
        "Signature": "",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": format!("https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:2bcfbf39"),
    })
}

/// An (unsigned) SNS `SubscriptionConfirmation` on `topic`.
pub(crate) fn confirmation(
    topic: &str,
    id: &str,
    subscribe_url: &str,
    token: &str,
    cert_url: &str,
) -> Value {
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": id,
        "Token": token,
        "TopicArn": topic,
        "Message": format!("You have chosen to subscribe to the topic {topic}.\nTo confirm the subscription, visit the SubscribeURL included in this message."),
        "SubscribeURL": subscribe_url,
        "Timestamp": sns_now(),
        "SignatureVersion": "2",
        "Signature": "",
        "SigningCertURL": cert_url,
    })
}
