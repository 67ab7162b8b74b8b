//! Test helpers shared by several test binaries (`mod support;`).
// Each test binary compiles all of them but uses only its part.
#![allow(dead_code)]

pub mod databases;
pub mod pss;
