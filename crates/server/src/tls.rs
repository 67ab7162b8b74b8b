//! The serving certificate: a hot-swappable [`CertStore`], the rustls server
//! configuration around it, and the poller that reloads certificate files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::certs::CertBundle;

/// The crypto provider of every TLS endpoint of the server, chosen explicitly
/// (ring: builds for musl with a plain C compiler) rather than taken from a
/// process-wide default that some other dependency might install.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The live serving certificate and key.
///
/// Every TLS handshake asks the store for the current pair; [`CertStore::replace`]
/// swaps in a new one atomically. Connections already established keep the
/// certificate they were handshaken with, new ones get the new pair. Sources
/// of certificates (files polled by [`watch_files`], self-managed TLS) call
/// `replace` whenever they have a newer pair.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl CertStore {
    /// A store serving `cert_pem` (leaf first, then any intermediates) with `key_pem`.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Self> {
        let provider = crypto_provider();
        let key = certified_key(&provider, cert_pem, key_pem)?;
        Ok(Self { current: ArcSwap::from_pointee(key), provider })
    }

    /// A store serving the serving certificate of `bundle` (the CA is not sent:
    /// clients hold it as their trust root, the `caBundle`).
    pub fn from_bundle(bundle: &CertBundle) -> anyhow::Result<Self> {
        Self::from_pem(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes())
    }

    /// Serve `cert_pem` and `key_pem` from the next handshake on.
    ///
    /// The pair is checked first (both parse, the key matches the
    /// certificate): on error the current pair stays in place, so a
    /// half-written or mismatched pair never replaces a good one.
    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<()> {
        let key = certified_key(&self.provider, cert_pem, key_pem)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// [`CertStore::replace`] with the serving certificate of `bundle`.
    pub fn replace_bundle(&self, bundle: &CertBundle) -> anyhow::Result<()> {
        self.replace(bundle.cert_pem.as_bytes(), bundle.key_pem.as_bytes())
    }

    /// DER of the leaf certificate currently served.
    pub fn current_leaf_der(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn certified_key(provider: &CryptoProvider, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("the certificate is not valid PEM")?;
    anyhow::ensure!(!chain.is_empty(), "the certificate PEM holds no CERTIFICATE block");
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("the private key is not a valid PEM private key")?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .context("the private key cannot be used for signing (unsupported algorithm?)")?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .context("the private key does not belong to the certificate (is one of the files half-written?)")?;
    Ok(certified)
}

/// rustls server configuration: TLS 1.2 and 1.3 only, no client
/// certificates, HTTP/1.1 (what the API server speaks to webhooks), the
/// certificate taken from `store` at each handshake.
pub fn server_config(store: Arc<CertStore>) -> anyhow::Result<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the TLS provider does not support TLS 1.2 and 1.3")?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A certificate and key file pair, as mounted from a Secret.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Both files' contents and a digest of them.
    async fn read(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>, [u8; 32])> {
        let cert = read(&self.cert).await?;
        let key = read(&self.key).await?;
        let digest = Sha256::new().chain_update(&cert).chain_update([0]).chain_update(&key).finalize().into();
        Ok((cert, key, digest))
    }

    /// A store serving the files' current content; fails with a message naming the files.
    pub async fn load(&self) -> anyhow::Result<CertStore> {
        let (cert, key, _) = self.read().await?;
        CertStore::from_pem(&cert, &key).with_context(|| {
            format!(
                "cannot serve {} with {}; give a PEM certificate and its matching PEM private key",
                self.cert.display(),
                self.key.display()
            )
        })
    }
}

async fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    tokio::fs::read(path).await.with_context(|| format!("cannot read {}", path.display()))
}

/// Re-read `files` every `interval` and swap their content into `store` when
/// it changed. Polling with a digest, not file watches: Kubernetes updates
/// Secret volumes by swapping a symlink, which inotify on the file misses. A
/// pair that does not load (half-written, key not matching) is logged once
/// and the current certificate stays; the next change is tried again. The
/// first read happens at once, so a change made after `store` was loaded
/// and before this started is not missed.
pub async fn watch_files(store: Arc<CertStore>, files: CertFiles, interval: Duration) {
    let mut last_seen = None;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (cert, key, digest) = match files.read().await {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "certificate files unreadable; still serving the current certificate"
                );
                continue;
            }
        };
        if last_seen == Some(digest) {
            continue;
        }
        last_seen = Some(digest);
        let served = store.current_leaf_der();
        match store.replace(&cert, &key) {
            Ok(()) if store.current_leaf_der() != served => {
                tracing::info!(cert = %files.cert.display(), "certificate files changed; now serving the new certificate")
            }
            Ok(()) => {}
            Err(error) => tracing::warn!(
                cert = %files.cert.display(),
                key = %files.key.display(),
                error = format!("{error:#}"),
                "certificate files changed but do not load; still serving the previous certificate"
            ),
        }
    }
}
