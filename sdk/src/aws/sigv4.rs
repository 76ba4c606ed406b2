//! AWS Signature Version 4: the canonical request, the string to sign, the derived signing key
//! and the `Authorization` header, for requests whose body is in memory (the Query and JSON
//! protocols csmp's plugins speak).
//!
//! Pure: the caller passes the credentials and the instant; nothing here reads a clock, a
//! secret or the network. Checked against AWS's published SigV4 test suite (the tests below).

use std::fmt::Write as _;
use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Credentials;
use super::time::UtcTime;
use crate::{PluginError, Request};

/// Headers never signed: proxies and the HTTP stack may change them on the way.
const UNSIGNED_HEADERS: &[&str] = &["authorization", "user-agent", "expect", "x-amzn-trace-id"];

/// Who signs, for which region and service (the service's *signing name*: `ec2`,
/// `autoscaling`, `monitoring` for CloudWatch).
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The access key and secret (and session token, if any).
    pub credentials: &'a Credentials,
    /// `us-east-1`, `eu-west-3`, ...
    pub region: &'a str,
    /// The service's signing name.
    pub service: &'a str,
}

/// The intermediate texts of one signature, kept for tests and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The canonical request (task 1 of the algorithm).
    pub canonical_request: String,
    /// The string to sign (task 2).
    pub string_to_sign: String,
    /// `host;x-amz-date;...`.
    pub signed_headers: String,
    /// Lower-case hex HMAC (task 3).
    pub signature: String,
    /// The full `Authorization` header value.
    pub authorization: String,
}

impl Signer<'_> {
    /// Signs `request` as of `now`: adds `host` (when missing), `x-amz-date`,
    /// `x-amz-security-token` (with a session token) and `authorization`.
    pub fn sign(&self, request: &mut Request, now: SystemTime) -> Result<Signature, PluginError> {
        let url = Url::parse(&request.url)?;
        let time = UtcTime::from_system(now);
        if request.header_value("host").is_none() {
            request.headers.push(("host".into(), url.authority.clone()));
        }
        request
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("x-amz-date"));
        request.headers.push(("x-amz-date".into(), time.amz_date()));
        if let Some(token) = &self.credentials.session_token {
            request
                .headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("x-amz-security-token"));
            request
                .headers
                .push(("x-amz-security-token".into(), token.clone()));
        }
        let signature = self.signature(request, &url, &time);
        request
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        request
            .headers
            .push(("authorization".into(), signature.authorization.clone()));
        Ok(signature)
    }

    fn signature(&self, request: &Request, url: &Url, time: &UtcTime) -> Signature {
        let (canonical_headers, signed_headers) = canonical_headers(&request.headers);
        let payload_hash = hex(&Sha256::digest(request.body.as_deref().unwrap_or_default()));
        let canonical_request = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            request.method.to_ascii_uppercase(),
            canonical_path(&url.path),
            canonical_query(&url.query),
            canonical_headers,
            signed_headers,
            payload_hash
        );
        let date = time.date_stamp();
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            time.amz_date(),
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let secret = format!("AWS4{}", self.credentials.secret_access_key);
        let key = hmac(secret.as_bytes(), date.as_bytes());
        let key = hmac(&key, self.region.as_bytes());
        let key = hmac(&key, self.service.as_bytes());
        let key = hmac(&key, b"aws4_request");
        let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            self.credentials.access_key_id
        );
        Signature {
            canonical_request,
            string_to_sign,
            signed_headers,
            signature,
            authorization,
        }
    }
}

/// The parts of an absolute URL the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// `host` or `host:port`, as the `Host` header carries it (default ports omitted).
    pub(crate) authority: String,
    /// The path as written, `/` when empty.
    pub(crate) path: String,
    /// The query as written, without `?`.
    pub(crate) query: String,
}

impl Url {
    pub(crate) fn parse(url: &str) -> Result<Self, PluginError> {
        let bad = |why: &str| PluginError::permanent(format!("cannot sign url `{url}`: {why}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("it is not absolute (no `://`)"))?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "https" => "443",
            "http" => "80",
            _ => return Err(bad("use http:// or https://")),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("it needs a host (and no user info)"));
        }
        let authority = match authority.rsplit_once(':') {
            Some((host, port)) if port == default_port && !host.ends_with(':') => host,
            _ => authority,
        };
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        Ok(Self {
            authority: authority.to_ascii_lowercase(),
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            query: query.into(),
        })
    }
}

/// Lower-case names, sorted, values trimmed with inner runs of spaces collapsed; repeated
/// names joined with commas in their order.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut named: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        if UNSIGNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match named.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => named.push((name, value)),
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical = String::new();
    for (name, value) in &named {
        let _ = writeln!(canonical, "{name}:{value}");
    }
    let signed = named
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (canonical, signed)
}

/// Each segment of the path as written, percent-encoded (so an already-encoded path is encoded
/// again, as every AWS service but S3 expects).
fn canonical_path(path: &str) -> String {
    path.split('/')
        .map(|segment| uri_encode(segment.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Parameters decoded, re-encoded with SigV4's rules and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k)),
                uri_encode(&percent_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
pub(crate) fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_at = |j: usize| bytes.get(j).and_then(|b| char::from(*b).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (hex_at(i + 1), hex_at(i + 2))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    //! Cases of AWS's SigV4 test suite (`aws-sig-v4-test-suite`: credentials `AKIDEXAMPLE`,
    //! region `us-east-1`, service `service`, 2015-08-30T12:36:00Z). Each request is written
    //! with its URL percent-encoded, as it goes on the wire.

    use super::*;
    use crate::aws::time::system_time;

    const SUITE_TIME: i64 = 1_440_938_160;

    fn suite_credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(String::from),
        }
    }

    fn sign_suite(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Signature {
        let credentials = suite_credentials(None);
        sign_with(&credentials, method, url, headers, body)
    }

    fn sign_with(
        credentials: &Credentials,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Signature {
        let mut request = Request::new(method, url);
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        if let Some(body) = body {
            request = request.body(body.as_bytes().to_vec());
        }
        let signer = Signer {
            credentials,
            region: "us-east-1",
            service: "service",
        };
        signer
            .sign(&mut request, system_time(SUITE_TIME))
            .unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    const E: &str = "https://example.amazonaws.com";

    /// Name, method, URL, extra headers, expected signature.
    type Case<'a> = (&'a str, &'a str, String, &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn the_published_test_suite() {
        let h1 = [("My-Header1", "value1")];
        let cases: &[Case<'_>] = &[
            (
                "get-vanilla",
                "GET",
                format!("{E}/"),
                &[],
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                format!("{E}/?Param2=value2&Param1=value1"),
                &[],
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "get-vanilla-query-unreserved",
                "GET",
                format!(
                    "{E}/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                ),
                &[],
                "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            ),
            (
                "get-vanilla-utf8-query",
                "GET",
                format!("{E}/?%E1%88%B4=bar"),
                &[],
                "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            ),
            (
                "get-unreserved",
                "GET",
                format!("{E}/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
                &[],
                "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            ),
            (
                "get-utf8",
                "GET",
                format!("{E}/\u{1234}"),
                &[],
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            ),
            (
                "get-header-value-trim",
                "GET",
                format!("{E}/"),
                &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            ),
            (
                "get-header-key-duplicate",
                "GET",
                format!("{E}/"),
                &[
                    ("My-Header1", "value2"),
                    ("My-Header1", "value2"),
                    ("My-Header1", "value1"),
                ],
                "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            ),
            (
                "post-vanilla",
                "POST",
                format!("{E}/"),
                &[],
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "post-vanilla-query",
                "POST",
                format!("{E}/?Param1=value1"),
                &[],
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            ),
            (
                "post-vanilla-query-nonunreserved",
                "POST",
                format!("{E}/?%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D"),
                &[],
                "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e",
            ),
            (
                "post-header-key-sort",
                "POST",
                format!("{E}/"),
                &h1,
                "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            ),
            (
                "post-header-value-case",
                "POST",
                format!("{E}/"),
                &[("My-Header1", "VALUE1")],
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            ),
        ];
        for (name, method, url, headers, expected) in cases {
            let signed = sign_suite(method, url, headers, None);
            assert_eq!(
                signed.signature, *expected,
                "{name}\n{}",
                signed.canonical_request
            );
        }
    }

    #[test]
    fn post_x_www_form_urlencoded_signs_the_body_and_its_type() {
        let signed = sign_suite(
            "POST",
            &format!("{E}/"),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some("Param1=value1"),
        );
        assert_eq!(signed.signed_headers, "content-type;host;x-amz-date");
        assert_eq!(
            signed.signature,
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
        assert_eq!(
            signed.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn post_sts_header_before_signs_the_session_token() {
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
        let credentials = suite_credentials(Some(token));
        let signed = sign_with(&credentials, "POST", &format!("{E}/"), &[], None);
        assert_eq!(
            signed.signed_headers,
            "host;x-amz-date;x-amz-security-token"
        );
        assert_eq!(
            signed.signature,
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        );
    }

    #[test]
    fn the_suite_intermediate_texts() {
        let signed = sign_suite("POST", &format!("{E}/?Param1=value1"), &[], None);
        assert_eq!(
            signed.canonical_request,
            "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd"
        );
    }

    #[test]
    fn sign_sets_the_headers_it_signed() -> Result<(), PluginError> {
        let credentials = suite_credentials(None);
        let mut request = Request::post("http://127.0.0.1:5000/").body(b"Action=X".to_vec());
        let signer = Signer {
            credentials: &credentials,
            region: "eu-west-3",
            service: "ec2",
        };
        signer.sign(&mut request, system_time(SUITE_TIME))?;
        assert_eq!(request.header_value("host"), Some("127.0.0.1:5000"));
        assert_eq!(request.header_value("x-amz-date"), Some("20150830T123600Z"));
        let auth = request.header_value("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-3/ec2/"),
            "{auth}"
        );
        // Signing again (a retried attempt) replaces the date and signature, never adds one.
        signer.sign(&mut request, system_time(SUITE_TIME + 60))?;
        let dates = request
            .headers
            .iter()
            .filter(|(n, _)| n == "x-amz-date" || n == "authorization")
            .count();
        assert_eq!(dates, 2);
        Ok(())
    }

    #[test]
    fn urls_are_split_as_the_host_header_carries_them() {
        for (url, authority, path, query) in [
            (
                "https://ec2.us-east-1.amazonaws.com",
                "ec2.us-east-1.amazonaws.com",
                "/",
                "",
            ),
            (
                "https://EC2.example.com:443/?a=b",
                "ec2.example.com",
                "/",
                "a=b",
            ),
            ("http://127.0.0.1:5000/x?y", "127.0.0.1:5000", "/x", "y"),
            ("http://[::1]:80/", "[::1]", "/", ""),
        ] {
            let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(
                (
                    parsed.authority.as_str(),
                    parsed.path.as_str(),
                    parsed.query.as_str()
                ),
                (authority, path, query),
                "{url}"
            );
        }
        for bad in ["ec2.amazonaws.com", "ftp://x/", "https:///", "https://u@h/"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
