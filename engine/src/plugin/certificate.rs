//! When a TLS server's certificate expires: a handshake with the server, its leaf certificate
//! read. Only the expiry is wanted, so the chain is not judged here (the probe's own request
//! judged it, with the platform's roots); handshake signatures are still verified.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use x509_cert::der::Decode as _;

/// Takes any chain, checks the handshake's signatures.
#[derive(Debug)]
struct ReadOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// When (ms since the epoch) the certificate `addr` presents for `server_name` stops being
/// valid, or why it could not be read.
pub(crate) fn leaf_expiry(
    addr: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> Result<i64, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| format!("`{server_name}` is not a server name: {e}"))?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    let mut tcp = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("the TLS handshake with {addr} failed: {e}"))?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| format!("{addr} presented no certificate"))?;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("the certificate of {addr} is not readable: {e}"))?;
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    let _ = tcp.flush();
    let after = cert
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration();
    Ok(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::str::FromStr as _;
    use std::time::{SystemTime, UNIX_EPOCH};

    use rsa::pkcs1v15::{Signature, SigningKey};
    use rsa::pkcs8::EncodePrivateKey as _;
    use rsa::signature::Keypair as _;
    use rsa::{Generate as _, PrivateKey};
    use rustls::pki_types::PrivateKeyDer;
    use x509_cert::builder::{Builder as _, CertificateBuilder, profile::cabf};
    use x509_cert::der::Encode as _;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfo;
    use x509_cert::time::{Time, Validity};

    use super::*;

    #[test]
    fn the_leaf_certificates_expiry_is_read_from_a_real_handshake() {
        let key = PrivateKey::generate();
        let signer = SigningKey::<rsa::sha2::Sha256>::new(key.clone());
        let now = SystemTime::now();
        let expires = now + Duration::from_secs(10 * 24 * 3600);
        let subject = Name::from_str("CN=localhost,O=csmp test,C=US").expect("a name");
        let profile = cabf::Root::new(false, subject).expect("a profile");
        let spki = SubjectPublicKeyInfo::from_key(&signer.verifying_key()).expect("spki");
        let validity = Validity::new(
            Time::try_from(now - Duration::from_secs(3600)).expect("a time"),
            Time::try_from(expires).expect("a time"),
        );
        let cert = CertificateBuilder::new(profile, SerialNumber::from(9_u32), validity, spki)
            .expect("a builder")
            .build::<_, Signature>(&signer)
            .expect("a certificate");
        let der = cert.to_der().expect("DER");
        let key_der = key.to_pkcs8_der().expect("PKCS#8").as_bytes().to_vec();
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(der)],
            PrivateKeyDer::Pkcs8(key_der.into()),
        )
        .expect("a server config");
        let server = Arc::new(server);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("an address");
        std::thread::spawn(move || {
            if let Ok((mut tcp, _)) = listener.accept() {
                let mut conn = rustls::ServerConnection::new(server).expect("a connection");
                while conn.is_handshaking() {
                    if conn.complete_io(&mut tcp).is_err() {
                        return;
                    }
                }
                let _ = conn.complete_io(&mut tcp);
            }
        });
        let at = leaf_expiry(addr, "localhost", Duration::from_secs(5)).expect("read");
        let want = i64::try_from(
            expires
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs(),
        )
        .expect("fits");
        assert_eq!(at / 1000, want, "X.509 times are whole seconds");
    }
}
