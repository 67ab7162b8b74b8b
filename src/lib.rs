//! The `kube-once` command line: every subcommand's arguments, turned into
//! the plain options of the library crates (`kube_once_core`,
//! `kube_once_server`, and through `kube_once_pod` the lock runner). Public
//! so tests can parse the chart's arguments with the real parser.

pub mod cmd;
