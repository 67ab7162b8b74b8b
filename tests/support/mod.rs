//! Test helpers shared by several test binaries (`mod support;`).

pub mod pss;
