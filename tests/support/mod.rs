//! Test helpers shared by several test binaries (`mod support;`).
// Each test binary compiles all of them but uses only its part.
#![allow(dead_code)]

pub mod databases;
pub mod pss;

use std::path::PathBuf;

/// The pod binary (`kube-once-pod`: lock, install), as shipped in the tools
/// image at `/pod/kube-once`. Cargo puts it beside `kube-once`; it is built
/// by the workspace's tests (crates/pod/tests).
pub fn pod_binary() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_kube-once"));
    let pod = server.with_file_name("kube-once-pod");
    assert!(pod.exists(), "{} is missing: run the workspace's tests (scripts/test.sh), which build it", pod.display());
    pod
}
