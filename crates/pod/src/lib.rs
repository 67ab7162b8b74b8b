//! The command layer of the pod binary's subcommands (`lock`, `install`, `history`, `forget`):
//! their arguments, and how those become the plain options of
//! [`kube_once_lock`]. The full `kube-once` command line reuses it, so both
//! binaries take exactly the same arguments.

pub mod cmd;
