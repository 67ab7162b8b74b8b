use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kube_once::cmd::Cli::parse();
    kube_once_pod::cmd::logging::init(&cli.logging);
    kube_once::cmd::run(cli)
}
