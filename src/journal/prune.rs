//! Removing runs from a state folder (`sonicflow clean`): which runs the
//! reuse index still needs, and taking a run out so that nothing points at
//! it and a kill midway never leaves a half folder that looks like a run.
//!
//! # What reuse still needs
//!
//! A later run takes, for each request, the best of the index's results
//! that [`usable`] accepts (files still there, or URLs within the
//! retention); among results of one request, a newer one wins unless an
//! older one keeps more of what was built on it reusable ([`Rank`](super::rank::Rank)).
//! So a run is needed when it holds:
//!
//! - for some request and instance (API, request hash, instance), the
//!   newest usable result: what a later run of that instance takes; or
//! - a usable result whose ids (`clip_id`, `id`, `…_id` in its outputs)
//!   a request of a needed run was made with: a result something built
//!   on it still reads, which the ranking may prefer to a newer one.
//!
//! The second rule is applied until nothing more is added.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::entry::{IndexEntry, Outcome};
use super::error::JournalError;
use super::file::read_lines;
use super::policy::Policy;
use super::reuse::usable;
use super::state::StateDir;

/// Where runs being removed are moved first: out of `runs/`, under a name
/// no run has, so a kill midway leaves no folder that looks like a run.
pub const REMOVING: &str = ".removing";

/// Per run folder (as the index names it), how many of its results reuse
/// would still take, by the rule in the module documentation.
pub fn needed_by_reuse(index: &[IndexEntry], policy: &Policy) -> HashMap<String, usize> {
    let results: Vec<&IndexEntry> = index
        .iter()
        .filter(|e| e.outcome == Outcome::Succeeded)
        .filter(|e| {
            e.outputs
                .as_ref()
                .is_some_and(|o| usable(policy, Path::new(&e.dir), &e.at, o).is_some())
        })
        .collect();
    // The newest per request and instance; a later line wins a tie.
    let mut newest: HashMap<(&str, &str, &str), &IndexEntry> = HashMap::new();
    for e in &results {
        let slot = newest
            .entry((e.api.as_str(), e.hash.as_str(), e.inst.as_str()))
            .or_insert(e);
        if e.at >= slot.at {
            *slot = e;
        }
    }
    let mut needed: HashMap<String, usize> = HashMap::new();
    for e in newest.values() {
        *needed.entry(e.dir.clone()).or_default() += 1;
    }
    // Results that requests of needed runs were built on.
    loop {
        let read: HashSet<&str> = index
            .iter()
            .filter(|e| needed.contains_key(&e.dir))
            .flat_map(|e| e.fields.values().flat_map(strings))
            .collect();
        let more: Vec<&IndexEntry> = results
            .iter()
            .copied()
            .filter(|e| !needed.contains_key(&e.dir))
            .filter(|e| {
                e.outputs
                    .as_ref()
                    .is_some_and(|o| ids(&o.value).iter().any(|id| read.contains(id)))
            })
            .collect();
        if more.is_empty() {
            break;
        }
        for e in more {
            *needed.entry(e.dir.clone()).or_default() += 1;
        }
    }
    needed
}

/// Every string in a value.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// The ids in a result: strings under `id` or a `…_id` key.
fn ids(value: &Value) -> Vec<&str> {
    match value {
        Value::Array(items) => items.iter().flat_map(ids).collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| match v {
                Value::String(s) if k == "id" || k.ends_with("_id") => vec![s.as_str()],
                other => ids(other),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// What removing a folder frees: its files' bytes, except those of files
/// with another hard link (a result reused elsewhere keeps its bytes).
pub fn size(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            let (f, b) = size(&entry.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            if links(&meta) <= 1 {
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}

#[cfg(unix)]
fn links(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

#[cfg(not(unix))]
fn links(_: &std::fs::Metadata) -> u64 {
    1
}

/// Takes the runs in `dirs` (folders under the state's `runs/`) out of
/// `state`: each folder is first moved under `runs/.removing/` (one
/// rename: after it, nothing at the run's place looks like a run), then
/// their lines are dropped from the index and the registry (each rewritten
/// whole and renamed over the old one, under its lock), then the moved
/// folders are deleted. A kill midway leaves folders under `.removing/`
/// (and maybe lines naming them), which the next call finishes.
///
/// The caller holds the lock of every pipeline in the state, and no run
/// of it is live: a live run keeps the index open and would write into
/// the file this replaces.
pub fn remove(state: &StateDir, dirs: &[PathBuf]) -> Result<(), JournalError> {
    let runs = super::absolute(&state.root.join("runs"));
    let trash = runs.join(REMOVING);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| JournalError::Write { path, source }
    };
    std::fs::create_dir_all(&trash).map_err(io(&trash))?;
    for dir in dirs {
        let Some(name) = dir.file_name() else {
            continue;
        };
        std::fs::rename(dir, trash.join(name)).map_err(io(dir))?;
    }
    // The runs moved away now, and those a killed earlier call moved: a
    // line naming any other folder that is gone stays (its result may
    // still be reused by value, its send in doubt must not be sent again).
    let gone: HashSet<String> = std::fs::read_dir(&trash)
        .map_err(io(&trash))?
        .flatten()
        .map(|e| runs.join(e.file_name()).display().to_string())
        .collect();
    let moved = |d: &str| gone.contains(&super::absolute(Path::new(d)).display().to_string());
    rewrite::<IndexEntry>(&state.index_path(), |e| !moved(&e.dir))?;
    rewrite::<super::entry::RunRef>(&state.registry_path(), |r| !moved(&r.dir))?;
    purge(&trash)
}

/// Deletes what an earlier, killed removal left under `runs/.removing/`.
pub fn purge(trash: &Path) -> Result<(), JournalError> {
    match std::fs::remove_dir_all(trash) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(JournalError::Write {
            path: trash.to_owned(),
            source,
        }),
    }
}

/// Rewrites the line file `path` with only the lines `keep` keeps: the
/// new text is written and synced beside it, then renamed over it, all
/// under the old file's lock so no append lands in between. Nothing is
/// written when every line is kept.
fn rewrite<T>(path: &Path, keep: impl Fn(&T) -> bool) -> Result<(), JournalError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let err = |source| JournalError::Write {
        path: path.to_owned(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(err(source)),
    };
    file.lock().map_err(err)?;
    let lines: Vec<T> = read_lines(path)?;
    let before = lines.len();
    let kept: Vec<T> = lines.into_iter().filter(|l| keep(l)).collect();
    if kept.len() == before {
        return Ok(());
    }
    let mut text = Vec::new();
    for line in &kept {
        serde_json::to_writer(&mut text, line).map_err(|source| JournalError::Encode { source })?;
        text.push(b'\n');
    }
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = std::fs::File::create(&tmp).map_err(err)?;
    out.write_all(&text).map_err(err)?;
    out.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    drop(file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::Outputs;

    fn result(dir: &Path, run: &str, hash: &str, fields: Value, value: Value, n: u8) -> IndexEntry {
        let Value::Object(fields) = fields else {
            panic!("fields are an object")
        };
        IndexEntry {
            api: "http://api".into(),
            pipeline: "p".into(),
            run: run.into(),
            dir: dir.join(run).display().to_string(),
            inst: "song".into(),
            hash: hash.into(),
            outcome: Outcome::Succeeded,
            fields,
            outputs: Some(Outputs {
                value,
                files: Vec::new(),
            }),
            task: None,
            error: None,
            at: format!("2026-12-0{n}T00:00:00.000Z"),
        }
    }

    #[test]
    fn the_newest_result_of_a_request_is_needed_and_an_older_one_is_not() {
        let root = Path::new("/s/runs");
        let index = [
            result(root, "old", "h", json!({}), json!({ "clip_id": "a" }), 1),
            result(root, "new", "h", json!({}), json!({ "clip_id": "b" }), 2),
        ];
        let needed = needed_by_reuse(&index, &Policy::default());
        assert_eq!(
            needed.keys().collect::<Vec<_>>(),
            [&root.join("new").display().to_string()]
        );
    }

    #[test]
    fn an_older_result_a_needed_request_was_built_on_is_needed() {
        let root = Path::new("/s/runs");
        let mut cover = result(root, "third", "c", json!({ "clip": "a" }), json!({}), 3);
        cover.inst = "cover".into();
        let index = [
            result(root, "old", "h", json!({}), json!({ "clip_id": "a" }), 1),
            result(root, "new", "h", json!({}), json!({ "clip_id": "b" }), 2),
            cover,
        ];
        let needed = needed_by_reuse(&index, &Policy::default());
        let mut runs: Vec<&String> = needed.keys().collect();
        runs.sort();
        let name = |r: &str| root.join(r).display().to_string();
        assert_eq!(runs, [&name("new"), &name("old"), &name("third")]);
    }

    #[test]
    fn an_expired_result_without_its_files_is_not_needed() {
        let root = Path::new("/s/runs");
        let mut e = result(
            root,
            "old",
            "h",
            json!({}),
            json!({ "audio_url": "https://x/a.mp3" }),
            1,
        );
        e.outputs = Some(Outputs {
            value: json!({ "audio_url": "https://x/a.mp3" }),
            files: vec![crate::engine::SavedFile {
                path: "a.mp3".into(),
                ..Default::default()
            }],
        });
        let policy = Policy {
            now: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_000),
            ..Policy::default()
        };
        assert!(needed_by_reuse(&[e], &policy).is_empty());
    }

    fn line(dir: &Path) -> super::super::entry::RunRef {
        super::super::entry::RunRef {
            id: dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            pipeline: "p".into(),
            dir: dir.display().to_string(),
            manifest: "p.yaml".into(),
            started_at: "2026-12-01T00:00:00.000Z".into(),
            group: None,
            shard: None,
        }
    }

    #[test]
    fn a_removed_run_leaves_no_line_and_a_killed_removal_is_finished_next_time() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = StateDir::local(super::super::absolute(root.path()));
        state.ensure().unwrap_or_else(|e| panic!("{e}"));
        let runs = state.root.join("runs");
        // `d` was moved away by a removal killed before it rewrote the lines;
        // `c` is gone for another reason, and its lines stay.
        for name in ["a", "b", ".removing/d"] {
            std::fs::create_dir_all(runs.join(name).join("song")).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(runs.join(name).join("song/x.mp3"), "x")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mut index = super::super::file::LineLog::open(&state.index_path(), false)
            .unwrap_or_else(|e| panic!("{e}"));
        for name in ["a", "b", "c", "d"] {
            let e = result(&runs, name, name, json!({}), json!({}), 1);
            index.append(&e).unwrap_or_else(|e| panic!("{e}"));
            state
                .register(&line(&runs.join(name)))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        remove(&state, &[runs.join("a")]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!runs.join("a").exists() && runs.join("b/song/x.mp3").is_file());
        assert!(!runs.join(REMOVING).exists());
        let index: Vec<IndexEntry> =
            read_lines(&state.index_path()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = index.iter().map(|e| e.run.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        let registry = state.runs().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = registry.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
    }
}
