//! kube-once: run a Deployment's one-time step exactly once per rollout.
//!
//! `core` is pure (no I/O): annotations → plan → desired Deployment → JSON patch.
//! Everything else is an edge that calls it or runs beside it.

pub mod certs;
pub mod cli;
pub mod core;
pub mod install;
pub mod lock;
pub mod preview;
pub mod server;
