//! `kube-once install DIR`: copy this executable into the pod's shared emptyDir.
//!
//! Written to a temporary name in DIR and renamed, so a concurrent reader
//! never sees a half-written binary; running it again replaces the file with
//! identical content, so a restarted initContainer just succeeds.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The name the copy gets in the pod: the injected `kube-once-run` runs
/// `/kube-once-bin/kube-once lock -- ...`, whatever the source was called.
pub const BINARY_NAME: &str = "kube-once";

/// Copies the running executable into `dir`.
pub fn install_self(dir: &Path) -> Result<PathBuf> {
    let source = std::env::current_exe().context("cannot find the running executable (/proc/self/exe)")?;
    install(&source, dir)
}

/// Copies `source` to `dir/kube-once` with mode 0555, atomically.
pub fn install(source: &Path, dir: &Path) -> Result<PathBuf> {
    let target = dir.join(BINARY_NAME);
    let temporary = dir.join(format!(".{BINARY_NAME}.{}.tmp", std::process::id()));
    let copy = || -> Result<()> {
        let mut input = fs::File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut output = fs::File::create(&temporary).with_context(|| {
            format!("cannot write into {}: does the directory exist and is it writable?", dir.display())
        })?;
        std::io::copy(&mut input, &mut output).with_context(|| format!("cannot copy to {}", temporary.display()))?;
        output.flush()?;
        output.sync_all()?;
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o555))
            .with_context(|| format!("cannot make {} executable", temporary.display()))?;
        fs::rename(&temporary, &target)
            .with_context(|| format!("cannot rename {} to {}", temporary.display(), target.display()))
    };
    copy().inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_atomically_and_idempotently() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let source = dir.path().join("source");
        fs::write(&source, b"#!/bin/sh\necho hi\n")?;
        let out = dir.path().join("bin");
        fs::create_dir(&out)?;
        for _ in 0..2 {
            let target = install(&source, &out)?;
            assert_eq!(fs::read(&target)?, fs::read(&source)?);
            assert_eq!(fs::metadata(&target)?.permissions().mode() & 0o7777, 0o555);
        }
        let names: Vec<_> = fs::read_dir(&out)?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kube-once")], "no temporary file left behind");
        Ok(())
    }

    #[test]
    fn missing_directory_says_so() {
        let error = install(Path::new("/proc/self/exe"), Path::new("/nonexistent/dir")).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("/nonexistent/dir")));
    }
}
