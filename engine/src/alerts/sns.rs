//! Verifying Amazon SNS messages delivered to an HTTP(S) endpoint.
//!
//! SNS POSTs a JSON document ([`parse`] turns it into an [`Envelope`]) and signs it with
//! RSA: `SignatureVersion` `1` is `SHA1withRSA`, `2` is `SHA256withRSA`, both PKCS#1 v1.5,
//! over the [`string_to_sign`] (fixed keys in byte order, each written as `Key\nValue\n`).
//! The public key comes from the X.509 certificate at `SigningCertURL`, which a
//! [`Verifier`] fetches only from an allowed source ([`SnsPolicy::cert_sources`], by default
//! `https://sns.*.amazonaws.com`) and caches by URL. Its validity period is checked, its
//! issuer chain is not: the trust comes from having fetched it over HTTPS (the TLS stack's
//! roots) from an SNS host, with no redirect followed.
//!
//! Order of the checks in [`Verifier::check`]: the topic must be allowed (an unknown topic is
//! refused before anything is fetched), then the signature version and encoding, then the
//! certificate's source, and only then is the certificate fetched and the signature verified.
//! [`confirm`] answers a `SubscriptionConfirmation` after the same checks, and only when its
//! `SubscribeURL` points at an allowed SNS origin, so a forged confirmation cannot make the
//! caller fetch an arbitrary URL.
//!
//! Everything here blocks (the real fetcher uses `ureq`); async callers use `spawn_blocking`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::der::referenced::OwnedToRef as _;
use x509_cert::der::{Decode as _, DecodePem as _};

/// The certificate source allowed when the operator names none: any SNS region's endpoint.
pub const DEFAULT_CERT_SOURCE: &str = "https://sns.*.amazonaws.com";

/// How long one fetch (a certificate, or a `SubscribeURL`) may take, connect to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes read from one fetch's response body; an SNS certificate is about 2 KiB.
pub const MAX_FETCH_BYTES: u64 = 64 * 1024;

/// How many certificates the cache keeps before it starts over (SNS uses a handful).
const MAX_CACHED_CERTS: usize = 32;

/// The longest URL looked at; anything longer is refused.
const MAX_URL_LEN: usize = 2048;

/// The longest piece of a message quoted back in an error.
const MAX_QUOTED: usize = 200;

/// What the operator allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsPolicy {
    /// `TopicArn`s whose messages are accepted after their signature is verified (and whose
    /// `SubscriptionConfirmation` may be answered).
    pub topics: Vec<String>,
    /// `TopicArn`s accepted WITHOUT signature verification (emulators such as moto sign
    /// nothing verifiable); the caller must log each use ([`Verification::Unverified`]). A
    /// topic that is also in [`SnsPolicy::topics`] is verified.
    pub unverified: Vec<String>,
    /// Where signing certificates (and `SubscribeURL`s) may point: origins such as
    /// `https://sns.*.amazonaws.com` (the default; `*` stands for exactly one DNS label) or
    /// `http://127.0.0.1:8443` for tests. Scheme, host and port must all match; a certificate
    /// URL's path must also end in `.pem`, with no query or fragment.
    pub cert_sources: Vec<String>,
}

impl Default for SnsPolicy {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            unverified: Vec::new(),
            cert_sources: vec![DEFAULT_CERT_SOURCE.to_owned()],
        }
    }
}

impl SnsPolicy {
    /// Checks the policy itself, for the caller to report at startup.
    ///
    /// # Errors
    ///
    /// Every problem found, each as a sentence: a certificate source that is not an origin
    /// pattern (`scheme://host[:port]`, `*` only as a whole label and not in the last two
    /// labels), or a topic listed both as verified and as unverified.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for source in &self.cert_sources {
            if let Err(why) = parse_source(source) {
                problems.push(format!(
                    "certificate source {:?} {why}; write it like {DEFAULT_CERT_SOURCE:?} or \
                     \"http://127.0.0.1:8443\"",
                    clip(source)
                ));
            }
        }
        for topic in &self.unverified {
            if self.topics.contains(topic) {
                problems.push(format!(
                    "topic {:?} is listed both as verified and as unverified; it will be \
                     verified, so drop one of the two",
                    clip(topic)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Whether a `SigningCertURL` may be fetched: its origin matches one of
    /// [`SnsPolicy::cert_sources`] and its path ends in `.pem`, with no query or fragment.
    #[must_use]
    pub fn allows_cert_url(&self, url: &str) -> bool {
        let Some(target) = parse_url(url) else {
            return false;
        };
        let path_ok = target.rest.starts_with('/')
            && !target.rest.contains(['?', '#'])
            && std::path::Path::new(target.rest)
                .extension()
                .is_some_and(|extension| extension.eq_ignore_ascii_case("pem"));
        path_ok && self.origin_allowed(&target)
    }

    /// Whether a `SubscribeURL` may be visited: its origin matches one of
    /// [`SnsPolicy::cert_sources`] (any path and query).
    #[must_use]
    pub fn allows_subscribe_url(&self, url: &str) -> bool {
        parse_url(url).is_some_and(|target| self.origin_allowed(&target))
    }

    fn origin_allowed(&self, target: &Target<'_>) -> bool {
        self.cert_sources
            .iter()
            .filter_map(|source| parse_source(source).ok())
            .any(|pattern| {
                pattern.scheme == target.scheme
                    && pattern.port == target.port
                    && host_matches(&pattern.host, &target.host)
            })
    }
}

/// The type of an SNS message (its `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Sent once after `Subscribe`; visiting its `SubscribeURL` confirms the subscription.
    SubscriptionConfirmation,
    /// A message published to the topic.
    Notification,
    /// Sent after `Unsubscribe`; its `SubscribeURL` would subscribe again.
    UnsubscribeConfirmation,
}

impl Kind {
    /// The `Type` value SNS uses for this kind.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::Notification => "Notification",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    /// The kind a `Type` value names, if any (exact, case-sensitive).
    #[must_use]
    pub fn from_type(value: &str) -> Option<Self> {
        match value {
            "SubscriptionConfirmation" => Some(Self::SubscriptionConfirmation),
            "Notification" => Some(Self::Notification),
            "UnsubscribeConfirmation" => Some(Self::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of an SNS message that matter for verifying and handling it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `Type`.
    pub kind: Kind,
    /// `MessageId` (kept across SNS's retries, so usable to drop duplicates).
    pub message_id: String,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject`, which only a `Notification` may have (and is signed only there).
    pub subject: Option<String>,
    /// `Message`: for a `Notification`, what was published.
    pub message: String,
    /// `Timestamp`, as SNS wrote it (ISO 8601, UTC).
    pub timestamp: String,
    /// `Token`, present on (and only kept for) the two confirmation kinds.
    pub token: Option<String>,
    /// `SubscribeURL`, present on (and only kept for) the two confirmation kinds.
    pub subscribe_url: Option<String>,
    /// `SignatureVersion`: `1` (`SHA1withRSA`) or `2` (`SHA256withRSA`).
    pub signature_version: String,
    /// `Signature`, Base64.
    pub signature: String,
    /// `SigningCertURL`.
    pub signing_cert_url: String,
}

/// Reads an SNS message's JSON body.
///
/// `Subject` is optional (`null` counts as absent) and kept only for a `Notification`;
/// `Token` and `SubscribeURL` are required for the two confirmation kinds and dropped from a
/// `Notification`, where they are not signed. Other members (`UnsubscribeURL`,
/// `MessageAttributes`, …) are ignored.
///
/// # Errors
///
/// Every problem at once, each as (JSON pointer, message), e.g.
/// `("/Type", "must be one of Notification, SubscriptionConfirmation, UnsubscribeConfirmation")`.
pub fn parse(body: &Value) -> Result<Envelope, Vec<(String, String)>> {
    let Some(object) = body.as_object() else {
        return Err(vec![(
            String::new(),
            "must be a JSON object (the body SNS POSTs)".to_owned(),
        )]);
    };
    let mut problems = Vec::new();
    let kind = string_member(object, "Type", true, &mut problems);
    let message_id = string_member(object, "MessageId", true, &mut problems);
    let topic_arn = string_member(object, "TopicArn", true, &mut problems);
    let message = string_member(object, "Message", true, &mut problems);
    let timestamp = string_member(object, "Timestamp", true, &mut problems);
    let signature_version = string_member(object, "SignatureVersion", true, &mut problems);
    let signature = string_member(object, "Signature", true, &mut problems);
    let signing_cert_url = string_member(object, "SigningCertURL", true, &mut problems);
    let kind = kind.and_then(|value| {
        let kind = Kind::from_type(&value);
        if kind.is_none() {
            problems.push((
                "/Type".to_owned(),
                "must be one of Notification, SubscriptionConfirmation, UnsubscribeConfirmation"
                    .to_owned(),
            ));
        }
        kind
    });
    let (subject, token, subscribe_url) = match kind {
        Some(Kind::Notification) => (
            string_member(object, "Subject", false, &mut problems),
            None,
            None,
        ),
        Some(Kind::SubscriptionConfirmation | Kind::UnsubscribeConfirmation) => (
            None,
            string_member(object, "Token", true, &mut problems),
            string_member(object, "SubscribeURL", true, &mut problems),
        ),
        None => (None, None, None),
    };

    match (
        kind,
        message_id,
        topic_arn,
        message,
        timestamp,
        signature_version,
        signature,
        signing_cert_url,
    ) {
        (
            Some(kind),
            Some(message_id),
            Some(topic_arn),
            Some(message),
            Some(timestamp),
            Some(signature_version),
            Some(signature),
            Some(signing_cert_url),
        ) if problems.is_empty() => Ok(Envelope {
            kind,
            message_id,
            topic_arn,
            subject,
            message,
            timestamp,
            token,
            subscribe_url,
            signature_version,
            signature,
            signing_cert_url,
        }),
        _ => Err(problems),
    }
}

/// The string member `key` of `object`; records a problem if it is missing (and `required`;
/// `null` counts as missing) or not a string.
fn string_member(
    object: &serde_json::Map<String, Value>,
    key: &str,
    required: bool,
    problems: &mut Vec<(String, String)>,
) -> Option<String> {
    match object.get(key) {
        Some(Value::String(text)) => Some(text.clone()),
        None | Some(Value::Null) => {
            if required {
                problems.push((format!("/{key}"), "is required".to_owned()));
            }
            None
        }
        Some(_) => {
            problems.push((format!("/{key}"), "must be a string".to_owned()));
            None
        }
    }
}

/// The exact bytes SNS signs for this message.
///
/// Each name-value pair is written as `Name\nValue\n`, names in byte order: for a
/// `Notification` `Message`, `MessageId`, `Subject` (only if present), `Timestamp`,
/// `TopicArn`, `Type`; for a `SubscriptionConfirmation` or `UnsubscribeConfirmation`
/// `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`. Values
/// are the JSON strings decoded (so an escaped `\n` in `Message` is a real newline here).
#[must_use]
pub fn string_to_sign(env: &Envelope) -> String {
    fn push(out: &mut String, name: &str, value: &str) {
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    }
    let mut out = String::with_capacity(
        env.message.len() + env.subscribe_url.as_ref().map_or(0, String::len) + 512,
    );
    push(&mut out, "Message", &env.message);
    push(&mut out, "MessageId", &env.message_id);
    match env.kind {
        Kind::Notification => {
            if let Some(subject) = &env.subject {
                push(&mut out, "Subject", subject);
            }
            push(&mut out, "Timestamp", &env.timestamp);
        }
        Kind::SubscriptionConfirmation | Kind::UnsubscribeConfirmation => {
            if let Some(url) = &env.subscribe_url {
                push(&mut out, "SubscribeURL", url);
            }
            push(&mut out, "Timestamp", &env.timestamp);
            if let Some(token) = &env.token {
                push(&mut out, "Token", token);
            }
        }
    }
    push(&mut out, "TopicArn", &env.topic_arn);
    push(&mut out, "Type", env.kind.as_str());
    out
}

/// Why an SNS message was refused or could not be handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// The `TopicArn` is in neither list of the policy.
    #[error(
        "SNS topic {0:?} is not allowed: if it is yours, add it with --sns-topic (or, for an \
         emulator that cannot sign, --sns-unverified-topic)"
    )]
    TopicNotAllowed(String),
    /// The `SigningCertURL` is not on an allowed source, or its path is not a `.pem`.
    #[error(
        "signing certificate URL {0:?} is not allowed: SNS serves its certificates as \
         https://sns.<region>.amazonaws.com/….pem; for another source (an emulator, a test) add \
         its origin with --sns-cert-source"
    )]
    CertSourceNotAllowed(String),
    /// The certificate could not be fetched (network, HTTP status, size).
    #[error(
        "could not fetch the SNS signing certificate: {0}; check that this host can reach it \
         (SNS retries the delivery)"
    )]
    CertFetch(String),
    /// What was fetched is not a usable certificate (not X.509, not RSA, outside its validity).
    #[error("the SNS signing certificate is not usable: {0}")]
    CertInvalid(String),
    /// `SignatureVersion` is neither `1` nor `2`.
    #[error(
        "unsupported SignatureVersion {0:?}: SNS signs with 1 (SHA1withRSA) or 2 \
         (SHA256withRSA); set the topic's SignatureVersion attribute to 2"
    )]
    SignatureVersion(String),
    /// The signature is not valid Base64, or does not verify against the certificate.
    #[error(
        "the message's signature does not verify: it was altered or not signed by SNS; drop it \
         (if it comes from an emulator, list its topic with --sns-unverified-topic)"
    )]
    BadSignature,
    /// [`confirm`] was given a message that is not a `SubscriptionConfirmation`.
    #[error("only a SubscriptionConfirmation can be confirmed, not a {0}")]
    NotSubscriptionConfirmation(Kind),
    /// The `SubscribeURL` is missing or not on an allowed origin.
    #[error(
        "SubscribeURL {0:?} is not on an allowed SNS origin, so it was not visited; confirm the \
         subscription by hand (aws sns confirm-subscription) or add its origin with \
         --sns-cert-source"
    )]
    SubscribeUrlNotAllowed(String),
    /// Visiting the `SubscribeURL` failed.
    #[error(
        "confirming the SNS subscription failed: {0}; SNS resends the confirmation for a while, \
         or confirm it by hand (aws sns confirm-subscription with the message's Token)"
    )]
    ConfirmFailed(String),
}

/// How a message that [`Verifier::check`] accepted was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verification {
    /// Its signature verified against an SNS certificate.
    Verified,
    /// Its topic is listed as unverified: accepted without looking at the signature. The
    /// caller must log this.
    Unverified,
}

/// Fetches the body at a URL: `Ok(bytes)` for a 2xx answer, otherwise what went wrong.
pub type Fetcher = Box<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// Checks SNS messages against an [`SnsPolicy`], fetching and caching signing certificates.
///
/// Blocking: async callers run [`Verifier::check`] and [`confirm`] in `spawn_blocking`.
pub struct Verifier {
    policy: SnsPolicy,
    fetch: Fetcher,
    certs: Mutex<HashMap<String, CachedCert>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.lock_certs().len();
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("cached_certs", &cached)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier that fetches over HTTP(S) with `ureq`: [`FETCH_TIMEOUT`] per request, at
    /// most [`MAX_FETCH_BYTES`] of body, no redirects followed (a redirect is a failure).
    #[must_use]
    pub fn new(policy: SnsPolicy) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Self::with_fetcher(policy, Box::new(move |url| http_get(&agent, url)))
    }

    /// A verifier that fetches with `fetch` (tests count and fake the fetches this way).
    #[must_use]
    pub fn with_fetcher(policy: SnsPolicy, fetch: Fetcher) -> Self {
        Self {
            policy,
            fetch,
            certs: Mutex::new(HashMap::new()),
        }
    }

    /// The policy this verifier enforces.
    #[must_use]
    pub fn policy(&self) -> &SnsPolicy {
        &self.policy
    }

    /// Decides whether to accept a message, `now_unix_secs` being the current time (seconds
    /// since the Unix epoch) for the certificate's validity period.
    ///
    /// A topic in [`SnsPolicy::topics`] has its signature verified; one only in
    /// [`SnsPolicy::unverified`] is accepted as [`Verification::Unverified`] without any
    /// fetch. The certificate is fetched only from an allowed source, once per URL.
    ///
    /// # Errors
    ///
    /// [`SnsError::TopicNotAllowed`], [`SnsError::SignatureVersion`],
    /// [`SnsError::BadSignature`], [`SnsError::CertSourceNotAllowed`],
    /// [`SnsError::CertFetch`] or [`SnsError::CertInvalid`], checked in about that order.
    pub fn check(&self, env: &Envelope, now_unix_secs: i64) -> Result<Verification, SnsError> {
        let topic = env.topic_arn.as_str();
        if !self.policy.topics.iter().any(|allowed| allowed == topic) {
            if self
                .policy
                .unverified
                .iter()
                .any(|allowed| allowed == topic)
            {
                return Ok(Verification::Unverified);
            }
            return Err(SnsError::TopicNotAllowed(clip(topic)));
        }
        let version = match env.signature_version.as_str() {
            "1" => SignatureVersion::Sha1,
            "2" => SignatureVersion::Sha256,
            other => return Err(SnsError::SignatureVersion(clip(other))),
        };
        let signature = STANDARD
            .decode(env.signature.as_bytes())
            .ok()
            .and_then(|bytes| Signature::try_from(bytes.as_slice()).ok())
            .ok_or(SnsError::BadSignature)?;
        if !self.policy.allows_cert_url(&env.signing_cert_url) {
            return Err(SnsError::CertSourceNotAllowed(clip(&env.signing_cert_url)));
        }
        let key = self.certificate_key(&env.signing_cert_url, now_unix_secs)?;
        let signed = string_to_sign(env);
        let verified = match version {
            SignatureVersion::Sha1 => {
                VerifyingKey::<sha1::Sha1>::new(key).verify(signed.as_bytes(), &signature)
            }
            SignatureVersion::Sha256 => {
                VerifyingKey::<rsa::sha2::Sha256>::new(key).verify(signed.as_bytes(), &signature)
            }
        };
        verified
            .map(|()| Verification::Verified)
            .map_err(|_| SnsError::BadSignature)
    }

    /// The public key of the certificate at `url` (already allowed), from the cache while it is
    /// valid at `now`, else fetched.
    fn certificate_key(&self, url: &str, now: i64) -> Result<rsa::PublicKey, SnsError> {
        {
            let mut certs = self.lock_certs();
            if let Some(cert) = certs.get(url) {
                if cert.validity_problem(now).is_none() {
                    return Ok(cert.key.clone());
                }
                // Outside its validity: forget it, so that a renewed one can be fetched.
                certs.remove(url);
            }
        }
        let body = (self.fetch)(url).map_err(|why| SnsError::CertFetch(clip(&why)))?;
        let cert = CachedCert::parse(&body)
            .map_err(|why| SnsError::CertInvalid(format!("{why} (from {:?})", clip(url))))?;
        if let Some(why) = cert.validity_problem(now) {
            return Err(SnsError::CertInvalid(format!(
                "{why} (from {:?}); check this host's clock",
                clip(url)
            )));
        }
        let key = cert.key.clone();
        let mut certs = self.lock_certs();
        if certs.len() >= MAX_CACHED_CERTS {
            certs.clear();
        }
        certs.insert(url.to_owned(), cert);
        Ok(key)
    }

    fn lock_certs(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedCert>> {
        // The map is valid whatever a panicking holder did, so poisoning is ignored.
        self.certs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Answers a `SubscriptionConfirmation` with an HTTP GET of its `SubscribeURL`.
///
/// It first runs [`Verifier::check`] (so the topic is allowed and, unless listed as
/// unverified, the signature verified), then requires the `SubscribeURL`'s origin to match
/// one of [`SnsPolicy::cert_sources`], and only then fetches it. Returns how the message was
/// accepted, for the caller to log.
///
/// # Errors
///
/// [`SnsError::NotSubscriptionConfirmation`], any error of [`Verifier::check`],
/// [`SnsError::SubscribeUrlNotAllowed`], or [`SnsError::ConfirmFailed`] with what went wrong
/// (for an HTTP error, its status).
pub fn confirm(
    verifier: &Verifier,
    env: &Envelope,
    now_unix_secs: i64,
) -> Result<Verification, SnsError> {
    if env.kind != Kind::SubscriptionConfirmation {
        return Err(SnsError::NotSubscriptionConfirmation(env.kind));
    }
    let verification = verifier.check(env, now_unix_secs)?;
    let url = env.subscribe_url.as_deref().unwrap_or_default();
    if !verifier.policy.allows_subscribe_url(url) {
        return Err(SnsError::SubscribeUrlNotAllowed(clip(url)));
    }
    (verifier.fetch)(url).map_err(|why| SnsError::ConfirmFailed(clip(&why)))?;
    Ok(verification)
}

#[derive(Debug, Clone, Copy)]
enum SignatureVersion {
    Sha1,
    Sha256,
}

/// A fetched certificate, reduced to what verification needs.
struct CachedCert {
    key: rsa::PublicKey,
    not_before: i64,
    not_after: i64,
    not_before_text: String,
    not_after_text: String,
}

impl CachedCert {
    fn parse(body: &[u8]) -> Result<Self, String> {
        let body = body.trim_ascii();
        let cert = if body.starts_with(b"-----BEGIN") {
            Certificate::from_pem(body)
        } else {
            Certificate::from_der(body)
        }
        .map_err(|why| format!("it is not an X.509 certificate ({why})"))?;
        let tbs = cert.tbs_certificate();
        let key = rsa::PublicKey::try_from(tbs.subject_public_key_info().owned_to_ref())
            .map_err(|why| format!("its public key is not a usable RSA key ({why})"))?;
        let validity = tbs.validity();
        let secs = |time: x509_cert::time::Time| {
            i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        Ok(Self {
            key,
            not_before: secs(validity.not_before),
            not_after: secs(validity.not_after),
            not_before_text: validity.not_before.to_string(),
            not_after_text: validity.not_after.to_string(),
        })
    }

    fn validity_problem(&self, now: i64) -> Option<String> {
        if now < self.not_before {
            Some(format!("it is not valid before {}", self.not_before_text))
        } else if now > self.not_after {
            Some(format!("it expired at {}", self.not_after_text))
        } else {
            None
        }
    }
}

fn http_get(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|why| format!("{why} (GET {:?})", clip(url)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "HTTP status {} (GET {:?})",
            status.as_u16(),
            clip(url)
        ));
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_FETCH_BYTES)
        .read_to_vec()
        .map_err(|why| format!("reading the body: {why} (GET {:?})", clip(url)))
}

/// Where a URL sends a request: scheme, host (lowercase) and port, plus everything after the
/// authority (path, query, fragment).
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    scheme: &'static str,
    host: String,
    port: u16,
    rest: &'a str,
}

/// Splits an absolute `http`/`https` URL; `None` for anything unusual (user info, a
/// backslash, whitespace or control or non-ASCII characters, a bad port, an odd host), so
/// that no parser downstream can read it as pointing somewhere else.
fn parse_url(url: &str) -> Option<Target<'_>> {
    split_url(url, false)
}

/// Parses a certificate source pattern: an origin whose host may have `*` labels.
fn parse_source(source: &str) -> Result<Target<'_>, &'static str> {
    let target =
        split_url(source, true).ok_or("is not scheme://host[:port] with scheme http or https")?;
    if !(target.rest.is_empty() || target.rest == "/") {
        return Err("has a path, query or fragment (only an origin is matched)");
    }
    if target.host.rsplit('.').take(2).any(|label| label == "*") {
        return Err("has `*` in its last two labels (it would match hosts of anyone)");
    }
    Ok(target)
}

fn split_url(url: &str, wildcards: bool) -> Option<Target<'_>> {
    if url.len() > MAX_URL_LEN || !url.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') {
        return None;
    }
    let (scheme, after) = url.split_once("://")?;
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", 443)
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", 80)
    } else {
        return None;
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inner, tail) = bracketed.split_once(']')?;
        let ipv6 = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ipv6 {
            return None;
        }
        let port = match tail {
            "" => None,
            _ => Some(tail.strip_prefix(':')?),
        };
        (format!("[{}]", inner.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host = host.to_ascii_lowercase();
        let labels_ok = host
            .split('.')
            .all(|label| is_dns_label(label) || (wildcards && label == "*"));
        if !labels_ok {
            return None;
        }
        (host, port)
    };
    let port = match port {
        None => default_port,
        Some(digits) => {
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            digits.parse::<u16>().ok().filter(|port| *port != 0)?
        }
    };
    Some(Target {
        scheme,
        host,
        port,
        rest,
    })
}

/// A non-empty DNS label of at most 63 lowercase letters, digits and hyphens.
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Whether `host` matches `pattern` label for label, a `*` label matching any one DNS label.
fn host_matches(pattern: &str, host: &str) -> bool {
    let mut pattern_labels = pattern.split('.');
    let mut host_labels = host.split('.');
    loop {
        match (pattern_labels.next(), host_labels.next()) {
            (None, None) => return true,
            (Some("*"), Some(label)) if is_dns_label(label) => {}
            (Some(expected), Some(label)) if expected == label => {}
            _ => return false,
        }
    }
}

/// A piece of a message, cut to [`MAX_QUOTED`] characters, for an error to quote.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
