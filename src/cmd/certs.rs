//! `kube-once certs`: development certificates for the webhook Service.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use kube_once_server::certs;

use super::output::{Output, print_value};
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

    /// What to print on stdout: the caBundle alone (text), or one JSON or YAML value (docs/cli.md).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
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
    let ca_bundle = base64_simd::STANDARD.encode_to_string(&bundle.ca_pem);
    if args.output != Output::Text {
        let file = |name: &str| args.out_dir.join(name).display().to_string();
        let written = serde_json::json!({
            "caBundle": ca_bundle,
            "dnsNames": names,
            "files": {"ca.crt": file("ca.crt"), "tls.crt": file("tls.crt"), "tls.key": file("tls.key")},
        });
        return print_value(args.output, &written);
    }
    eprintln!("kube-once: the caBundle (base64 of ca.crt) follows on stdout");
    writeln!(std::io::stdout(), "{ca_bundle}").context("cannot write the caBundle to stdout")
}
