//! The manifest as the user wrote it: YAML in, `*Spec` types out.
//!
//! Only `load.rs` calls serde_yaml. Nothing here validates meaning (that is
//! the plan's job) or touches the network.

pub mod actions;
pub mod extension;
pub mod load;
pub mod matrix;
pub mod spec;
pub mod value;
pub mod yaml;
