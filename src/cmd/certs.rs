//! `kube-once certs`: development certificates for the webhook Service.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube_once_server::certs;

use super::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// The webhook Service name.
    #[arg(long, default_value = "kube-once")]
    pub service: String,

    /// The webhook Service namespace.
    #[arg(long, default_value = "kube-once")]
    pub namespace: String,

    /// Extra DNS names or IP addresses for the serving certificate.
    #[arg(long = "san")]
    pub extra_sans: Vec<String>,

    /// Where ca.crt, tls.crt and tls.key are written.
    #[arg(long, default_value = "certs")]
    pub out_dir: PathBuf,

    /// Certificate lifetime.
    #[arg(long, value_parser = parse_duration, default_value = "365d")]
    pub validity: humantime::Duration,
}

pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    let mut names = certs::service_dns_names(&args.service, &args.namespace);
    names.extend(args.extra_sans.iter().filter(|san| !names.contains(san)).cloned().collect::<Vec<_>>());
    let bundle = certs::generate(&names, args.validity.into())?;
    certs::write_bundle(&bundle, &args.out_dir)?;

    eprintln!(
        "kube-once: wrote ca.crt and tls.crt (0644) and the private key tls.key (0600) into {} for {}",
        args.out_dir.display(),
        names.join(", ")
    );
    eprintln!("kube-once: the caBundle (base64 of ca.crt) follows on stdout");
    let ca_bundle = base64_simd::STANDARD.encode_to_string(&bundle.ca_pem);
    writeln!(std::io::stdout(), "{ca_bundle}").context("cannot write the caBundle to stdout")
}
