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

use super::url::{Server, Target, TlsMode};
use crate::Misconfigured;

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

impl Misconfigured {
    /// A TLS setting that cannot work with this server.
    fn tls(problem: String) -> Self {
        Misconfigured(format!("TLS configuration error: {problem}"))
    }
}

/// The URL parameters that set TLS, in the dialect's spelling.
struct Parameters {
    ca: &'static str,
    /// Encrypts without verifying.
    no_verify: &'static str,
    /// Verifies the chain, not the host name.
    chain_only: &'static str,
    /// Plain text allowed.
    plain_text: &'static str,
}

fn parameters(target: &Target) -> Parameters {
    match target {
        Target::MySql(_) => Parameters {
            ca: "ssl-ca",
            no_verify: "ssl-mode=REQUIRED",
            chain_only: "ssl-mode=VERIFY_CA",
            plain_text: "ssl-mode=DISABLED",
        },
        _ => Parameters {
            ca: "sslrootcert",
            no_verify: "sslmode=require",
            chain_only: "sslmode=verify-ca",
            plain_text: "sslmode=prefer or sslmode=disable",
        },
    }
}

/// Reads the CA file the URL names, before any connection is tried: a
/// missing or empty file is a configuration error, not an unreachable server.
pub fn check_root_cert(target: &Target) -> Result<(), Misconfigured> {
    let (Target::Postgres(server) | Target::MySql(server)) = target else { return Ok(()) };
    let Some(path) = &server.root_cert else { return Ok(()) };
    if server.tls == TlsMode::Disable {
        return Ok(());
    }
    let names = parameters(target);
    let problem = match std::fs::read(path) {
        Err(error) => format!("cannot read {}={} ({error})", names.ca, path.display()),
        Ok(pem) => {
            let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
            match certificates {
                Ok(certificates) if !certificates.is_empty() => return Ok(()),
                Ok(_) => format!("{}={} holds no PEM certificate", names.ca, path.display()),
                Err(error) => format!("{}={} is not valid PEM ({error})", names.ca, path.display()),
            }
        }
    };
    Err(Misconfigured::tls(format!(
        "{problem}; set {} to the PEM file of the CA that signed the database server's certificate",
        names.ca
    )))
}

/// The certificate error anywhere in a failed connection's chain of causes.
/// TLS libraries hand rustls' error up inside `io::Error`s, whose `source()`
/// skips the error they carry, so those are opened by hand.
fn certificate_error(problem: &anyhow::Error) -> Option<&CertificateError> {
    problem.chain().find_map(|cause| {
        let rustls = cause
            .downcast_ref::<rustls::Error>()
            .or_else(|| cause.downcast_ref::<std::io::Error>()?.get_ref()?.downcast_ref::<rustls::Error>())?;
        match rustls {
            rustls::Error::InvalidCertificate(error) => Some(error),
            _ => None,
        }
    })
}

/// The server answered that it does not speak TLS while the URL demands it.
/// tokio-postgres says so only in its message, hence the text; the
/// `database_urls` test holds it to a real server.
fn tls_not_offered(problem: &anyhow::Error) -> bool {
    problem.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<mysql_async::Error>(),
            Some(mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer))
        ) || cause.to_string() == "server does not support TLS"
    })
}

/// A connection that failed on the server's certificate, or on a server
/// without TLS while the URL demands it, as the configuration error it is,
/// naming the parameter to fix; `None` for any other failure.
pub fn misconfigured(target: &Target, problem: &anyhow::Error) -> Option<Misconfigured> {
    let (Target::Postgres(server) | Target::MySql(server)) = target else { return None };
    let names = parameters(target);
    if tls_not_offered(problem) {
        return Some(Misconfigured::tls(format!(
            "{} at {server} does not offer TLS, and the URL requires it; set {} (or enable TLS on the server)",
            target.backend_name(),
            names.plain_text
        )));
    }
    let error = certificate_error(problem)?;
    let roots = match &server.root_cert {
        Some(path) => format!("the CA in {}={}", names.ca, path.display()),
        None => format!("the built-in Mozilla roots (no {} given)", names.ca),
    };
    let fix = match error {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
            "the server's certificate does not name the host of the URL ({server}); connect by a name the certificate holds, or set {} to verify the chain only",
            names.chain_only
        ),
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => format!(
            "the server's certificate is outside its validity period; renew it on the server, or set {} to encrypt without verifying",
            names.no_verify
        ),
        _ => format!(
            "the server's certificate is not trusted by {roots}; set {} to the PEM file of the CA that signed it, or {} to encrypt without verifying",
            names.ca, names.no_verify
        ),
    };
    Some(Misconfigured::tls(format!("{} at {server}: {error}; {fix}", target.backend_name())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::parse;

    /// A connection error as the TLS libraries hand it up: rustls' error in an
    /// `io::Error`, under the driver's error and our context.
    fn failed(error: CertificateError) -> anyhow::Error {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(error));
        anyhow::Error::new(io).context("cannot connect to the database")
    }

    fn message(url: &str, problem: &anyhow::Error) -> Option<String> {
        let target = parse(url).ok()?;
        misconfigured(&target, problem).map(|m| m.to_string())
    }

    #[test]
    fn certificate_errors_name_the_parameter_of_the_dialect() {
        let unknown = failed(CertificateError::UnknownIssuer);
        let pg = message("postgresql://u@db/app?sslmode=verify-full&sslrootcert=/ca.pem", &unknown).unwrap_or_default();
        assert!(pg.contains("sslrootcert=/ca.pem") && pg.contains("sslmode=require"), "{pg}");
        let my = message("u:pw@tcp(db:3306)/app?tls=true", &unknown).unwrap_or_default();
        assert!(my.contains("built-in Mozilla roots (no ssl-ca given)") && my.contains("ssl-mode=REQUIRED"), "{my}");
        assert!(!my.contains("pw"), "{my}");
        let name = message("postgresql://u@db/app?sslmode=verify-full", &failed(CertificateError::NotValidForName));
        assert!(name.is_some_and(|m| m.contains("does not name the host") && m.contains("sslmode=verify-ca")));
        let expired = message("jdbc:mysql://db/app?sslMode=VERIFY_CA", &failed(CertificateError::Expired));
        assert!(expired.is_some_and(|m| m.contains("validity period") && m.contains("ssl-mode=REQUIRED")));
        // mysql_async's own wrapping of a rustls error.
        let wrapped = anyhow::Error::new(mysql_async::Error::from(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )));
        assert!(message("mysql://u@db/app?ssl-ca=/ca.pem", &wrapped).is_some_and(|m| m.contains("ssl-ca=/ca.pem")));
    }

    #[test]
    fn other_failures_are_not_configuration_errors() {
        let refused = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(message("postgresql://u@db/app?sslmode=verify-full", &refused), None);
        let alert = anyhow::Error::new(rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure));
        assert_eq!(message("postgresql://u@db/app?sslmode=verify-full", &alert), None);
    }
}
