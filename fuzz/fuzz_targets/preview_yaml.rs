//! Arbitrary text as `kube-once preview` input: YAML or JSON, one or many
//! documents, through the very reader and renderer `preview` and
//! `POST /preview` use. Nothing may panic, and what `-o yaml` writes for a
//! changed document must read back to the mutated objects.
#![no_main]

use kube_once_core::yaml::{Limits, read_stream};
use kube_once_core::{self as core, Config, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(preview) = core::preview(text, &Config::default(), &Limits::default()) else { return };
    for format in [Format::Patch, Format::Yaml, Format::Diff, Format::Json] {
        let _ = preview.render(format);
    }
    for document in &preview.documents {
        if !document.changed() {
            continue;
        }
        let written = preview.document_yaml(document);
        let Ok(read) = read_stream(&written, &Limits::default()) else { panic!("unreadable output:\n{written}") };
        let values: Vec<_> = read.iter().filter_map(|d| d.to_json().ok().flatten()).collect();
        assert_eq!(values.len(), 1, "{written}");
    }
});
