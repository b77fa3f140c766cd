//! Helpers shared by the fuzz targets in `fuzz_targets/`.

pub mod guard_before_ca2c009;
pub mod json;
