//! Any bytes as an AdmissionReview body: the core must answer (patch or
//! refusal), never panic.
#![no_main]

use kube_once::core::{self, Config};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let Ok(review) = serde_json::from_slice::<Value>(body) else { return };
    let request = &review["request"];
    let old_object = request.get("oldObject").filter(|old| !old.is_null());
    let _ = core::mutate(&request["object"], old_object, &Config::default());
});
