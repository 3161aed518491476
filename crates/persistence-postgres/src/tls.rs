//! TLS for PostgreSQL connections: rustls (aws-lc-rs provider) through
//! `tokio-postgres-rustls`.
//!
//! Whether TLS is used follows the URL's `sslmode` with libpq's meaning:
//! `disable` never, `prefer` (the default) when the server offers it,
//! `require` always. What is verified depends on
//! `PostgresOptions::tls_ca_file`:
//! * **No CA file** (libpq's `require` without a root certificate): the
//!   connection is encrypted, but the server certificate is *not* checked
//!   against any authority — this protects against passive eavesdropping,
//!   not against an active man in the middle. The handshake signatures are
//!   still verified, with the certificate's own key.
//! * **A CA file** (libpq's `verify-full`): TLS is required, the server
//!   certificate must chain to one of the file's certificates and be valid
//!   for the host name of the URL.
//!
//! The crypto provider is passed explicitly, so the process-wide rustls
//! default (which other crates may set differently) does not matter.

use std::path::Path;
use std::sync::Arc;

use errors::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The TLS connector for every connection of a store.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("postgres: TLS setup failed: {e}")))?;
    let config = match ca_file {
        Some(path) => builder
            .with_root_certificates(load_roots(path)?)
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of a PEM file as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore> {
    let file_error = |e: &dyn std::fmt::Display| {
        Error::internal(format!(
            "postgres: cannot read CA certificates from {}: {e}",
            path.display()
        ))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(&e))? {
        let cert = cert.map_err(|e| file_error(&e))?;
        roots.add(cert).map_err(|e| file_error(&e))?;
    }
    if roots.is_empty() {
        return Err(file_error(&"the file holds no certificate"));
    }
    Ok(roots)
}

/// Accepts any server certificate but still checks that the server holds
/// its key (libpq's `sslmode=require` without a root certificate).
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
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
