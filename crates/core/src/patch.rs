//! The RFC 6902 patch from the admitted Deployment to the desired one, built
//! as explicit operations on the few places injection touches (never a diff
//! of whole objects: its size and cost follow the change, not the object).
//! Keys are visited in sorted order, so the same input gives the same patch.
//!
//! What an added init container takes verbatim from an app container (the
//! app's `env`, `envFrom`, `volumeMounts`, `resources`, `securityContext` in
//! `kube-once-run`) is not repeated in the patch: it is an RFC 6902 `copy`
//! from that container, followed by an `add` of what comes after the copied
//! part of a list (the `KUBE_ONCE_*` variables, the binary's mount). A
//! Deployment with 5,000 env vars then gets a patch of a few KB, not 1 MB.

use std::collections::BTreeSet;

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, CopyOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::Value;

use crate::inject::Written;
use crate::view::{
    App, AppContainers, ContainerTexts, Entry, Field, Item, Lists, TemplateText, common_start, same_init_container,
};
use serde_json::value::RawValue;

/// Maps whose entries are patched one by one (other keys stay untouched).
const TEMPLATE_MAPS: [(&str, &str); 3] =
    [("metadata", "annotations"), ("metadata", "labels"), ("spec", "nodeSelector")];
/// Lists where kube-once removes and appends items.
const TEMPLATE_LISTS: [&str; 3] = ["initContainers", "volumes", "tolerations"];

/// Operations turning `before` into `after`, two pod templates (at `base`:
/// `spec.template`, or a CronJob's `spec.jobTemplate.spec.template`, see
/// [`crate::Kind::template_path`]) that may differ only where injection
/// writes, whose app containers are `sources`; the lists of the init
/// containers kube-once writes are kept in `after_lists`. `after` and
/// `after_lists` are consumed: the values the patch adds are moved into
/// it, not copied.
pub fn template_patch(
    base: &[&str],
    before: &Value,
    before_text: &TemplateText,
    sources: Sources,
    after: Written,
    mut after_lists: Lists,
) -> Vec<PatchOperation> {
    let Written { template: mut after, init_containers: mut after_init, volumes: mut after_volumes, .. } = after;
    let mut ops = Vec::new();
    // `metadata: null` is replaced whole, like an absent one is added whole.
    if !before.get("metadata").is_some_and(Value::is_object) || !after.get("metadata").is_some_and(Value::is_object) {
        whole(&mut ops, &path(base, "metadata"), before.get("metadata"), take(&mut after, "metadata"), &equal);
    }
    for (parent, map) in TEMPLATE_MAPS {
        let (Some(before_parent), Some(after_parent)) = (before.get(parent), after.get_mut(parent)) else { continue };
        map_entries(&mut ops, &path(&join(base, &[parent]), map), before_parent.get(map), take(after_parent, map));
    }
    if let (Some(before_spec), Some(after_spec)) = (before.get("spec"), after.get_mut("spec")) {
        // The admitted template's lists are the request's: none kept aside.
        let no_lists = Lists::default();
        let same_init = |a: Item, b: Item| same_init_container(a, &no_lists, b, &after_lists);
        for list in TEMPLATE_LISTS {
            let path = path(&join(base, &["spec"]), list);
            let (before_text, after_entries, same): (_, _, SameItem) = match list {
                "initContainers" => {
                    (before_text.init_containers.as_ref().map(Before::Items), after_init.take(), &same_init)
                }
                "volumes" => {
                    (before_text.volumes.map(Before::List), after_volumes.take(), &|a: Item, b: Item| a.same(b))
                }
                _ => {
                    match (before_spec.get(list), take(after_spec, list)) {
                        (Some(Value::Array(old)), Some(Value::Array(new))) => {
                            list_items(&mut ops, &path, 0, old, new, &equal)
                        }
                        (before, after) => whole(&mut ops, &path, before, after, &equal),
                    }
                    continue;
                }
            };
            let edited =
                Edited { before: before_spec.get(list), before_text, after: take(after_spec, list), after_entries };
            entry_items(&mut ops, &path, edited, same);
        }
    }
    copy_from_containers(base, ops, &sources, &mut after_lists)
}

/// `base` then `more`.
fn join<'s>(base: &[&'s str], more: &[&'s str]) -> Vec<&'s str> {
    base.iter().chain(more).copied().collect()
}

fn equal(a: &Value, b: &Value) -> bool {
    a == b
}

/// Fields an init container may take verbatim from an app container, sent
/// as a `copy`. For lists, a copied prefix is followed by `add`s of the rest.
const COPIED_FIELDS: [&str; 5] = ["env", "envFrom", "volumeMounts", "resources", "securityContext"];

/// `ops` with every init container they add (or replace) stripped of the
/// fields equal to (lists: starting with) the same field of one of the app
/// containers (`sources`) of the template being patched, each followed by a `copy` of
/// that field from that container, then `add`s of the list's remaining
/// items. The app containers are never patched, so the copies read them as
/// they are; the result is the same object. A field kept aside in
/// `after_lists` with no such source is put back into the container whole.
fn copy_from_containers(
    base: &[&str],
    mut ops: Vec<PatchOperation>,
    sources: &Sources,
    after_lists: &mut Lists,
) -> Vec<PatchOperation> {
    let init_containers = pointer(&join(base, &["spec", "initContainers"]));
    let from = pointer(&join(base, &["spec", "containers"]));
    // The init containers the operations add, with where each is and the
    // operation it is in: their sources are looked for all at once, in one
    // pass over the app containers.
    let mut items = Vec::new();
    let mut paths = Vec::new();
    let mut owners = Vec::new();
    for (index, op) in ops.iter_mut().enumerate() {
        let (path, value) = match op {
            PatchOperation::Add(AddOperation { path, value })
            | PatchOperation::Replace(ReplaceOperation { path, value }) => (path.clone(), value),
            _ => continue,
        };
        if path == init_containers {
            for (at, item) in value.as_array_mut().into_iter().flatten().enumerate() {
                let mut item_path = path.clone();
                item_path.push_back(Token::new(at.to_string()));
                items.push(item);
                paths.push(item_path);
                owners.push(index);
            }
        } else if path.parent() == Some(&*init_containers) {
            items.push(value);
            paths.push(path);
            owners.push(index);
        }
    }
    let mut follow: Vec<Vec<PatchOperation>> = copies(&mut items, paths, sources, &from, after_lists);
    let mut out = Vec::with_capacity(ops.len());
    for (index, op) in ops.into_iter().enumerate() {
        out.push(op);
        for (owner, follow) in owners.iter().zip(&mut follow) {
            if *owner == index {
                out.append(follow);
            }
        }
    }
    out
}

/// The app containers a `copy` may read from.
pub struct Sources<'o, 'a> {
    containers: Option<AppContainers<'o, 'a>>,
    /// The one of them `kube-once.io/run` selects, read already: its
    /// fields are not looked for again.
    app: Option<&'o App<'a>>,
}

impl<'o, 'a> Sources<'o, 'a> {
    pub fn new(containers: Option<AppContainers<'o, 'a>>, app: Option<&'o App<'a>>) -> Self {
        Sources { containers, app }
    }
}

/// The items a `copy` of a list does not cover, which the patch adds.
enum Rest {
    Items(Vec<Value>),
    /// All of kube-once's own items after the app's (see
    /// [`List::Extended`]): moved out of the lists, not copied.
    Extra,
}

/// Per item, the `copy` (and `add`) operations that rebuild the copied
/// fields of `items` (init containers, at `paths`) from the app
/// containers (at `from`), which are taken out of the items.
fn copies(
    items: &mut [&mut Value],
    paths: Vec<PointerBuf>,
    sources: &Sources,
    from: &PointerBuf,
    lists: &mut Lists,
) -> Vec<Vec<PatchOperation>> {
    /// What becomes of one of an item's fields, decided before the items change.
    enum Copied {
        /// Copied from an app container (its index), then the items after the first `copied` added.
        From {
            source: usize,
            copied: usize,
            rest: Rest,
        },
        /// Kept aside with no source: put back into the container whole.
        Whole(Value),
        Inline,
    }
    let decided: Vec<Vec<(&str, Copied)>> = {
        let ours: Vec<_> = items.iter().map(|item| COPIED_FIELDS.map(|field| Field::of(item, field, lists))).collect();
        let found = sources.of(&ours);
        ours.iter()
            .zip(found)
            .map(|(ours, found)| {
                COPIED_FIELDS
                    .into_iter()
                    .zip(ours.iter().zip(found))
                    .filter_map(|(field, (ours, found))| {
                        let ours = (*ours)?;
                        Some((
                            field,
                            match found {
                                Some((source, copied)) => {
                                    let rest = if ours.is_extra_after(copied) {
                                        Rest::Extra
                                    } else {
                                        Rest::Items(ours.items_after(copied))
                                    };
                                    Copied::From { source, copied, rest }
                                }
                                None if matches!(ours, Field::Inline(_)) => Copied::Inline,
                                None => Copied::Whole(ours.to_value()),
                            },
                        ))
                    })
                    .collect()
            })
            .collect()
    };
    let mut all = Vec::with_capacity(items.len());
    for ((item, item_path), decided) in items.iter_mut().zip(paths).zip(decided) {
        let mut ops = Vec::new();
        for (field, copied) in decided {
            let (source, copied, rest) = match copied {
                Copied::From { source, copied, rest: Rest::Items(rest) } => (source, copied, rest),
                Copied::From { source, copied, rest: Rest::Extra } => {
                    let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                    (source, copied, lists.take_extra(name, field))
                }
                Copied::Whole(whole) => {
                    if let Some(fields) = item.as_object_mut() {
                        fields.insert(field.to_owned(), whole);
                    }
                    continue;
                }
                Copied::Inline => continue,
            };
            if let Some(fields) = item.as_object_mut() {
                fields.remove(field);
            }
            let mut from = from.clone();
            from.push_back(Token::new(source.to_string()));
            from.push_back(Token::new(field));
            let mut path = item_path.clone();
            path.push_back(Token::new(field));
            ops.push(PatchOperation::Copy(CopyOperation { from, path: path.clone() }));
            for (offset, value) in rest.into_iter().enumerate() {
                let mut at = path.clone();
                at.push_back(Token::new((copied + offset).to_string()));
                ops.push(PatchOperation::Add(AddOperation { path: at, value }));
            }
        }
        all.push(ops);
    }
    all
}

/// Per init container, what [`Sources::of`] found for each of its [`COPIED_FIELDS`].
type Found = [Option<(usize, usize)>; COPIED_FIELDS.len()];

impl Sources<'_, '_> {
    /// For each of some init containers' [`COPIED_FIELDS`] (`ours`), the
    /// app container to copy it from and how many items of it the copy
    /// covers (0 for a non-list): the first whose field is equal to it, or,
    /// for lists, whose field is the longest non-empty prefix of it. One
    /// pass over the app containers for all of them, each read as it is
    /// reached, not kept.
    fn of(&self, ours: &[[Option<Field>; COPIED_FIELDS.len()]]) -> Vec<Found> {
        let mut best = vec![[None; COPIED_FIELDS.len()]; ours.len()];
        let Some(containers) = self.containers else { return best };
        if ours.iter().flatten().all(Option::is_none) {
            return best;
        }
        let is_list: Vec<_> = ours.iter().map(|ours| ours.map(|ours| ours.is_some_and(Field::is_list))).collect();
        let mut consider = |index: usize, theirs: &[Option<Field>; COPIED_FIELDS.len()]| {
            for ((ours, best), is_list) in ours.iter().zip(&mut best).zip(&is_list) {
                for (k, (ours, theirs)) in ours.iter().zip(theirs).enumerate() {
                    let (Some(ours), Some(theirs)) = (ours, theirs) else { continue };
                    if !is_list[k] {
                        if best[k].is_none() && ours.same(*theirs) {
                            best[k] = Some((index, 0));
                        }
                    } else if let Some(len) = ours.starts_with(*theirs)
                        && best[k].is_none_or(|(_, best_len)| len > best_len)
                    {
                        best[k] = Some((index, len));
                    }
                }
            }
        };
        for (index, container) in containers.iter().enumerate() {
            match self.app.filter(|app| app.index == index) {
                Some(app) => consider(index, &COPIED_FIELDS.map(|field| app.container.field(field))),
                None => container.with_fields(COPIED_FIELDS, |theirs| consider(index, theirs)),
            }
        }
        best
    }
}

/// `value[key]` moved out of `value` (`None` when absent).
fn take(value: &mut Value, key: &str) -> Option<Value> {
    value.as_object_mut().and_then(|object| object.remove(key))
}

/// A JSON pointer from unescaped segments: `~` becomes `~0` and `/` becomes
/// `~1` (RFC 6901), e.g. `kube-once.io/status` → `kube-once.io~1status`.
/// Written into one buffer of about its size: a patch has a pointer an
/// operation, and growing each a segment at a time reallocated it as often.
pub fn pointer(segments: &[&str]) -> PointerBuf {
    let mut text = String::with_capacity(segments.iter().map(|segment| segment.len() + 1).sum());
    for segment in segments {
        text.push('/');
        if memchr::memchr2(b'~', b'/', segment.as_bytes()).is_none() {
            text.push_str(segment);
            continue;
        }
        for character in segment.chars() {
            match character {
                '~' => text.push_str("~0"),
                '/' => text.push_str("~1"),
                other => text.push(other),
            }
        }
    }
    // Every `~` and `/` of a segment is escaped above, so the text is a
    // pointer; the tokens' own encoding stays the answer if it ever were not.
    PointerBuf::try_from(text).unwrap_or_else(|_| PointerBuf::from_tokens(segments.iter().map(|s| Token::new(*s))))
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
fn whole(
    ops: &mut Vec<PatchOperation>,
    path: &[String],
    before: Option<&Value>,
    after: Option<Value>,
    same: &dyn Fn(&Value, &Value) -> bool,
) {
    let path = at(path, None);
    match (before, after) {
        (None, Some(value)) => ops.push(PatchOperation::Add(AddOperation { path, value })),
        (Some(_), None) => ops.push(PatchOperation::Remove(RemoveOperation { path })),
        (Some(old), Some(new)) if !same_whole(old, &new, same) => {
            ops.push(PatchOperation::Replace(ReplaceOperation { path, value: new }))
        }
        _ => {}
    }
}

/// Entry by entry when both sides are maps, otherwise the field as a whole.
fn map_entries(ops: &mut Vec<PatchOperation>, path: &[String], before: Option<&Value>, after: Option<Value>) {
    let (old, mut new) = match (before, after) {
        (Some(Value::Object(old)), Some(Value::Object(new))) => (old, new),
        (before, after) => return whole(ops, path, before, after, &equal),
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

/// Whether two items of a list are equal in meaning.
type SameItem<'s> = &'s dyn Fn(Item, Item) -> bool;

/// A list of the pod spec kube-once edits item by item, before and after:
/// kept as text before (`before_text`) and as [`Entry`]s after
/// (`after_entries`) when a list, a value otherwise.
struct Edited<'v, 'a> {
    before: Option<&'v Value>,
    before_text: Option<Before<'v, 'a>>,
    after: Option<Value>,
    after_entries: Option<Vec<Entry<'a>>>,
}

/// The text of a list before: whole, or one text per item.
enum Before<'v, 'a> {
    List(&'a RawValue),
    Items(&'v ContainerTexts<'a>),
}

/// [`list_items`] of a list kept as [`Edited`] (the init containers, the
/// volumes), its items equal by `same`. The items both lists start with
/// are compared as they are read, not kept.
fn entry_items(ops: &mut Vec<PatchOperation>, path: &[String], edited: Edited, same: SameItem) {
    let Edited { before, before_text, after, after_entries } = edited;
    let entries = |items: Vec<Value>| items.into_iter().map(Entry::value).collect::<Vec<_>>();
    let new = match (after_entries, after) {
        (Some(new), _) => Ok(new),
        (None, Some(Value::Array(items))) => Ok(entries(items)),
        (None, after) => Err(after),
    };
    let same_entry = |a: &Entry, b: &Entry| same(a.item(), b.item());
    let same_value = |a: &Value, b: &Value| same(Item::Value(a), Item::Value(b));
    match (before_text, before, new) {
        (Some(Before::List(raw)), _, Ok(mut new)) => {
            let (common, rest) = common_start(raw, &new);
            let old: Vec<Entry> = rest.into_iter().map(Entry::Text).collect();
            new.drain(..common);
            list_items(ops, path, common, &old, new, &same_entry);
        }
        // The items both start with (the same text) are left out: a list of
        // 50,000 sidecars before kube-once's is then not listed again.
        (Some(Before::Items(items)), _, Ok(mut new)) => {
            let common = items.iter().zip(&new).take_while(|(item, entry)| entry.is_text(item)).count();
            let old: Vec<Entry> = items.iter().skip(common).map(Entry::Text).collect();
            new.drain(..common);
            list_items(ops, path, common, &old, new, &same_entry);
        }
        (None, Some(Value::Array(items)), Ok(new)) => {
            list_items(ops, path, 0, &entries(items.clone()), new, &same_entry)
        }
        (Some(_), _, Err(after)) => {
            // A list that is no more: removed, or replaced by what is there.
            let at = at(path, None);
            ops.push(match after {
                Some(value) => PatchOperation::Replace(ReplaceOperation { path: at, value }),
                None => PatchOperation::Remove(RemoveOperation { path: at }),
            });
        }
        (None, before, Ok(new)) => {
            let value = Value::Array(new.into_iter().map(Entry::into_value).collect());
            whole(ops, path, before, Some(value), &same_value);
        }
        (None, before, Err(after)) => whole(ops, path, before, after, &same_value),
    }
}

/// How far ahead [`list_items`] looks for an item that differs: past it,
/// an item is taken for gone (the patch is then longer, never wrong). The
/// lists kube-once patches differ in its own few items; without a bound, a
/// request with thousands of init containers after kube-once's would cost
/// the square of their number.
const LOOK_AHEAD: usize = 64;

/// Two lists item by item: walks both, keeping equal items, removing items
/// that are gone, inserting new ones and replacing an item in place when it
/// changed. Indices refer to the list as patched so far. `same` tells equal
/// items apart; `offset` is where both lists start (past the items they
/// start with alike, when those are left out).
fn list_items<T: Default + IntoValue>(
    ops: &mut Vec<PatchOperation>,
    path: &[String],
    offset: usize,
    old: &[T],
    mut new: Vec<T>,
    same: &dyn Fn(&T, &T) -> bool,
) {
    // `new[j]` is taken once the walk has passed it: only `new[j..]` is read again.
    let index = |i: usize| at(path, Some(&(offset + i).to_string()));
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        if same(&old[i], &new[j]) {
            i += 1;
            j += 1;
            continue;
        }
        // `old[i]` and `new[j]` differ: each is looked for past the other
        // (`same` takes the old item first: their lists are kept apart).
        let old_stays = new[j + 1..].iter().take(LOOK_AHEAD).any(|new| same(&old[i], new));
        if !old_stays && !old[i + 1..].iter().take(LOOK_AHEAD).any(|old| same(old, &new[j])) {
            let value = std::mem::take(&mut new[j]).into_value();
            ops.push(PatchOperation::Replace(ReplaceOperation { path: index(j), value }));
            i += 1;
            j += 1;
        } else if !old_stays {
            ops.push(PatchOperation::Remove(RemoveOperation { path: index(j) }));
            i += 1;
        } else {
            let value = std::mem::take(&mut new[j]).into_value();
            ops.push(PatchOperation::Add(AddOperation { path: index(j), value }));
            j += 1;
        }
    }
    for _ in i..old.len() {
        ops.push(PatchOperation::Remove(RemoveOperation { path: index(j) }));
    }
    for (k, value) in new.into_iter().enumerate().skip(j) {
        ops.push(PatchOperation::Add(AddOperation { path: index(k), value: value.into_value() }));
    }
}

/// An item of a list as the value a patch sends.
trait IntoValue {
    fn into_value(self) -> Value;
}

impl IntoValue for Value {
    fn into_value(self) -> Value {
        self
    }
}

impl IntoValue for Entry<'_> {
    fn into_value(self) -> Value {
        Entry::into_value(self)
    }
}

/// `same` for lists item by item, `==` otherwise.
fn same_whole(old: &Value, new: &Value, same: &dyn Fn(&Value, &Value) -> bool) -> bool {
    match (old, new) {
        (Value::Array(old), Value::Array(new)) => {
            old.len() == new.len() && old.iter().zip(new).all(|(a, b)| same(a, b))
        }
        _ => old == new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_escapes_tildes_and_slashes_in_its_segments() {
        let segments = ["metadata", "annotations", "kube-once.io/status", "a~/b", "", "0"];
        let pointer = pointer(&segments);
        assert_eq!(pointer.as_str(), "/metadata/annotations/kube-once.io~1status/a~0~1b//0");
        assert_eq!(pointer, PointerBuf::from_tokens(segments.map(Token::new)));
        assert_eq!(super::pointer(&[]).as_str(), "", "the whole document");
    }

    /// kube-once's own items moved to the end of a long list (the user's
    /// init containers after them): a patch of those items, found with a
    /// number of comparisons that follows the list, not its square.
    #[test]
    fn a_long_list_is_walked_with_a_bounded_look_ahead() {
        let items = |names: &[String]| names.iter().map(|name| serde_json::json!({"name": name})).collect::<Vec<_>>();
        let users: Vec<String> = (0..5_000).map(|i| format!("u{i}")).collect();
        let ours = ["kube-once-install".to_owned(), "kube-once-run".to_owned()];
        let old = items(&[&users[..10], &ours[..], &users[10..]].concat());
        let new = items(&[&users[..], &ours[..]].concat());
        let calls = std::cell::Cell::new(0usize);
        let same = |a: &Value, b: &Value| {
            calls.set(calls.get() + 1);
            a == b
        };
        let mut ops = Vec::new();
        list_items(&mut ops, &["initContainers".to_owned()], 0, &old, new.clone(), &same);
        assert!(calls.get() < 4 * LOOK_AHEAD * old.len(), "{} comparisons", calls.get());
        let mut patched = Value::Array(old);
        json_patch::patch(&mut patched, &json_patch::Patch(ops.iter().map(rebase).collect())).unwrap();
        assert_eq!(patched, Value::Array(new));
        assert!(ops.len() <= 4, "{ops:?}");
    }

    /// `op` at the root of the list it patches (its path without `/initContainers`).
    fn rebase(op: &PatchOperation) -> PatchOperation {
        let strip = |path: &PointerBuf| PointerBuf::parse(path.as_str().trim_start_matches("/initContainers")).unwrap();
        match op {
            PatchOperation::Add(AddOperation { path, value }) => {
                PatchOperation::Add(AddOperation { path: strip(path), value: value.clone() })
            }
            PatchOperation::Remove(RemoveOperation { path }) => {
                PatchOperation::Remove(RemoveOperation { path: strip(path) })
            }
            PatchOperation::Replace(ReplaceOperation { path, value }) => {
                PatchOperation::Replace(ReplaceOperation { path: strip(path), value: value.clone() })
            }
            other => other.clone(),
        }
    }
}
