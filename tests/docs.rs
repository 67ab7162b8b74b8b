//! The documentation, kept true by the code (docs/dev/testing.md):
//!
//! - one source for each reference table: the annotation table of
//!   docs/annotations.md is rendered from `kube_once_core::contract`, the
//!   values table of charts/kube-once/README.md from the `# --` comments of
//!   charts/kube-once/values.yaml (helm-docs style). Each lives between
//!   `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`;
//!   `UPDATE_GOLDEN=1` rewrites the block, review the diff;
//! - README.md stays a front page (at most [`README_MAX_LINES`] lines);
//! - every relative link (and `#anchor`) in README.md, docs/ and the chart's
//!   README points at something that exists, and so does every repository
//!   path written as code (`crates/core/src/inject.rs`);
//! - every ```` ```console ```` example runs: its commands against the built
//!   binaries in a scratch directory, their output compared with the block
//!   (`support::console` has the syntax); `UPDATE_GOLDEN=1` writes the
//!   actual output into the block. Every other command block says why it
//!   cannot run offline, and docs/dev/testing.md lists those.

// Helpers outside #[test] functions are test code too: a failed expectation
// must stop the test with its message, which is what panics are for here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kube_once_core::ANNOTATIONS;
use serde_yaml_ng::Value;

/// The front page is for the person trying kube-once; the rest is in docs/.
const README_MAX_LINES: usize = 250;

fn repo() -> PathBuf {
    support::repo().to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ------------------------------------------------------ generated blocks --

/// Compares the block `name` of `doc` with `generated` (through the one
/// golden helper), or rewrites it with `UPDATE_GOLDEN=1`.
fn check_generated(doc: &Path, name: &str, source: &str, generated: &str) {
    let wanted = format!(
        "<!-- Generated from {source} by tests/docs.rs: edit the source, then run UPDATE_GOLDEN=1 cargo nextest run --test docs -->\n{generated}"
    );
    let (begin, end) = (format!("<!-- BEGIN generated: {name} -->"), format!("<!-- END generated: {name} -->"));
    support::golden::check_block(doc, &begin, &end, &wanted);
}

/// A Markdown table cell: one line, no unescaped `|`, and outside code
/// spans no `<` that Markdown would take for an HTML tag (`<fullname>-tls`).
fn cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|");
    one_line
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 0 { part.replace('<', "&lt;").replace('>', "&gt;") } else { part.to_owned() })
        .collect::<Vec<_>>()
        .join("`")
}

// ----------------------------------------------------- annotation table --

fn annotation_table() -> String {
    let mut table = String::from("| annotation | meaning | default |\n|---|---|---|\n");
    for doc in ANNOTATIONS {
        table.push_str(&format!(
            "| `{}{}` | {} | {} |\n",
            kube_once_core::PREFIX,
            doc.name,
            cell(doc.meaning),
            cell(doc.default)
        ));
    }
    table
}

#[test]
fn annotation_table_is_generated_from_the_contract() {
    check_generated(
        &repo().join("docs/annotations.md"),
        "annotations",
        "crates/core/src/contract.rs",
        &annotation_table(),
    );
}

// --------------------------------------------------------- values table --

/// One key of values.yaml as the table shows it.
#[derive(Debug, Clone, PartialEq)]
struct ValueDoc {
    /// Dotted path (`tls.selfManaged.validity`).
    key: String,
    /// The `# --` comment and the comment lines after it, joined.
    description: String,
    /// `# @default -- TEXT` in the comment, shown instead of the value.
    default_text: Option<String>,
    /// The value itself (`None` for a section: a map whose keys have rows).
    value: Option<Value>,
    /// A non-empty map (its keys are listed unless it is documented as a whole).
    is_map: bool,
}

/// The key of a `key: value` line, unquoted; `None` for anything else.
fn line_key(trimmed: &str) -> Option<String> {
    if let Some(quote) = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let rest = &trimmed[1..];
        let close = rest.find(quote)?;
        let after = rest[close + 1..].trim_start();
        return after.starts_with(':').then(|| rest[..close].to_owned());
    }
    let colon = trimmed
        .char_indices()
        .find(|&(i, c)| c == ':' && trimmed[i + 1..].chars().next().is_none_or(char::is_whitespace))?;
    let key = &trimmed[..colon.0];
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_owned())
}

/// The description of the key that follows a block of comment lines: from
/// the first line that is `# --` then a space (helm-docs' marker), every
/// comment line. A wrapped line that starts with a flag (`# --api-versions`)
/// continues the text: it is not a marker.
fn description(comments: &[&str]) -> (String, Option<String>) {
    let is_marker =
        |line: &&str| line.strip_prefix("# --").is_some_and(|rest| rest.is_empty() || rest.starts_with(' '));
    let Some(start) = comments.iter().position(is_marker) else {
        return (String::new(), None);
    };
    let mut text = cell(comments[start].trim_start_matches("# --"));
    let mut default_text = None;
    // `#   item` lines are a list: each item on its own line; lines indented
    // deeper than the item continue it.
    let mut item_indent: Option<usize> = None;
    for line in &comments[start + 1..] {
        let content = line.trim_start_matches('#');
        if let Some(shown) = content.trim().strip_prefix("@default --") {
            default_text = Some(shown.trim().to_owned());
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        let new_item = indent >= 2 && item_indent.is_none_or(|item| indent <= item);
        if new_item {
            item_indent = Some(indent);
        }
        text.push_str(if new_item { "<br>" } else { " " });
        text.push_str(&cell(content));
    }
    (text.trim().to_owned(), default_text)
}

fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |value, key| value.as_mapping()?.get(key.as_str()))
}

/// Every key of values.yaml in file order, with its `# --` description.
/// Nested maps are followed to any depth; lists, scalars, empty maps and
/// block scalars are values (their lines are not read as keys).
fn value_docs(text: &str) -> Vec<ValueDoc> {
    let root: Value = serde_yaml_ng::from_str(text).expect("values.yaml is YAML");
    let mut docs = Vec::new();
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut comments: Vec<&str> = Vec::new();
    let mut value_body_deeper_than: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        let indent = line.len() - line.trim_start().len();
        if let Some(key_indent) = value_body_deeper_than {
            let same_level_list_item = indent == key_indent && trimmed.starts_with('-');
            if trimmed.is_empty() || indent > key_indent || same_level_list_item {
                continue;
            }
            value_body_deeper_than = None;
        }
        if trimmed.is_empty() {
            comments.clear();
            continue;
        }
        if trimmed.starts_with('#') {
            comments.push(trimmed);
            continue;
        }
        let Some(key) = line_key(trimmed) else {
            comments.clear();
            continue;
        };
        while open.last().is_some_and(|(open_indent, _)| *open_indent >= indent) {
            open.pop();
        }
        let mut path: Vec<String> = open.iter().map(|(_, key)| key.clone()).collect();
        path.push(key.clone());
        let (description, default_text) = description(&comments);
        comments.clear();
        let value = lookup(&root, &path)
            .unwrap_or_else(|| panic!("values.yaml: key {} read from the text is not in the YAML", path.join(".")))
            .clone();
        let is_map = value.as_mapping().is_some_and(|map| !map.is_empty());
        if is_map {
            open.push((indent, key));
        } else {
            value_body_deeper_than = Some(indent);
        }
        docs.push(ValueDoc { key: path.join("."), description, default_text, value: Some(value), is_map });
    }
    // A documented map whose keys have no description of their own is one
    // row (its value is Kubernetes API data, like resources); a documented
    // map with documented keys is a section row above them.
    let mut rows: Vec<ValueDoc> = Vec::new();
    let mut whole: Option<String> = None;
    for (i, doc) in docs.iter().enumerate() {
        if whole.as_ref().is_some_and(|prefix| doc.key.starts_with(&format!("{prefix}."))) {
            continue;
        }
        whole = None;
        if !doc.is_map {
            rows.push(doc.clone());
            continue;
        }
        if doc.description.is_empty() {
            continue;
        }
        let prefix = format!("{}.", doc.key);
        let documented_keys =
            docs[i + 1..].iter().take_while(|d| d.key.starts_with(&prefix)).any(|d| !d.description.is_empty());
        if documented_keys {
            rows.push(ValueDoc { value: None, ..doc.clone() });
        } else {
            whole = Some(doc.key.clone());
            rows.push(doc.clone());
        }
    }
    rows
}

fn shown_default(doc: &ValueDoc) -> String {
    if let Some(text) = &doc.default_text {
        return cell(text);
    }
    let Some(value) = &doc.value else { return String::new() };
    format!("`{}`", flow(value).replace('|', "\\|"))
}

/// A value on one line, JSON-like, keys in the file's order.
fn flow(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => serde_json::to_string(s).expect("a string is JSON"),
        Value::Sequence(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Mapping(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("{}: {}", flow(k), flow(v))).collect::<Vec<_>>().join(", ")
        ),
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, flow(&tagged.value)),
    }
}

fn values_table(text: &str) -> String {
    let mut table = String::from("| key | default | description |\n|---|---|---|\n");
    for doc in value_docs(text) {
        let row = format!("| `{}` | {} | {} |", doc.key, shown_default(&doc), doc.description);
        table.push_str(&row.replace("|  |", "| |"));
        table.push('\n');
    }
    table
}

#[test]
fn values_table_is_generated_from_values_yaml() {
    let chart = repo().join("charts/kube-once");
    let table = values_table(&read(&chart.join("values.yaml")));
    check_generated(&chart.join("README.md"), "values", "charts/kube-once/values.yaml", &table);
}

/// Every key of values.yaml has its row, to any depth.
#[test]
fn values_table_covers_every_key() {
    fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value.as_mapping() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    let key = key.as_str().expect("string keys");
                    let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
                    leaves(&path, child, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let text = read(&repo().join("charts/kube-once/values.yaml"));
    let mut keys = Vec::new();
    leaves("", &serde_yaml_ng::from_str(&text).unwrap(), &mut keys);
    let rows: Vec<String> = value_docs(&text).into_iter().map(|doc| doc.key).collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|key| !rows.iter().any(|row| *row == **key || key.starts_with(&format!("{row}."))))
        .collect();
    assert!(missing.is_empty(), "values.yaml keys without a row: {missing:?}");
}

/// The generator on a values file with what charts grow: nesting, lists of
/// maps, block scalars, quoted keys, multi-line descriptions, `@default`.
#[test]
fn values_generator_handles_nested_keys_lists_and_maps() {
    let text = r#"
# -- Replicas.
replicaCount: 2
# -- Wrapped before a flag (`serve
# --preview-listen`), and a second
# -- marker is text too.
wrapped: 1
image:
  # -- Where from,
  # on two lines.
  repository: example/app
  pullPolicy: IfNotPresent
# -- Extra env, a list of maps.
extraEnv:
  - name: A
    value: "1"
sameLevel:
- name: B
  value: "2"
unrelated: x
# -- Free-form API data, one row.
resources:
  limits:
    memory: 128Mi
# -- A section:
#   one   the first,
#         on two lines
#   two   the second, `<code>` and <name>
webhook:
  # -- Deep.
  deep:
    deeper:
      # -- The deepest.
      value: true
  # -- A name.
  # @default -- the release name
  "name.with.dots": ""
  script: |
    echo key: not-a-key
  # -- After the block scalar.
  after: 1
  empty: {}
"#;
    let rows: Vec<(String, String, String)> =
        value_docs(text).iter().map(|doc| (doc.key.clone(), shown_default(doc), doc.description.clone())).collect();
    let expected = [
        ("replicaCount", "`2`", "Replicas."),
        ("wrapped", "`1`", "Wrapped before a flag (`serve --preview-listen`), and a second -- marker is text too."),
        ("image.repository", "`\"example/app\"`", "Where from, on two lines."),
        ("image.pullPolicy", "`\"IfNotPresent\"`", ""),
        ("extraEnv", "`[{\"name\": \"A\", \"value\": \"1\"}]`", "Extra env, a list of maps."),
        ("sameLevel", "`[{\"name\": \"B\", \"value\": \"2\"}]`", ""),
        ("unrelated", "`\"x\"`", ""),
        ("resources", "`{\"limits\": {\"memory\": \"128Mi\"}}`", "Free-form API data, one row."),
        ("webhook", "", "A section:<br>one the first, on two lines<br>two the second, `<code>` and &lt;name&gt;"),
        ("webhook.deep", "", "Deep."),
        ("webhook.deep.deeper.value", "`true`", "The deepest."),
        ("webhook.name.with.dots", "the release name", "A name."),
        ("webhook.script", "`\"echo key: not-a-key\\n\"`", ""),
        ("webhook.after", "`1`", "After the block scalar."),
        ("webhook.empty", "`{}`", ""),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(k, d, t)| (k.to_string(), d.to_string(), t.to_string())).collect();
    assert_eq!(rows, expected);
}

// ----------------------------------------------------- console examples --

/// Languages of blocks that hold commands: run (`console`), or marked as not run.
const COMMAND_LANGUAGES: &[&str] = &["console", "sh", "shell", "bash"];

fn relative(file: &Path) -> String {
    file.strip_prefix(repo()).unwrap().display().to_string()
}

/// Runs every console block of one Markdown file; returns the file with
/// each output that differs replaced by the actual one, and the differences
/// described.
fn run_console_blocks(file: &Path) -> (String, Vec<String>) {
    let text = read(file);
    let lines: Vec<&str> = text.lines().collect();
    let name = relative(file);
    let bin_dir = support::console::bin_dir(&support::binary());
    let mut files: Vec<(String, String)> = Vec::new();
    let mut replacements: Vec<(std::ops::Range<usize>, Vec<String>, usize)> = Vec::new();
    let mut differences = Vec::new();
    for fence in support::console::fences(&text) {
        if let Some(support::console::Marker::File(file_name)) = &fence.marker {
            files.push((file_name.clone(), fence.body.join("\n") + "\n"));
            continue;
        }
        if fence.language != "console" || matches!(fence.marker, Some(support::console::Marker::NotRun(_))) {
            continue;
        }
        let commands = match support::console::commands(&fence) {
            Ok(commands) => commands,
            Err(error) => {
                differences.push(format!("{name}:{}: console block: {error}", fence.line));
                continue;
            }
        };
        let scratch = support::console::scratch_dir(support::repo());
        for (file_name, content) in &files {
            std::fs::write(scratch.path().join(file_name), content).unwrap();
        }
        for command in commands {
            let actual = support::console::run(&command.text, scratch.path(), &bin_dir);
            if support::console::matches(&command.expected, &actual) {
                continue;
            }
            let (expected, actual_text) = (command.expected.join("\n") + "\n", actual.join("\n") + "\n");
            let diff = similar::TextDiff::from_lines(&expected, &actual_text)
                .unified_diff()
                .context_radius(3)
                .header("documented", "actual")
                .to_string();
            differences.push(format!(
                "{name}:{}: `$ {}` prints something else than the docs show:\n{diff}",
                command.line + 1,
                command.text
            ));
            replacements.push((command.expected_lines.clone(), actual, fence.indent));
        }
    }
    let mut regenerated = Vec::new();
    let mut at = 0;
    for (range, actual, indent) in replacements {
        regenerated.extend(lines[at..range.start].iter().map(|line| (*line).to_owned()));
        regenerated.extend(actual.iter().map(|line| format!("{}{line}", " ".repeat(indent)).trim_end().to_owned()));
        at = range.end;
    }
    regenerated.extend(lines[at..].iter().map(|line| (*line).to_owned()));
    let mut regenerated = regenerated.join("\n");
    if text.ends_with('\n') {
        regenerated.push('\n');
    }
    (regenerated, differences)
}

/// Every console example prints what the docs show.
#[test]
fn console_examples_print_what_the_docs_show() {
    let mut golden = support::golden::Golden::new();
    let mut ran = 0;
    for file in markdown_files() {
        let text = read(&file);
        ran += support::console::fences(&text)
            .iter()
            .filter(|fence| fence.language == "console" && fence.marker.is_none())
            .count();
        let (regenerated, differences) = run_console_blocks(&file);
        golden.check_described(&file, &regenerated, &differences.join("\n"));
    }
    golden.finish();
    assert!(ran >= 1, "no console example found: the harness reads nothing");
}

/// A command cut after a word to fit a table cell.
fn shortened(command: &str) -> String {
    const WIDTH: usize = 60;
    if command.chars().count() <= WIDTH {
        return command.to_owned();
    }
    let mut cut = String::new();
    for word in command.split(' ') {
        if cut.chars().count() + word.chars().count() >= WIDTH {
            break;
        }
        cut.push_str(word);
        cut.push(' ');
    }
    format!("{}...", cut.trim_end())
}

/// The command blocks that are not run, with why: one row each in
/// docs/dev/testing.md, so their number is seen and reviewed.
fn not_run_table() -> (String, Vec<String>) {
    let mut rows = String::new();
    let mut count = 0;
    let mut unmarked = Vec::new();
    for file in markdown_files() {
        let name = relative(&file);
        let fences = support::console::fences(&read(&file));
        for fence in &fences {
            if fence.language.is_empty() {
                unmarked.push(format!(
                    "{name}:{}: a fence without a language: name it (console, sh, yaml, text, ...)",
                    fence.line
                ));
                continue;
            }
            if !COMMAND_LANGUAGES.contains(&fence.language.as_str()) {
                continue;
            }
            match &fence.marker {
                Some(support::console::Marker::NotRun(reason)) => {
                    let first = fence
                        .body
                        .iter()
                        .map(|line| line.trim().trim_start_matches("$ "))
                        .find(|line| !line.is_empty() && !line.starts_with('#'))
                        .unwrap_or("");
                    let first = shortened(first.split("  #").next().unwrap_or("").trim());
                    rows.push_str(&format!("| {name} | `{}` | {} |\n", first.replace('|', "\\|"), cell(reason)));
                    count += 1;
                }
                _ if fence.language == "console" => {}
                _ => unmarked.push(format!(
                    "{name}:{}: a ```{} block that is not run: make it a ```console block with `$ ` commands and their output, or say why it cannot run offline with `<!-- not run: REASON -->` on the line before it",
                    fence.line, fence.language
                )),
            }
        }
    }
    let table = format!(
        "{count} command blocks are not run:\n\n| where | first command | why it is not run |\n|---|---|---|\n{rows}"
    );
    (table, unmarked)
}

#[test]
fn command_blocks_are_run_or_listed_as_not_run() {
    let (table, unmarked) = not_run_table();
    assert!(unmarked.is_empty(), "command blocks neither run nor marked:\n{}", unmarked.join("\n"));
    check_generated(&repo().join("docs/dev/testing.md"), "examples-not-run", "the not-run markers of the docs", &table);
}

/// The console syntax: elided lines, elided text, readers' notes, exit status.
#[test]
fn console_matching_reads_elisions_and_notes() {
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    let matches = |expected: &str, actual: &str| support::console::matches(&lines(expected), &lines(actual));
    assert!(matches("a\n...\nd", "a\nb\nc\nd"));
    assert!(matches("a\n...\nb", "a\nb"), "... stands for no line too");
    assert!(!matches("a\n...\nd", "a\nb\nc"));
    assert!(matches("key: ...,\"x\"", "key: 1a2b,\"x\""));
    assert!(!matches("key: ...,\"x\"", "key: 1a2b,\"y\""));
    assert!(matches("+ name: DATABASE_URL     # the app's env", "+ name: DATABASE_URL"));
    assert!(
        matches("+ # kept  # a YAML comment", "+ # kept  # a YAML comment"),
        "a note that is output matches as written"
    );
    assert!(
        matches("+ name: A     # a note", "+ name: A   # the file's own comment"),
        "a note stands in for a comment"
    );
    assert!(!matches("+ name: A     # a note", "+ name: B   # the file's own comment"));
    assert!(!matches("a", "a\nb"), "an extra line is a difference");
    let fence = &support::console::fences(
        "<!-- not run: needs a cluster -->\n```console\n$ kubectl get pods \\\n  -A\nout\n[exit status: 1]\n```\n",
    )[0];
    assert_eq!(fence.marker, Some(support::console::Marker::NotRun("needs a cluster".to_owned())));
    let commands = support::console::commands(fence).unwrap();
    assert_eq!(commands[0].text, "kubectl get pods \\\n  -A");
    assert_eq!(commands[0].expected, ["out", "[exit status: 1]"]);
    let scratch = tempfile::tempdir().unwrap();
    let output = support::console::run("echo out; echo err >&2; exit 3", scratch.path(), scratch.path());
    assert_eq!(output, ["out", "err", &support::console::exit_status_line(3)]);
}

// ------------------------------------------------------------ the README --

#[test]
fn readme_is_a_front_page() {
    let lines = read(&repo().join("README.md")).lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move the detail into docs/ (users, admins) or docs/dev/ (contributors) and link to it"
    );
}

// ----------------------------------------------------------------- links --

/// README.md, charts/kube-once/README.md and every Markdown file under docs/.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![repo().join("README.md"), repo().join("charts/kube-once/README.md")];
    walk(&repo().join("docs"), &mut files);
    files.sort();
    files
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// Inline link targets (`[text](target)`) and reference definitions
/// (`[name]: target`) outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let line = strip_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else { break };
            targets.push(after[..close].split_whitespace().next().unwrap_or("").to_owned());
            rest = &after[close..];
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('[')
            && let Some(close) = trimmed.find("]:")
        {
            targets.push(trimmed[close + 2..].split_whitespace().next().unwrap_or("").to_owned());
        }
    }
    targets
}

fn strip_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join("")
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

#[test]
fn relative_links_point_at_what_exists() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = read(&file);
        let dir = file.parent().unwrap();
        for target in link_targets(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').map_or((target.as_str(), None), |(p, f)| (p, Some(f)));
            let resolved = if path.is_empty() { file.clone() } else { dir.join(path) };
            let name = file.strip_prefix(repo()).unwrap().display().to_string();
            if !resolved.exists() {
                broken.push(format!("{name}: ({target}): {} does not exist", resolved.display()));
                continue;
            }
            if let Some(fragment) = fragment
                && resolved.extension().is_some_and(|ext| ext == "md")
                && !anchors(&read(&resolved)).contains(fragment)
            {
                broken.push(format!("{name}: ({target}): no heading with anchor #{fragment}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Top directories of the repository that docs name paths in.
const REPO_DIRS: &[&str] = &[
    "src/",
    "crates/",
    "tests/",
    "scripts/",
    "charts/",
    "docs/",
    "bench/",
    "benches/",
    "examples/",
    "webhook-config/",
    "fuzz/",
    ".ci/",
    "certs/",
];

/// A path written as code (`crates/core/src/inject.rs`) must exist: docs
/// that name moved files mislead every reader after them.
#[test]
fn repository_paths_in_docs_exist() {
    let mut missing = Vec::new();
    for file in markdown_files() {
        let text = read(&file);
        let dir = file.parent().unwrap();
        for line in prose_lines(&text) {
            for span in line.split('`').skip(1).step_by(2) {
                let is_path = REPO_DIRS.iter().any(|top| span.starts_with(top))
                    && !span.contains(|c: char| c.is_whitespace() || "<>*{}$".contains(c));
                if !is_path {
                    continue;
                }
                let path = span.split_once(':').map_or(span, |(path, _)| path);
                if !repo().join(path).exists() && !dir.join(path).exists() {
                    missing.push(format!("{}: `{span}`", file.strip_prefix(repo()).unwrap().display()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "paths named in the docs that do not exist:\n{}", missing.join("\n"));
}

#[test]
fn anchors_follow_github() {
    assert_eq!(anchor(" Exit codes"), "exit-codes");
    assert_eq!(anchor("`POST /preview`"), "post-preview");
    assert_eq!(anchor("Limits, timeouts, drain"), "limits-timeouts-drain");
    assert_eq!(anchor("Argo CD and Flux"), "argo-cd-and-flux");
}
