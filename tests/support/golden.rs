//! Golden files: what a test produces, compared exactly with what is checked
//! in (a whole file, or a generated block inside one); `UPDATE_GOLDEN=1`
//! rewrites them instead (review the diff like code).
//!
//! The one golden helper of every test binary: the root's (`support::golden`)
//! and the core crate's (`crates/core/tests`, through
//! `#[path = "../../../tests/support/golden.rs"] mod golden;`). So it stays
//! self-contained: the standard library only, nothing of `support`, no
//! `env!` of one package.

// Included whole by several test crates, each using its part.
#![allow(dead_code)]
// A mismatch fails the calling test with the reason: that is what panics are for here.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

/// Collects every mismatch of one test, so one run shows them all; fails the
/// test with them at [`Golden::finish`] (or when dropped unfinished).
pub struct Golden {
    update: bool,
    checked: Vec<PathBuf>,
    mismatches: Vec<String>,
}

impl Default for Golden {
    fn default() -> Self {
        Self::new()
    }
}

impl Golden {
    pub fn new() -> Self {
        Self { update: std::env::var_os("UPDATE_GOLDEN").is_some(), checked: Vec::new(), mismatches: Vec::new() }
    }

    /// Compares `actual` with the whole file at `path` (or writes it, when updating).
    pub fn check(&mut self, path: &Path, actual: &str) {
        self.checked.push(path.to_owned());
        let expected = match std::fs::read_to_string(path) {
            Ok(expected) => expected,
            Err(_) if self.update => String::new(),
            Err(error) => {
                self.mismatches.push(format!(
                    "{}: cannot read it ({error}); UPDATE_GOLDEN=1 writes it. Actual:\n{actual}",
                    path.display()
                ));
                return;
            }
        };
        if expected == actual {
            return;
        }
        if self.update {
            write(path, actual);
            return;
        }
        self.mismatches.push(mismatch(&path.display().to_string(), &expected, actual));
    }

    /// Compares `actual` with the text of `path` between the line `begin`
    /// and the marker `end` (a generated block in a hand-written file), or
    /// rewrites only that block, when updating.
    pub fn check_block(&mut self, path: &Path, begin: &str, end: &str, actual: &str) {
        self.checked.push(path.to_owned());
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                self.mismatches.push(format!("{}: cannot read it ({error})", path.display()));
                return;
            }
        };
        let begin_line = format!("{begin}\n");
        let (Some(start), Some(stop)) = (text.find(&begin_line), text.find(end)) else {
            self.mismatches.push(format!(
                "{} has no `{begin}` ... `{end}` block: add the two marker lines where the generated text goes",
                path.display()
            ));
            return;
        };
        if stop < start {
            self.mismatches.push(format!("{}: `{end}` comes before `{begin}`", path.display()));
            return;
        }
        let block_start = start + begin_line.len();
        let current = &text[block_start..stop];
        if current == actual {
            return;
        }
        if self.update {
            write(path, &format!("{}{actual}{}", &text[..block_start], &text[stop..]));
            return;
        }
        self.mismatches.push(mismatch(&format!("{}, the block after `{begin}`", path.display()), current, actual));
    }

    /// Compares a hand-written file with `regenerated`, the same file with
    /// every generated part brought up to date, where the caller has already
    /// described each difference readably (`differences`); rewrites the file
    /// with `regenerated`, when updating.
    pub fn check_described(&mut self, path: &Path, regenerated: &str, differences: &str) {
        self.checked.push(path.to_owned());
        let current = match std::fs::read_to_string(path) {
            Ok(current) => current,
            Err(error) => {
                self.mismatches.push(format!("{}: cannot read it ({error})", path.display()));
                return;
            }
        };
        if current == regenerated {
            return;
        }
        if self.update {
            write(path, regenerated);
            return;
        }
        self.mismatches
            .push(format!("{differences}\n(UPDATE_GOLDEN=1 rewrites {}; then review the diff)", path.display()));
    }

    /// Fails the test with every mismatch, if any; otherwise returns the files checked.
    pub fn finish(mut self) -> Vec<PathBuf> {
        let mismatches = std::mem::take(&mut self.mismatches);
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
        std::mem::take(&mut self.checked)
    }
}

impl Drop for Golden {
    /// A test that forgot [`Golden::finish`] still fails on a mismatch.
    fn drop(&mut self) {
        if !self.mismatches.is_empty() && !std::thread::panicking() {
            panic!("{}", self.mismatches.join("\n\n"));
        }
    }
}

/// One comparison, for a test with a single golden file.
pub fn check(path: &Path, actual: &str) {
    let mut golden = Golden::new();
    golden.check(path, actual);
    golden.finish();
}

/// [`Golden::check_block`], for a test with a single generated block.
pub fn check_block(path: &Path, begin: &str, end: &str, actual: &str) {
    let mut golden = Golden::new();
    golden.check_block(path, begin, end, actual);
    golden.finish();
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// What differs, where, and the whole new text (what `UPDATE_GOLDEN=1` would write).
fn mismatch(what: &str, expected: &str, actual: &str) -> String {
    let line = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
    let line = line.unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    let at = |text: &str| text.lines().nth(line).unwrap_or("<end>").to_owned();
    format!(
        "{what}: differs from line {} (UPDATE_GOLDEN=1 rewrites it; then review the diff)\n  \
         expected: {}\n  actual:   {}\nActual:\n{actual}",
        line + 1,
        at(expected),
        at(actual)
    )
}
