use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = kube_once::cli::Cli::parse();
    kube_once::cli::init_logging(cli.log_format);
    kube_once::cli::run(cli)
}
