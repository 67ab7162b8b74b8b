use std::process::ExitCode;

use clap::Parser;

#[cfg(feature = "alloc-mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "alloc-jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = kube_once::cmd::Cli::parse();
    kube_once_pod::cmd::logging::init(&cli.logging);
    kube_once::cmd::run(cli)
}
