//! TLS clients as the API server is one: trusting only a CA bundle (PEM, one
//! or more certificates, like a webhook's caBundle) and verifying the
//! server's certificate for a DNS name that is resolved to a loopback port.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use kube_once_server::certs::CertBundle;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The crypto provider the server uses (reqwest and rustls have no default here).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM bundle, in order.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().context("invalid PEM certificate in the bundle")
}

/// The leaf (first) certificate of a bundle's `tls.crt`.
pub fn leaf(bundle: &CertBundle) -> CertificateDer<'static> {
    certificates(bundle.cert_pem.as_bytes()).unwrap().into_iter().next().expect("a certificate in tls.crt")
}

/// Trust anchors from CA bundles; Err if one is not PEM or they hold no certificate.
pub fn roots(ca_bundles: &[impl AsRef<[u8]>]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for bundle in ca_bundles {
        for cert in certificates(bundle.as_ref())? {
            roots.add(cert).context("CA certificate rejected")?;
        }
    }
    if roots.is_empty() {
        bail!("the CA bundle holds no certificate");
    }
    Ok(roots)
}

/// A client configuration trusting only `ca_bundles`.
pub fn client_config(ca_bundles: &[impl AsRef<[u8]>]) -> Result<rustls::ClientConfig> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("rustls protocol versions")?
        .with_root_certificates(roots(ca_bundles)?)
        .with_no_client_auth())
}

/// An HTTPS client trusting only `ca_bundles`, reaching `host` at `addr`
/// (HTTPS only). The caller adds what its test needs: a timeout, or
/// `pool_max_idle_per_host(0)` for a fresh connection per request.
pub fn https_client(ca_bundles: &[impl AsRef<[u8]>], host: &str, addr: SocketAddr) -> Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(ca_bundles)?)
        .resolve(host, addr)
        .https_only(true))
}

/// A client for plain-HTTP URLs (reqwest needs a TLS setup even so: it has no
/// default crypto provider); it trusts nothing.
pub fn plain_http_client() -> reqwest::Client {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(config).build().expect("HTTP client")
}

/// A raw TLS connection to `addr`, verified for `host` against `ca_bundles`
/// (for clients that misbehave on purpose, or look at the served certificate).
pub async fn connect(addr: SocketAddr, host: &str, ca_bundles: &[impl AsRef<[u8]>]) -> Result<TlsStream<TcpStream>> {
    let config = Arc::new(client_config(ca_bundles)?);
    let name = ServerName::try_from(host.to_owned()).with_context(|| format!("{host} is not a server name"))?;
    let tcp = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with {host} at {addr}"))
}

/// The leaf certificate a fresh TLS connection to `addr` is served.
pub async fn served_leaf(
    addr: SocketAddr,
    host: &str,
    ca_bundles: &[impl AsRef<[u8]>],
) -> Result<CertificateDer<'static>> {
    let stream = connect(addr, host, ca_bundles).await?;
    let certificates = stream.get_ref().1.peer_certificates().context("no peer certificate")?;
    Ok(certificates.first().context("empty peer certificate chain")?.clone().into_owned())
}
