//! Certificates for the webhook: a CA and a serving certificate made with
//! rcgen. Used by `kube-once certs`, by `serve` when no certificate is given
//! (in memory), and by self-managed TLS.

use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::cli::CertsArgs;

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
pub fn generate(names: &[String], validity: Duration) -> anyhow::Result<CertBundle> {
    let now = time::OffsetDateTime::now_utc();
    let not_after = now + validity;

    let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name = distinguished_name("kube-once CA");
    // The CA outlives the leaf so a renewed leaf can be signed by the same CA.
    ca_params.not_before = now - time::Duration::minutes(5);
    ca_params.not_after = not_after + validity;
    let ca_cert = ca_params.self_signed(&ca_key).context("cannot self-sign the CA")?;

    let key = KeyPair::generate().context("cannot generate the serving key")?;
    let mut params = CertificateParams::new(names.to_vec()).context("invalid certificate subject names")?;
    params.distinguished_name = distinguished_name(names.first().map(String::as_str).unwrap_or("kube-once"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = not_after;
    let issuer = Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer).context("cannot sign the serving certificate")?;

    Ok(CertBundle { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("certs is not built yet")
}
