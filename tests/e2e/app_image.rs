//! The app images' stand-in: this machine, with `migrate.sh` linked under
//! the name of each case's command (`superset`, `python`, `bundle`, ...) in a
//! directory put first on PATH, as an image's ENV would. Each image reference
//! "ships" one more schema version than the previous one, so a rollout to a
//! new tag has a real migration to run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::corpus::fixtures_dir;
use crate::kubelet::Image;

pub struct AppImages {
    bin_dir: PathBuf,
    pub run_log: PathBuf,
    versions: BTreeMap<String, usize>,
    /// How long the migration works between its check and its writes.
    pub migration_seconds: f64,
}

impl AppImages {
    pub fn new(dir: &Path) -> Result<Self> {
        let bin_dir = dir.join("app-image-bin");
        std::fs::create_dir_all(&bin_dir).with_context(|| format!("cannot create {}", bin_dir.display()))?;
        Ok(Self { bin_dir, run_log: dir.join("runs.log"), versions: BTreeMap::new(), migration_seconds: 0.5 })
    }

    /// Makes `program` (the first word of a run command) run the migration stand-in.
    pub fn provide(&self, program: &str) -> Result<()> {
        let link = self.bin_dir.join(program);
        if !link.exists() {
            std::os::unix::fs::symlink(fixtures_dir().join("migrate.sh"), &link)
                .with_context(|| format!("cannot link {}", link.display()))?;
        }
        Ok(())
    }

    /// The stand-in for `image`: a new reference ships the next schema version.
    pub fn image(&mut self, image: &str) -> Image {
        let next = self.versions.len() + 1;
        let version = *self.versions.entry(image.to_owned()).or_insert(next);
        image_env(
            &self.bin_dir,
            &self.run_log,
            [
                ("APP_SCHEMA_VERSION", version.to_string()),
                ("APP_MIGRATION_SECONDS", self.migration_seconds.to_string()),
            ],
        )
    }

    /// Executions of the migration so far.
    pub fn runs(&self) -> usize {
        count_runs(&self.run_log)
    }
}

/// An app image whose `flask` is one fixture script (a migration that
/// fails, one that holds the lock until released), for the sequences that
/// follow a single rollout.
pub struct ScriptedApp {
    bin_dir: PathBuf,
    run_log: PathBuf,
}

impl ScriptedApp {
    pub fn new(dir: &Path, script: &str) -> Result<Self> {
        let bin_dir = dir.join("app-image-bin");
        std::fs::create_dir_all(&bin_dir).with_context(|| format!("cannot create {}", bin_dir.display()))?;
        let link = bin_dir.join("flask");
        std::os::unix::fs::symlink(fixtures_dir().join(script), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
        Ok(Self { bin_dir, run_log: dir.join("runs.log") })
    }

    /// The image, with `env` for the script.
    pub fn image<const N: usize>(&self, env: [(&str, String); N]) -> Image {
        image_env(&self.bin_dir, &self.run_log, env)
    }

    /// Executions of the migration so far.
    pub fn runs(&self) -> usize {
        count_runs(&self.run_log)
    }
}

/// An image whose PATH starts with `bin_dir` and whose migration logs each
/// run to `run_log`, with `extra` variables.
fn image_env<const N: usize>(bin_dir: &Path, run_log: &Path, extra: [(&str, String); N]) -> Image {
    let host_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned());
    let mut env = vec![
        ("PATH".to_owned(), format!("{}:{host_path}", bin_dir.display())),
        ("APP_RUN_LOG".to_owned(), run_log.display().to_string()),
    ];
    env.extend(extra.into_iter().map(|(name, value)| (name.to_owned(), value)));
    Image { env, ..Image::default() }
}

fn count_runs(run_log: &Path) -> usize {
    std::fs::read_to_string(run_log).map(|log| log.lines().count()).unwrap_or(0)
}
