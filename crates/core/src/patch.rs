//! The RFC 6902 patch from the admitted Deployment to the desired one, built
//! as explicit operations on the few places injection touches (never a diff
//! of whole objects: its size and cost follow the change, not the object).
//! Keys are visited in sorted order, so the same input gives the same patch.

use std::collections::BTreeSet;

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

/// Maps whose entries are patched one by one (other keys stay untouched).
const TEMPLATE_MAPS: [(&str, &str); 2] = [("metadata", "annotations"), ("spec", "nodeSelector")];
/// Lists where kube-once removes and appends items.
const TEMPLATE_LISTS: [&str; 3] = ["initContainers", "volumes", "tolerations"];

/// Operations turning `before` into `after`, two pod templates (at
/// `/spec/template`) that may differ only where injection writes. `after`
/// is consumed: the values the patch adds are moved into it, not copied.
pub fn template_patch(before: &Value, mut after: Value) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let base = ["spec", "template"];
    // `metadata: null` is replaced whole, like an absent one is added whole.
    if !before.get("metadata").is_some_and(Value::is_object) || !after.get("metadata").is_some_and(Value::is_object) {
        whole(&mut ops, &path(&base, "metadata"), before.get("metadata"), take(&mut after, "metadata"));
    }
    for (parent, map) in TEMPLATE_MAPS {
        let (Some(before_parent), Some(after_parent)) = (before.get(parent), after.get_mut(parent)) else { continue };
        let at = [base[0], base[1], parent];
        map_entries(&mut ops, &path(&at, map), before_parent.get(map), take(after_parent, map));
    }
    if let (Some(before_spec), Some(after_spec)) = (before.get("spec"), after.get_mut("spec")) {
        for list in TEMPLATE_LISTS {
            list_items(
                &mut ops,
                &path(&["spec", "template", "spec"], list),
                before_spec.get(list),
                take(after_spec, list),
            );
        }
    }
    ops
}

/// `value[key]` moved out of `value` (`None` when absent).
fn take(value: &mut Value, key: &str) -> Option<Value> {
    value.as_object_mut().and_then(|object| object.remove(key))
}

/// A JSON pointer from unescaped segments: `~` becomes `~0` and `/` becomes
/// `~1` (RFC 6901), e.g. `kube-once.io/status` → `kube-once.io~1status`.
pub fn pointer(segments: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(segments.iter().map(|s| Token::new(*s)))
}

fn path(parent: &[&str], last: &str) -> Vec<String> {
    parent.iter().map(|s| (*s).to_owned()).chain(std::iter::once(last.to_owned())).collect()
}

fn at(path: &[String], last: Option<&str>) -> PointerBuf {
    let mut segments: Vec<&str> = path.iter().map(String::as_str).collect();
    segments.extend(last);
    pointer(&segments)
}

/// Add, remove or replace a field as a whole.
fn whole(ops: &mut Vec<PatchOperation>, path: &[String], before: Option<&Value>, after: Option<Value>) {
    let path = at(path, None);
    match (before, after) {
        (None, Some(value)) => ops.push(PatchOperation::Add(AddOperation { path, value })),
        (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation { path })),
        (Some(old), Some(new)) if *old != new => {
            ops.push(PatchOperation::Replace(ReplaceOperation { path, value: new }))
        }
        _ => {}
    }
}

/// Entry by entry when both sides are maps, otherwise the field as a whole.
fn map_entries(ops: &mut Vec<PatchOperation>, path: &[String], before: Option<&Value>, after: Option<Value>) {
    let (old, mut new) = match (before, after) {
        (Some(Value::Object(old)), Some(Value::Object(new))) => (old, new),
        (before, after) => return whole(ops, path, before, after),
    };
    let keys: BTreeSet<String> = old.keys().chain(new.keys()).cloned().collect();
    for key in keys {
        let entry = at(path, Some(&key));
        match (old.get(&key), new.remove(&key)) {
            (None, Some(value)) => ops.push(PatchOperation::Add(AddOperation { path: entry, value })),
            (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation { path: entry })),
            (Some(a), Some(b)) if *a != b => {
                ops.push(PatchOperation::Replace(ReplaceOperation { path: entry, value: b }))
            }
            _ => {}
        }
    }
}

/// Item by item when both sides are lists: walks both, keeping equal items,
/// removing items that are gone, inserting new ones and replacing an item
/// in place when it changed. Indices refer to the list as patched so far.
fn list_items(ops: &mut Vec<PatchOperation>, path: &[String], before: Option<&Value>, after: Option<Value>) {
    let (old, mut new) = match (before, after) {
        (Some(Value::Array(old)), Some(Value::Array(new))) => (old, new),
        (before, after) => return whole(ops, path, before, after),
    };
    // `new[j]` is taken once the walk has passed it: only `new[j..]` is read again.
    let index = |i: usize| at(path, Some(&i.to_string()));
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        if old[i] == new[j] {
            i += 1;
            j += 1;
        } else if !new[j..].contains(&old[i]) && !old[i..].contains(&new[j]) {
            ops.push(PatchOperation::Replace(ReplaceOperation { path: index(j), value: new[j].take() }));
            i += 1;
            j += 1;
        } else if !new[j..].contains(&old[i]) {
            ops.push(PatchOperation::Remove(RemoveOperation { path: index(j) }));
            i += 1;
        } else {
            ops.push(PatchOperation::Add(AddOperation { path: index(j), value: new[j].take() }));
            j += 1;
        }
    }
    for _ in i..old.len() {
        ops.push(PatchOperation::Remove(RemoveOperation { path: index(j) }));
    }
    for (k, value) in new.into_iter().enumerate().skip(j) {
        ops.push(PatchOperation::Add(AddOperation { path: index(k), value }));
    }
}
