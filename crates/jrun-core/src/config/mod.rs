//! The typed configuration: what a user's UCL file describes, validated.
//!
//! `model` holds the types every other layer consumes. Loading (UCL value → model) and
//! validation live beside it and report every mistake with its file, line and column.

mod model;

pub use model::*;
