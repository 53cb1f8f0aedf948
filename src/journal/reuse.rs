//! Whether an earlier result may still be reused, and bringing its
//! downloaded files into this run's folder.

use std::path::{Component, Path};

use super::policy::Policy;
use crate::engine::{Outputs, SavedFile};

/// Outputs of an earlier success, if they may still be used: remote URLs
/// past the retention count only when their files were downloaded (they
/// are brought into `target`, this run's folder).
pub(super) fn usable(
    policy: &Policy,
    target: Option<&Path>,
    dir: &Path,
    at: &str,
    outputs: &Outputs,
) -> Option<Outputs> {
    let age = humantime::parse_rfc3339_weak(at)
        .ok()
        .and_then(|t| policy.now.duration_since(t).ok())
        .unwrap_or_default();
    let expired = age > policy.retention && has_url(&outputs.value);
    let files: Vec<SavedFile> = outputs
        .files
        .iter()
        .filter(|f| bring(dir, target, &f.path))
        .cloned()
        .collect();
    if expired && (outputs.files.is_empty() || files.len() < outputs.files.len()) {
        return None;
    }
    Some(Outputs {
        value: outputs.value.clone(),
        files,
    })
}

/// Whether an output holds a remote URL (which expires).
fn has_url(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.starts_with("http://") || s.starts_with("https://"),
        serde_json::Value::Array(items) => items.iter().any(has_url),
        serde_json::Value::Object(map) => map.values().any(has_url),
        _ => false,
    }
}

/// Makes the downloaded file `rel` of the run in `from` available in `to`
/// (a link, else a copy); with no `to`, only checks that it exists. A path
/// that would leave either folder is refused.
fn bring(from: &Path, to: Option<&Path>, rel: &str) -> bool {
    let rel = Path::new(rel);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return false;
    }
    let src = from.join(rel);
    if !src.is_file() {
        return false;
    }
    let Some(to) = to else {
        return true;
    };
    let dst = to.join(rel);
    if dst == src || dst.is_file() {
        return true;
    }
    if let Some(parent) = dst.parent()
        && std::fs::create_dir_all(parent).is_err()
    {
        return false;
    }
    std::fs::hard_link(&src, &dst).is_ok() || std::fs::copy(&src, &dst).is_ok()
}
