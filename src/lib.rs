//! sonicflow: declarative batch pipelines for the MusicAPI Sonic API.
//!
//! The stages are `manifest` (YAML as written) → `plan` (validated, priced,
//! immutable) → `engine` (runs a plan) → `report` (consumes run events).
//! `api` is the HTTP client for the remote service and `sandbox` a local
//! simulator of it; `prices` is the dated price table both of them and the
//! plan share. `action` (what a step does), `span` (where in a source text)
//! and `timestamp` (how a time is written down) are leaves every stage may
//! use: they import no other module of the crate.

pub mod action;
pub mod api;
pub mod cli;
pub mod commands;
pub mod diag;
pub mod engine;
pub mod exit;
pub mod expr;
pub mod format;
pub mod journal;
pub mod manifest;
pub mod output;
pub mod plan;
pub mod prices;
pub mod report;
pub mod sandbox;
pub mod span;
pub mod steps;
pub mod store;
pub mod suggest;
pub mod timestamp;
