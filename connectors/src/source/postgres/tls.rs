//! TLS for the connection to PostgreSQL, with rustls. `sslmode` follows libpq's meaning:
//! `prefer` and `require` encrypt without authenticating the server (a certificate is not
//! checked, as libpq does without a root certificate); `verify-full` checks the server's
//! certificate chain and host name against `sslrootcert`, or the public web PKI roots when it
//! is not set.

use super::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector of the SQL connections for `mode` (not [`SslMode::Disable`]).
pub fn connector(mode: SslMode, root_cert: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    client_config(mode, root_cert).map(MakeRustlsConnect::new)
}

/// The rustls settings for `mode` (not [`SslMode::Disable`]), shared by the SQL connections
/// and the replication connection so that both check the server alike.
pub fn client_config(mode: SslMode, root_cert: Option<&Path>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("setting TLS up: {e}"))?;
    let config = match mode {
        SslMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    let certificates = CertificateDer::pem_file_iter(path)
                        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| {
                            format!(
                                "cannot read {} (named by source.sslrootcert): {e}",
                                path.display()
                            )
                        })?;
                    let (added, _) = roots.add_parsable_certificates(certificates);
                    if added == 0 {
                        return Err(format!(
                            "{} (named by source.sslrootcert) holds no usable certificate",
                            path.display()
                        ));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts any server certificate but still checks that the server holds its key, which is
/// what `sslmode = prefer` and `require` promise: an encrypted connection, not an
/// authenticated one.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
