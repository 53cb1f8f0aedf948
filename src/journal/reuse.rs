//! Whether an earlier result may still be reused, and bringing its
//! downloaded files into this run's folder.

use std::path::{Path, PathBuf};

use super::policy::Policy;
use crate::engine::{Outputs, SavedFile};

/// An earlier result that may still be used, its files checked but not
/// yet brought into this run's folder.
pub(super) struct Kept {
    /// The result, with only those files still in `dir`.
    outputs: Outputs,
    /// The earlier run's folder.
    dir: PathBuf,
    /// Past the retention: its remote URLs are gone, so its files are all it has.
    expired: bool,
}

/// An earlier success in `dir`, if it may still be used: remote URLs past
/// the retention count only when their files were downloaded and are
/// still there.
pub(super) fn usable(policy: &Policy, dir: &Path, at: &str, outputs: &Outputs) -> Option<Kept> {
    let age = humantime::parse_rfc3339_weak(at)
        .ok()
        .and_then(|t| policy.now.duration_since(t).ok())
        .unwrap_or_default();
    let expired = age > policy.retention && has_url(&outputs.value);
    let files: Vec<SavedFile> = outputs
        .files
        .iter()
        .filter(|f| present(dir, &f.path))
        .cloned()
        .collect();
    if expired && (outputs.files.is_empty() || files.len() < outputs.files.len()) {
        return None;
    }
    Some(Kept {
        outputs: Outputs {
            value: outputs.value.clone(),
            files,
        },
        dir: dir.to_owned(),
        expired,
    })
}

impl Kept {
    /// The result as it would be taken (its files not yet brought).
    pub(super) fn outputs(&self) -> &Outputs {
        &self.outputs
    }

    /// The result with its files brought into `target`, this run's folder
    /// (with none, nothing is written and they stay where they are). A
    /// file that cannot be brought is left out, and an expired result
    /// missing one is no use.
    pub(super) fn bring(self, target: Option<&Path>) -> Option<Outputs> {
        let Kept {
            outputs,
            dir,
            expired,
        } = self;
        let Some(to) = target else {
            return Some(outputs);
        };
        let wanted = outputs.files.len();
        let files: Vec<SavedFile> = outputs
            .files
            .into_iter()
            .filter(|f| link(&dir, to, &f.path))
            .collect();
        if expired && files.len() < wanted {
            return None;
        }
        Some(Outputs {
            value: outputs.value,
            files,
        })
    }
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

/// Whether the downloaded file `rel` of the run in `from` is there. A
/// path that would leave the folder is refused.
fn present(from: &Path, rel: &str) -> bool {
    crate::steps::sanitize::stays_inside(rel) && from.join(rel).is_file()
}

/// Makes the downloaded file `rel` of the run in `from` available in `to`
/// (a link, else a copy).
fn link(from: &Path, to: &Path, rel: &str) -> bool {
    if !present(from, rel) {
        return false;
    }
    let (src, dst) = (from.join(rel), to.join(rel));
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
