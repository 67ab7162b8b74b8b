//! What `preview -o yaml` may do to the lines of a document it changes: add
//! lines, and change a line only where docs/preview.md says it must (a flow
//! collection that grows, its `,` included; an empty `{}`, `[]` or `null`
//! that gets content; an existing `kube-once.io/status` line). Self-contained:
//! the core crate's tests include it too.

/// `Err` with the first hunk of `before` → `after` that changes or removes
/// a line in another way, for `name`'s failure message.
pub fn only_added_lines(name: &str, before: &str, after: &str) -> Result<(), String> {
    // Raw Myers: a shortest edit script, so lines only added never show as moved.
    let diff = similar::TextDiff::configure().algorithm(similar::Algorithm::RawMyers).diff_lines(before, after);
    let unified = diff.unified_diff();
    for hunk in unified.iter_hunks() {
        let (mut deleted, mut inserted) = (Vec::new(), Vec::new());
        for change in hunk.iter_changes() {
            match change.tag() {
                similar::ChangeTag::Delete => deleted.push(change.value()),
                similar::ChangeTag::Insert => inserted.push(change.value()),
                similar::ChangeTag::Equal => {}
            }
        }
        if let Some(line) = deleted.iter().find(|line| !inserted.iter().any(|new| explains(new, line))) {
            let line = line.trim_end();
            return Err(format!(
                "{name}: the line `{line}` is changed or removed, not only added to:\n{}",
                hunk.to_string().trim_end()
            ));
        }
    }
    Ok(())
}

/// Whether `new` may stand where `old` was.
fn explains(new: &str, old: &str) -> bool {
    let (new, old) = (new.trim_end_matches(['\n', '\r']), old.trim_end_matches(['\n', '\r']));
    // The existing status is replaced by the new one.
    let status = "kube-once.io/status";
    if new.contains(status) && old.contains(status) {
        return true;
    }
    // A flow collection that grows: `old` with something inserted.
    if !old.trim().is_empty() && inserted(old, new) {
        return true;
    }
    // An empty value that gets content: in block context it becomes a block
    // (`key: {}` → `key:`, or, on a line of its own, `{}` → the content), in
    // a flow collection a flow collection (`"key": null,` → `"key": {...},`).
    let empties = ["{}", "[]", "null", "~"];
    empties.contains(&old.trim())
        || empties.iter().any(|empty| {
            old.trim_end().strip_suffix(empty).and_then(|o| o.strip_suffix(' ')) == Some(new.trim_end())
                || old.split_once(empty).is_some_and(|(a, b)| inserted(&format!("{a}{b}"), new))
        })
}

/// Whether `new` is `old` with something inserted in one place.
fn inserted(old: &str, new: &str) -> bool {
    let prefix = old.bytes().zip(new.bytes()).take_while(|(a, b)| a == b).count();
    let suffix = old.bytes().rev().zip(new.bytes().rev()).take_while(|(a, b)| a == b).count();
    new.len() > old.len() && prefix + suffix >= old.len()
}
