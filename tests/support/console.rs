//! The command examples of Markdown docs, read so a test can run them.
//!
//! A ```` ```console ```` block holds commands (`$ ` lines; a line ending in
//! `\` continues on the next) each followed by what it prints, stdout and
//! stderr as one stream, then `[exit status: N]` when N is not 0. In the
//! expected output:
//!
//! - a line `...` stands for any number of lines (none included);
//! - `...` inside a line stands for any text on that line;
//! - a reader's note at the end of a line (two or more spaces, then `# `)
//!   is left out of the comparison when the line does not match with it
//!   (and stands in for a comment the output has there).
//!
//! Every ```` ```sh ````, ```` ```shell ````, ```` ```bash ```` block, and a
//! ```` ```console ```` one that cannot run offline, says why on the line
//! before its fence: `<!-- not run: REASON -->`. A block whose fence is
//! preceded by `<!-- file: NAME -->` is a file the later console blocks of
//! the same document can read (the README's Deployment as `deploy.yaml`).

use std::path::{Path, PathBuf};

/// The exit status line a failing command's output ends with.
pub fn exit_status_line(code: i32) -> String {
    format!("[exit status: {code}]")
}

/// A fenced block of a Markdown file.
#[derive(Debug, Clone)]
pub struct Fence {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The info string's first word (`console`, `sh`, `yaml`; empty when none).
    pub language: String,
    /// The comment on the line before the fence, if any.
    pub marker: Option<Marker>,
    /// Spaces before the fence (a block inside a list item), cut from each body line.
    pub indent: usize,
    /// 0-based index of the first body line in the file.
    pub body_start: usize,
    /// The body, without the fence's indentation.
    pub body: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Marker {
    /// `<!-- not run: REASON -->`
    NotRun(String),
    /// `<!-- file: NAME -->`
    File(String),
}

/// Every fenced block of `text`, in order.
pub fn fences(text: &str) -> Vec<Fence> {
    let lines: Vec<&str> = text.lines().collect();
    let mut fences = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if !trimmed.starts_with("```") {
            i += 1;
            continue;
        }
        let indent = lines[i].len() - trimmed.len();
        let language = trimmed.trim_start_matches('`').split_whitespace().next().unwrap_or("").to_owned();
        let marker = lines[..i].iter().rev().find(|line| !line.trim().is_empty()).and_then(|line| marker(line));
        let body_start = i + 1;
        let mut end = body_start;
        while end < lines.len() && !lines[end].trim_start().starts_with("```") {
            end += 1;
        }
        let body = lines[body_start..end]
            .iter()
            .map(|line| line.get(indent..).unwrap_or(line.trim_start()).to_owned())
            .collect();
        fences.push(Fence { line: i + 1, language, marker, indent, body_start, body });
        i = end + 1;
    }
    fences
}

fn marker(line: &str) -> Option<Marker> {
    let inner = line.trim().strip_prefix("<!--")?.strip_suffix("-->")?.trim();
    if let Some(reason) = inner.strip_prefix("not run:") {
        return Some(Marker::NotRun(reason.trim().to_owned()));
    }
    inner.strip_prefix("file:").map(|name| Marker::File(name.trim().to_owned()))
}

/// One `$ ` command of a console block and the output written under it.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command as the shell reads it (continuation lines included).
    pub text: String,
    /// 0-based index in the file of the `$ ` line.
    pub line: usize,
    /// The expected output lines, and where they are in the file (0-based, end exclusive).
    pub expected: Vec<String>,
    pub expected_lines: std::ops::Range<usize>,
}

/// The commands of a console block; `Err` when it holds none, or text before the first.
pub fn commands(fence: &Fence) -> Result<Vec<Command>, String> {
    let mut commands: Vec<Command> = Vec::new();
    let mut continued = false;
    for (offset, line) in fence.body.iter().enumerate() {
        let at = fence.body_start + offset;
        if continued {
            let command = commands.last_mut().expect("a continued command");
            command.text.push('\n');
            command.text.push_str(line);
            continued = line.ends_with('\\');
            command.expected_lines = at + 1..at + 1;
            continue;
        }
        if let Some(text) = line.strip_prefix("$ ") {
            continued = text.ends_with('\\');
            commands.push(Command {
                text: text.to_owned(),
                line: at,
                expected: Vec::new(),
                expected_lines: at + 1..at + 1,
            });
            continue;
        }
        let Some(command) = commands.last_mut() else {
            return Err(format!("line {}: output before the first `$ ` command", at + 1));
        };
        command.expected.push(line.clone());
        command.expected_lines.end = at + 1;
    }
    if commands.is_empty() {
        return Err("no `$ ` command in it".to_owned());
    }
    Ok(commands)
}

/// Does `actual` (whole lines) match the `expected` lines with their elisions and notes?
pub fn matches(expected: &[String], actual: &[String]) -> bool {
    let mut memo = vec![vec![None; actual.len() + 1]; expected.len() + 1];
    lines_match(expected, actual, 0, 0, &mut memo)
}

fn lines_match(expected: &[String], actual: &[String], e: usize, a: usize, memo: &mut Vec<Vec<Option<bool>>>) -> bool {
    if let Some(known) = memo[e][a] {
        return known;
    }
    let result = match expected.get(e) {
        None => a == actual.len(),
        Some(line) if line.trim() == "..." => {
            (a..=actual.len()).any(|next| lines_match(expected, actual, e + 1, next, memo))
        }
        Some(line) => {
            a < actual.len() && line_matches(line, &actual[a]) && lines_match(expected, actual, e + 1, a + 1, memo)
        }
    };
    memo[e][a] = Some(result);
    result
}

/// One expected line against one actual line: `...` is any text; a trailing
/// reader's note is dropped when the whole line does not match.
pub fn line_matches(expected: &str, actual: &str) -> bool {
    let actual = actual.trim_end();
    if pattern_matches(expected.trim_end(), actual) {
        return true;
    }
    // The output may carry a comment of its own where the note is (YAML
    // keeps comments): the note stands in for it.
    without_note(expected).is_some_and(|bare| {
        pattern_matches(bare, actual) || without_note(actual).is_some_and(|own| pattern_matches(bare, own))
    })
}

fn without_note(line: &str) -> Option<&str> {
    let at = line.find("  # ").or_else(|| line.ends_with("  #").then(|| line.len() - 3))?;
    Some(line[..at].trim_end())
}

fn pattern_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let [first, middle @ .., last] = parts.as_slice() else { return pattern == text };
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    for part in middle {
        let Some(at) = rest.find(part) else { return false };
        rest = &rest[at + part.len()..];
    }
    rest.ends_with(last)
}

/// What the examples read from the checkout, linked into their scratch
/// directory. Only inputs: a directory an example writes into (`certs/`)
/// stays out, so nothing an example does lands in the checkout.
pub const LINKED: &[&str] = &["examples", "webhook-config", "charts", "tests"];

/// The directory a console block runs in, with [`LINKED`] linked in.
pub fn scratch_dir(repo: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for name in LINKED {
        std::os::unix::fs::symlink(repo.join(name), dir.path().join(name)).expect("a symlink in the scratch directory");
    }
    dir
}

/// Runs one command with `sh` in `dir`, the built binaries first on PATH, no
/// colour, no kube-once configuration from the environment, stdin empty,
/// within the waits' deadline: its output as written in a console block.
pub fn run(command: &str, dir: &Path, bin_dir: &Path) -> Vec<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.to_owned()];
    paths.extend(std::env::split_paths(&path));
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("exec 2>&1\n{command}"))
        .current_dir(dir)
        .env("PATH", std::env::join_paths(paths).expect("PATH joins"))
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .env_remove("TERM")
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KUBE_ONCE_") {
            shell.env_remove(name);
        }
    }
    let mut shell = tokio::process::Command::from(shell);
    shell.kill_on_drop(true);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let output = runtime
        .block_on(async { tokio::time::timeout(super::wait::DEADLINE, shell.output()).await })
        .unwrap_or_else(|_| {
            panic!(
                "`{command}` did not finish within {:?}: an example that starts a server or waits for input is marked <!-- not run: REASON -->",
                super::wait::DEADLINE
            )
        })
        .unwrap_or_else(|e| panic!("cannot run sh for `{command}`: {e}"));
    let mut lines: Vec<String> =
        String::from_utf8_lossy(&output.stdout).lines().map(|line| line.trim_end().to_owned()).collect();
    match output.status.code() {
        Some(0) => {}
        Some(code) => lines.push(exit_status_line(code)),
        None => lines.push(format!("[killed: {}]", output.status)),
    }
    lines
}

/// Where the binaries under test are (`kube-once`, `kube-once-pod`).
pub fn bin_dir(binary: &Path) -> PathBuf {
    binary.parent().expect("the binary is in a directory").to_owned()
}
