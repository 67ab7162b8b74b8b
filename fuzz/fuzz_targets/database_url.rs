//! Any text as a database URL (what `kube-once lock` reads from the app's
//! env, and what the `database-url` annotation holds as a template): parsed
//! or refused with a reason, and redacted for a refusal, never a panic.
#![no_main]

use kube_once_core::annotations::{check_database_url, redact_database_url};
use kube_once_lock::url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match url::parse(text) {
        Ok(target) => {
            let _ = format!("{target:?} {}", target.backend_name());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    let _ = check_database_url(text);
    let _ = redact_database_url(text);
});
