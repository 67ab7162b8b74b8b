//! Any bytes as a `POST /mutate` body: the admission function answers with
//! an AdmissionReview (echoing the uid) or a 400 reason, and never panics.
#![no_main]

use kube_once_core::Config;
use kube_once_server::admission;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(reviewed) = admission::review(body, &Config::default()) {
        let reply = serde_json::to_vec(&reviewed.response);
        assert!(reply.is_ok(), "the reply does not serialize: {reply:?}");
    }
});
