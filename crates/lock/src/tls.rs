//! rustls client configuration for PostgreSQL, following libpq's `sslmode`:
//! `prefer`/`require` encrypt without verifying, `verify-ca` checks the chain,
//! `verify-full` the chain and the host name. Roots: `sslrootcert` when given,
//! otherwise the Mozilla roots built into the binary (app images may have no
//! CA store at all).

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::url::{Server, TlsMode};

pub fn client_config(server: &Server) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(server)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .context("cannot build the TLS certificate verifier")?;
    let verifier = Verifier { mode: server.tls, webpki };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

fn roots(server: &Server) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match &server.root_cert {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read sslrootcert {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("bad PEM in sslrootcert {}", path.display()))?;
                store.add(cert).with_context(|| format!("bad certificate in sslrootcert {}", path.display()))?;
            }
        }
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

#[derive(Debug)]
struct Verifier {
    mode: TlsMode,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match (self.mode, verified) {
            (TlsMode::VerifyFull, result) => result,
            (TlsMode::VerifyCa, Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)))
            | (
                TlsMode::VerifyCa,
                Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })),
            ) => Ok(ServerCertVerified::assertion()),
            (TlsMode::VerifyCa, result) => result,
            (TlsMode::Disable | TlsMode::Prefer | TlsMode::Require, _) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
