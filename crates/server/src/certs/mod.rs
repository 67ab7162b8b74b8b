//! Certificates for the webhook: a CA and a serving certificate made with
//! rcgen. Used by `kube-once certs`, by `serve` when no certificate is given
//! (in memory), and by self-managed TLS.

pub mod kube;
pub mod self_managed;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM material: what a Secret of type kubernetes.io/tls holds.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("CertBundle")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// DNS names the API server uses to reach the webhook Service.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![format!("{service}.{namespace}.svc"), format!("{service}.{namespace}.svc.cluster.local")]
}

/// A fresh CA and a serving certificate for `names`, valid from now for `validity`.
/// The CA lives twice as long as the certificate, so it stays trusted while a
/// renewed certificate signed by it is rolled out by hand.
pub fn generate(names: &[String], validity: Duration) -> anyhow::Result<CertBundle> {
    generate_at(names, time::OffsetDateTime::now_utc(), validity, validity.saturating_mul(2))
}

/// How far back certificates are dated, so that a peer whose clock is a little
/// behind ours already accepts a certificate made just now.
pub const BACKDATE: time::Duration = time::Duration::minutes(5);

/// A fresh CA (valid for `ca_validity`) and a serving certificate for `names`
/// (valid for `validity`), both issued at `now` and backdated by [`BACKDATE`].
pub fn generate_at(
    names: &[String],
    now: time::OffsetDateTime,
    validity: Duration,
    ca_validity: Duration,
) -> anyhow::Result<CertBundle> {
    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name = distinguished_name("kube-once CA");
    ca_params.not_before = now - BACKDATE;
    ca_params.not_after = now + ca_validity;
    let ca_cert = ca_params.self_signed(&ca_key).context("cannot self-sign the CA")?;

    let key = KeyPair::generate().context("cannot generate the serving key")?;
    let mut params = CertificateParams::new(names.to_vec()).context("invalid certificate subject names")?;
    params.distinguished_name = distinguished_name(names.first().map(String::as_str).unwrap_or("kube-once"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).context("cannot sign the serving certificate")?;

    Ok(CertBundle { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// `kube-once certs`: write ca.crt, tls.crt and tls.key into --out-dir, print
/// the caBundle (base64 of ca.crt) on stdout and where the files went on stderr.
/// Writes `ca.crt` and `tls.crt` (mode 0644) and `tls.key` (0600) into `dir`, which is
/// created when missing (`kube-once certs`).
pub fn write_bundle(bundle: &CertBundle, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    write_file(&dir.join("ca.crt"), &bundle.ca_pem, 0o644)?;
    write_file(&dir.join("tls.crt"), &bundle.cert_pem, 0o644)?;
    write_file(&dir.join("tls.key"), &bundle.key_pem, 0o600)
}

/// Write `contents` with `mode`, replacing any earlier file (and its mode).
fn write_file(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // The mode above applies only to a new file; a key left by an earlier run keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
