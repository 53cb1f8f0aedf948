//! The run's downloaded files, as the page links them.

use std::collections::HashMap;

use super::links::local_path;
use crate::report::results::{FileKind, FileRecord, Results};

/// The run's downloaded files, found by clip and kind or by the URL they
/// came from.
pub(crate) struct Files<'a> {
    base: &'a str,
    by_clip: HashMap<(&'a str, FileKind), &'a FileRecord>,
    by_url: HashMap<&'a str, &'a FileRecord>,
}

impl<'a> Files<'a> {
    pub(crate) fn of(results: &'a Results, base: &'a str) -> Files<'a> {
        let mut by_clip = HashMap::new();
        let mut by_url = HashMap::new();
        for f in results.steps.iter().flat_map(|r| &r.files) {
            if let Some(clip) = f.clip_id.as_deref() {
                by_clip.entry((clip, f.kind)).or_insert(f);
            }
            by_url.entry(f.url.as_str()).or_insert(f);
        }
        Files {
            base,
            by_clip,
            by_url,
        }
    }

    pub(crate) fn by_clip(&self, clip: &str, kinds: &[FileKind]) -> Option<String> {
        kinds
            .iter()
            .find_map(|k| self.by_clip.get(&(clip, *k)))
            .and_then(|f| self.local(f))
    }

    pub(crate) fn by_url(&self, url: &str) -> Option<String> {
        self.by_url.get(url).and_then(|f| self.local(f))
    }

    /// The file's path from the report, or `None` for a path that would
    /// leave the run folder or is not a plain relative path.
    pub(crate) fn local(&self, f: &FileRecord) -> Option<String> {
        local_path(&f.path).map(|p| format!("{}{p}", self.base))
    }
}
