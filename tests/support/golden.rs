//! Golden files: what a test produces, compared exactly with the file
//! checked in; `UPDATE_GOLDEN=1` rewrites the files instead (review the diff).

use std::path::{Path, PathBuf};

/// Collects every mismatch of one test, so one run shows them all.
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

    /// Compares `actual` with the file at `path` (or writes it, when updating).
    pub fn check(&mut self, path: &Path, actual: &str) {
        self.checked.push(path.to_owned());
        if self.update {
            std::fs::write(path, actual).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            return;
        }
        let expected = match std::fs::read_to_string(path) {
            Ok(expected) => expected,
            Err(error) => {
                self.mismatches.push(format!(
                    "{}: cannot read it ({error}); UPDATE_GOLDEN=1 writes it. Actual:\n{actual}",
                    path.display()
                ));
                return;
            }
        };
        if expected != actual {
            let line = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
            let line = line.unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            let at = |text: &str| text.lines().nth(line).unwrap_or("<end of file>").to_owned();
            self.mismatches.push(format!(
                "{}: differs from line {} (UPDATE_GOLDEN=1 to regenerate, then review the diff)\n  expected: {}\n  actual:   {}\nActual:\n{actual}",
                path.display(),
                line + 1,
                at(&expected),
                at(actual)
            ));
        }
    }

    /// Fails the test with every mismatch, if any; otherwise returns the files checked.
    pub fn finish(self) -> Vec<PathBuf> {
        assert!(self.mismatches.is_empty(), "{}", self.mismatches.join("\n\n"));
        self.checked
    }
}
