use super::*;

fn read(text: &str) -> Vec<Document> {
    read_stream(text, &Limits::default()).unwrap_or_else(|error| panic!("{error}"))
}

fn value(text: &str) -> Value {
    read(text)[0].node.as_ref().and_then(|n| n.to_json().ok()).unwrap_or_default()
}

fn error(text: &str) -> YamlError {
    match read_stream(text, &Limits::default()) {
        Ok(documents) => panic!("read: {documents:?}"),
        Err(error) => error,
    }
}

#[test]
fn spans_cover_the_stream_exactly() {
    let text = "# header\n---\na: 1\n--- # two\nb: 2\n...\n# after end\n---\n# only comments\n";
    let documents = read(text);
    let spans: Vec<&str> = documents.iter().map(|d| &text[d.span.clone()]).collect();
    assert_eq!(
        spans,
        ["# header\n", "---\na: 1\n", "--- # two\nb: 2\n...\n", "# after end\n", "---\n# only comments\n"]
    );
    assert_eq!(documents.iter().map(|d| d.node.is_some()).collect::<Vec<_>>(), [false, true, true, false, false]);
    assert_eq!(documents[2].line, 4);
    assert_eq!(documents[2].number, 2);
    assert_eq!(read("")[0].node, None);
    assert_eq!(read("a: 1")[0].span, 0..4);
    let directive = read("%YAML 1.1\n---\na: yes\n");
    assert_eq!(directive.iter().map(|d| d.node.is_some()).collect::<Vec<_>>(), [false, true]);
}

#[test]
fn scalars_resolve_as_kubernetes_does() {
    let v = value(
        "a: yes\nb: \"yes\"\nc: 0644\nd: '0644'\ne: 0o644\nf: 0x1A4\ng: 1_000\nh: ~\ni:\nj: 2001-01-01\nk: !!str 12\nl: |\n  x\nm: On\nnn: 1.5\no: 09\n",
    );
    assert_eq!(
        v,
        serde_json::json!({"a": true, "b": "yes", "c": 420, "d": "0644", "e": 420, "f": 420, "g": 1000, "h": null, "i": null, "j": "2001-01-01", "k": "12", "l": "x\n", "m": true, "nn": 1.5, "o": 9})
    );
    // Keys resolve too: sigs.k8s.io/yaml turns `y:` into "true".
    assert_eq!(value("yes: 1\n1: 2\nn: 3\n"), serde_json::json!({"true": 1, "1": 2, "false": 3}));
}

#[test]
fn merge_keys_anchors_and_aliases() {
    let v = value("base: &b {x: 1, yy: 2}\nother: &o {z: 3}\nm:\n  <<: [*b, *o]\n  yy: 9\n  w: *o\n");
    assert_eq!(v["m"], serde_json::json!({"x": 1, "yy": 9, "z": 3, "w": {"z": 3}}));
    let documents = read("m:\n  a: 1\n  <<: {b: 2, a: 3}\n  c: 4\n");
    let Some(Node::Map(entries)) = documents[0].node.as_ref().and_then(|n| n.get("m")) else { panic!() };
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"], "merged keys sit where `<<` was; explicit ones win");
    assert_eq!(value("'<<': 1\n"), serde_json::json!({"<<": 1}), "a quoted << is a plain key");
}

#[test]
fn duplicate_keys_are_refused_by_name() {
    let e = error("---\na: 1\n---\nmetadata:\n  name: x\n  name: y\n");
    assert_eq!(e.kind, ErrorKind::DuplicateKey);
    assert_eq!(e.document, 2);
    assert!(e.to_string().contains("document 2") && e.to_string().contains("\"name\""), "{e}");
    assert_eq!(error("yes: 1\ntrue: 2\n").kind, ErrorKind::DuplicateKey);
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let e = error(&text);
    assert_eq!(e.kind, ErrorKind::TooManyAliases, "{e}");
    assert!(e.to_string().contains("billion laughs"), "{e}");
}

#[test]
fn deep_nesting_is_refused() {
    let deep = "[".repeat(100_000);
    let e = error(&deep);
    assert_eq!(e.kind, ErrorKind::TooDeep, "{e}");
    let deep = "{a: ".repeat(50_000);
    assert_eq!(error(&deep).kind, ErrorKind::TooDeep);
    let mut block = String::new();
    for depth in 0..300 {
        block.push_str(&" ".repeat(depth));
        block.push_str("a:\n");
    }
    assert_eq!(error(&block).kind, ErrorKind::TooDeep);
    assert!(read_stream(&"[".repeat(150), &Limits::default()).is_err_and(|e| e.kind == ErrorKind::Syntax));
}

#[test]
fn size_is_bounded() {
    let limits = Limits { max_bytes: 10, ..Limits::default() };
    assert_eq!(read_stream("a: 12345678901", &limits).map_err(|e| e.kind), Err(ErrorKind::TooLarge));
}

#[test]
fn what_json_cannot_hold_is_refused() {
    let inf = read("a:\n  b: [1, .inf]\n")[0].node.as_ref().unwrap().to_json().unwrap_err();
    assert!(inf.starts_with("a.b[1] is inf, which has no JSON form"), "{inf}");
    assert_eq!(error("~: 1\n").kind, ErrorKind::Unsupported);
    assert_eq!(error("[a]: 1\n").kind, ErrorKind::Unsupported);
    assert_eq!(error("a: !!int x\n").kind, ErrorKind::Unsupported);
    assert_eq!(error("a: [\n").kind, ErrorKind::Syntax);
}

#[test]
fn writer_round_trips_through_the_reader() {
    let v = serde_json::json!({
        "strings": ["yes", "No", "on", "0644", "0o644", "0x1A", "1_000", ".inf", "~", "null", "", " x", "x ", "2001-01-01", "1:20", "a: b", "- x", "#x", "multi\nline\n", "tab\there", "quote\"s", "back\\slash", "\u{85}nel", "é", "1e3", "-", "<<", "=", "---", "emoji 🎉"],
        "numbers": [0, -1, 420, 1.5, 1e20, 18446744073709551615u64],
        "yes": {"0644": true},
    });
    let text = write_value(&v, None);
    assert_eq!(value(&text), v, "{text}");
}

#[test]
fn nodes_are_counted_over_the_whole_stream() {
    // A part counts 1, a mapping 1, each key and scalar 1, a list 1, and an
    // alias what it expands to.
    let text = "---\na: 1\n---\nb: [1, 2]\nc: &x {d: 3}\ne: *x\n";
    let documents = read(text);
    assert_eq!(documents.iter().map(|d| d.nodes).collect::<Vec<_>>(), [4, 14]);
    let total = 18;
    let limits = |max_nodes| Limits { max_nodes, ..Limits::default() };
    assert!(read_stream(text, &limits(total)).is_ok(), "just at the limit passes");
    let e = read_stream(text, &limits(total - 1)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TooManyNodes, "{e}");
    // Where: the document and line of the node that passed the limit (the alias).
    assert_eq!((e.document, e.line), (2, 6), "{e}");
    assert_eq!(
        e.to_string(),
        "document 2 (line 6): the input has more than 17 YAML nodes (keys, values, lists and mappings, aliases \
         expanded, all documents together), the limit of one stream; split it into smaller files"
    );
}

#[test]
fn many_tiny_nodes_are_refused_as_they_are_read() {
    // Each `- [[]]` is 2 nodes in 7 bytes, after the part and its list;
    // documents (even empty ones) count too.
    let nests = "- [[]]\n".repeat(1000);
    assert!(read_stream(&nests, &Limits { max_nodes: 2_002, ..Limits::default() }).is_ok());
    let e = read_stream(&nests, &Limits { max_nodes: 2_000, ..Limits::default() }).unwrap_err();
    assert_eq!((e.kind, e.document, e.line), (ErrorKind::TooManyNodes, 1, 1000), "{e}");
    let empty = "---\n".repeat(100);
    assert!(read_stream(&empty, &Limits { max_nodes: 200, ..Limits::default() }).is_ok());
    let e = read_stream(&empty, &Limits { max_nodes: 199, ..Limits::default() }).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::TooManyNodes, 100), "{e}");
    assert!(e.message.contains("more than 199 YAML nodes"), "{e}");
}

#[test]
fn del_is_read_in_quoted_scalars_only_as_yaml_1_2_allows() {
    // JSON strings, double- and single-quoted scalars, keys, over lines.
    let json = value("{\"a\x7f\": \"x\x7fy\", \"b\": [\"\x7f\"]}");
    assert_eq!(json, serde_json::json!({"a\u{7f}": "x\u{7f}y", "b": ["\u{7f}"]}));
    let yaml = value("a: \"x\x7f\"\nb: 'y\x7f'\nc: \"long\n  \x7f line\"\nd: \"\\uE000\"\n");
    assert_eq!(yaml, serde_json::json!({"a": "x\u{7f}", "b": "y\u{7f}", "c": "long \u{7f} line", "d": "\u{e000}"}));
    // Elsewhere it stays refused, with where and how to fix it.
    for (text, line, column) in
        [("a: x\x7fy\n", 1, 5), ("a: \"ok\x7f\"\nb: |\n  \x7f\n", 3, 3), ("a: 1 # \x7f\n", 1, 8), ("\x7f: 1\n", 1, 1)]
    {
        let error = error(text);
        assert_eq!((error.kind, error.line), (ErrorKind::Syntax, line), "{text:?}: {error}");
        assert!(
            error.message.contains(&format!("U+007F (DEL) at column {column} is outside a quoted string")),
            "{text:?}: {error}"
        );
    }
    // Written back escaped, so any reader takes it.
    let written = to_yaml(&serde_json::json!({"a": "x\u{7f}"}));
    assert_eq!(value(&written), serde_json::json!({"a": "x\u{7f}"}));
    assert!(!written.contains('\u{7f}'), "{written}");
}
