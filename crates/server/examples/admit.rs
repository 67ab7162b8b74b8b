//! One admission, N times, with no sockets: the driver for instruction
//! counts of the admission path (docs/dev/performance.md):
//!
//!   cargo build --profile dist --target x86_64-unknown-linux-musl -p kube-once-server --example admit
//!   valgrind --tool=callgrind target/x86_64-unknown-linux-musl/dist/examples/admit REVIEW.json 100
//!
//! Prints the size of the last answer, so the work cannot be optimized away.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), count) = (args.next(), args.next()) else {
        eprintln!("usage: admit REVIEW.json [COUNT]");
        return ExitCode::from(64);
    };
    let count: usize = count.and_then(|c| c.parse().ok()).unwrap_or(1);
    let body = match std::fs::read(&path) {
        Ok(body) => body,
        Err(error) => {
            eprintln!("cannot read {path}: {error}");
            return ExitCode::from(66);
        }
    };
    let config = kube_once_core::Config::default();
    let mut size = 0;
    for _ in 0..count {
        size = match kube_once_server::admission::review(std::hint::black_box(&body), &config) {
            Ok(reviewed) => reviewed.response.to_json().map(|answer| answer.len()).unwrap_or(0),
            Err(bad_request) => bad_request.0.len(),
        };
    }
    println!("{size}");
    ExitCode::SUCCESS
}
