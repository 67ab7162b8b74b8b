//! `forget`: delete done-records, so the next pod start runs the command
//! again. Asks first on a terminal; elsewhere it needs `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{ArgGroup, Args};
use kube_once_lock::exit;
use kube_once_lock::history::Filter;

use super::history::{RecordsArgs, no_table, print, render_table, with_connection};

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true).args(["key", "image"])))]
pub struct ForgetArgs {
    #[command(flatten)]
    pub records: RecordsArgs,

    /// Forget the run of this key.
    #[arg(long)]
    pub key: Option<String>,

    /// Forget the runs of this image (with --key: only that key's run of it).
    #[arg(long)]
    pub image: Option<String>,

    /// Delete without asking (needed when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
}

/// Exit codes: 0 deleted, declined or nothing to delete; 64 usage (also:
/// no terminal to ask on and no `--yes`; a TLS setting that cannot verify
/// the server); 69 database unreachable or error.
pub fn run(args: ForgetArgs) -> ExitCode {
    let filter = Filter { key: args.key.clone(), image: args.image.clone() };
    if !args.yes && !std::io::stdin().is_terminal() {
        eprintln!(
            "kube-once forget: stdin is not a terminal, so there is no one to ask for confirmation; \
             check what would be deleted with `kube-once history {}`, then add --yes, or run it on a terminal (in a cluster: `kubectl debug -it` with the tools image, see docs/lock.md)",
            filter.describe()
        );
        return ExitCode::from(exit::USAGE);
    }
    let table = args.records.record_table.clone();
    with_connection("forget", &args.records, |mut connection| async move {
        let result = async {
            if !args.yes {
                let runs = connection.list(&table, &filter).await?;
                let attempts = connection.attempts(&table, &filter, u32::MAX).await?.len();
                let Some(runs) = runs else {
                    println!("{}", no_table(&table));
                    return Ok(ExitCode::SUCCESS);
                };
                if runs.is_empty() && attempts == 0 {
                    println!("no recorded run matches {}; nothing to delete", filter.describe());
                    return Ok(ExitCode::SUCCESS);
                }
                if !runs.is_empty() {
                    print(&render_table(&runs))?;
                }
                if !confirm(&format!(
                    "Delete these {} done-record(s) from {table} and {attempts} recorded attempt(s) (failures clear their backoff), so the next pod start runs the command again? [y/N] ",
                    runs.len()
                ))? {
                    println!("nothing deleted");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            match connection.delete(&table, &filter).await? {
                Some(count) => println!("deleted {count} done-record(s) from {table} matching {}", filter.describe()),
                None => println!("{}", no_table(&table)),
            }
            let attempts = connection.delete_attempts(&table, &filter).await?;
            if attempts > 0 {
                println!("deleted {attempts} recorded attempt(s) matching {}; no backoff holds", filter.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
        .await;
        connection.close().await;
        result
    })
}

/// Asks on stderr, reads one line from stdin: `y` or `yes` means yes.
fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr().lock();
    stderr.write_all(question.as_bytes())?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}
