//! A run's results delivered to a bucket (`run --out URL`, `sonicflow
//! publish`): the run works in a local folder, and when it ends every file
//! its results.json lists is streamed to the bucket, then results.json,
//! then report.html.
//!
//! Nothing is half-written under a final name: a file up to the part size
//! goes as one PUT, a bigger one as a multipart upload, which the store
//! shows only once it is completed; and the upload is completed only when
//! the bytes sent hash to the sha256 results.json records for the file
//! (otherwise it is aborted). results.json and report.html go last, each as
//! one PUT, so a reader who finds results.json finds every file it lists.
//!
//! Which files are already there is kept in a manifest object beside them
//! ([`MANIFEST`]: path, sha256, size and the etag the store gave): a
//! publish again sends only the files that are missing, changed or not
//! as recorded in a listing of the prefix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Bucket, Scheme, redact};
use crate::steps::sanitize::stays_inside;

/// The manifest of what was published, under the bucket's prefix.
pub const MANIFEST: &str = ".sonicflow-published.json";
/// The results manifest and the report, as the run folder names them.
const RESULTS: &str = "results.json";
const REPORT: &str = "report.html";
/// Files bigger than this go as multipart uploads of parts this big.
const PART_SIZE: usize = 8 << 20;
/// A smaller part size, for tests (S3 itself wants at least 5 MiB).
const PART_SIZE_VAR: &str = "SONICFLOW_PUBLISH_PART_SIZE";
/// Files sent at once, and parts of one file in flight at once.
const FILES_IN_FLIGHT: usize = 4;
const PARTS_IN_FLIGHT: usize = 2;
/// The manifest is written again after this many files or bytes sent, so
/// that a publish cut short sends again at most that much.
const MANIFEST_EVERY_FILES: usize = 32;
const MANIFEST_EVERY_BYTES: u64 = 64 << 20;
/// The largest manifest read back.
const MANIFEST_LIMIT: u64 = 64 << 20;

/// What `--out` names: a store URL, or a folder (`None`). A text with a
/// scheme sonicflow does not know (`ftp://…`) is refused rather than taken
/// for a folder called `ftp:`.
pub fn store_url(out: &Path) -> Result<Option<&str>, String> {
    let Some(text) = out.to_str() else {
        return Ok(None);
    };
    if Scheme::of(text).is_some() {
        return Ok(Some(text));
    }
    match text.split_once("://") {
        Some((scheme, _)) if !scheme.is_empty() && !scheme.contains(['/', '\\']) => Err(format!(
            "`{scheme}://` is not a store sonicflow can write to: use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///path, or a local folder"
        )),
        _ => Ok(None),
    }
}

/// Opens the bucket `url` names and proves it answers with one cheap
/// request (the first page of a listing of the prefix), before anything
/// is paid for. The error says why, without a credential.
pub fn open_checked(url: &str) -> Result<Bucket, String> {
    let bucket = Bucket::open(url).map_err(|e| e.message)?;
    let store = bucket.store().clone();
    let prefix = bucket.key("");
    let answer = super::run(async move {
        use futures::StreamExt as _;
        let mut listing = store.list(Some(&prefix));
        listing.next().await.transpose().map(|_| ())
    })?;
    match answer {
        Ok(()) => Ok(bucket),
        Err(object_store::Error::NotFound { .. }) => {
            Err("the bucket does not exist (or cannot be seen with these credentials)".to_owned())
        }
        Err(e) => Err(redact(&e.to_string())),
    }
}

/// What a publish sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Files sent now.
    pub sent: usize,
    /// Files found already there as recorded, not sent again.
    pub kept: usize,
    /// Of those sent, how many went as multipart uploads.
    pub multipart: usize,
    /// Bytes of files sent now.
    pub bytes: u64,
}

/// A publish that did not deliver everything: what is not in the bucket
/// (files, then results.json and report.html), and why.
#[derive(Debug, Clone)]
pub struct PublishError {
    pub url: String,
    pub unpublished: Vec<String>,
    pub cause: String,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 5;
        let (last, files): (Vec<&String>, Vec<&String>) = self
            .unpublished
            .iter()
            .partition(|n| [RESULTS, REPORT].contains(&n.as_str()));
        let mut names: Vec<String> = files.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
        if files.len() > SHOWN {
            names.push(format!(
                "and {} more",
                crate::format::count(files.len() - SHOWN, "file", "files")
            ));
        }
        names.extend(last.iter().map(|n| format!("`{n}`")));
        write!(
            f,
            "not published to `{}`: {} ({})",
            self.url,
            names.join(", "),
            self.cause
        )
    }
}

/// One file results.json lists, as far as publishing goes.
#[derive(Debug, Clone, Deserialize)]
struct Listed {
    path: String,
    sha256: String,
    bytes: u64,
}

impl Listed {
    /// What the manifest records once the file is published.
    fn record(&self) -> Record {
        Record {
            sha256: self.sha256.clone(),
            bytes: self.bytes,
            etag: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListedStep {
    #[serde(default)]
    files: Vec<Listed>,
}

/// The part of results.json a publish reads (the rest is not its business,
/// so a newer results.json with more fields publishes too).
#[derive(Debug, Deserialize)]
struct ListedResults {
    #[serde(default)]
    steps: Vec<ListedStep>,
}

/// One published file, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    sha256: String,
    bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    #[serde(default)]
    files: BTreeMap<String, Record>,
}

/// Publishes the run folder `dir` to `bucket`: the files its results.json
/// lists that are not there yet, then results.json, then report.html (if
/// the folder has one).
pub fn publish(bucket: &Bucket, dir: &Path) -> Result<Published, PublishError> {
    publish_in_parts(bucket, dir, part_size())
}

/// [`publish`], with files bigger than `part` bytes sent in parts of `part`.
fn publish_in_parts(bucket: &Bucket, dir: &Path, part: usize) -> Result<Published, PublishError> {
    let fail = |unpublished: Vec<String>, cause: String| PublishError {
        url: bucket.url().to_owned(),
        unpublished,
        cause,
    };
    let last: Vec<String> = [RESULTS, REPORT]
        .iter()
        .filter(|n| **n == RESULTS || dir.join(n).is_file())
        .map(|n| (*n).to_owned())
        .collect();
    let results_path = dir.join(RESULTS);
    let results = std::fs::read(&results_path).map_err(|e| {
        fail(
            last.clone(),
            format!("cannot read `{}`: {e}", results_path.display()),
        )
    })?;
    let files = listed_files(&results)
        .map_err(|e| fail(last.clone(), format!("`{}` {e}", results_path.display())))?;
    let every: Vec<String> = files
        .iter()
        .map(|f| f.path.clone())
        .chain(last.iter().cloned())
        .collect();
    let mut manifest = read_manifest(bucket).map_err(|e| fail(every.clone(), e))?;
    let there = listing(bucket).map_err(|e| fail(every.clone(), e))?;
    let mut done = Published::default();
    let pending: Vec<&Listed> = files
        .iter()
        .filter(|f| !is_there(&manifest, &there, &f.path, &f.record()))
        .collect();
    done.kept = files.len() - pending.len();
    let (mut unsaved_files, mut unsaved_bytes) = (0usize, 0u64);
    for (batch, chunk) in pending.chunks(FILES_IN_FLIGHT).enumerate() {
        let mut failed = Vec::new();
        for (file, sent) in chunk.iter().zip(upload_all(bucket, dir, chunk, part)) {
            match sent {
                Ok(sent) => {
                    done.sent += 1;
                    done.bytes += file.bytes;
                    done.multipart += usize::from(sent.multipart);
                    manifest.files.insert(
                        file.path.clone(),
                        Record {
                            etag: sent.etag,
                            ..file.record()
                        },
                    );
                    unsaved_files += 1;
                    unsaved_bytes += file.bytes;
                }
                Err(cause) => failed.push((file.path.clone(), cause)),
            }
        }
        if let Some((_, cause)) = failed.first() {
            // What did go is kept for the next publish.
            let _ = write_manifest(bucket, &manifest);
            let cause = cause.clone();
            let missing = failed
                .into_iter()
                .map(|(path, _)| path)
                .chain(
                    pending
                        .iter()
                        .skip((batch + 1) * FILES_IN_FLIGHT)
                        .map(|f| f.path.clone()),
                )
                .chain(last.iter().cloned())
                .collect();
            return Err(fail(missing, cause));
        }
        if (unsaved_files >= MANIFEST_EVERY_FILES || unsaved_bytes >= MANIFEST_EVERY_BYTES)
            // Losing this write costs only files sent again.
            && write_manifest(bucket, &manifest).is_ok()
        {
            (unsaved_files, unsaved_bytes) = (0, 0);
        }
    }
    let rest = |n: usize| last[n..].to_vec();
    write_manifest(bucket, &manifest).map_err(|e| fail(rest(0), e))?;
    bucket
        .put(RESULTS, Bytes::from(results))
        .map_err(|e| fail(rest(0), e.to_string()))?;
    if last.len() > 1 {
        let report_path = dir.join(REPORT);
        let report = std::fs::read(&report_path).map_err(|e| {
            fail(
                rest(1),
                format!("cannot read `{}`: {e}", report_path.display()),
            )
        })?;
        bucket
            .put(REPORT, Bytes::from(report))
            .map_err(|e| fail(rest(1), e.to_string()))?;
    }
    Ok(done)
}

/// The files results.json lists, each once, in its order. A path that
/// would leave the run folder (and the bucket's prefix) refuses the whole
/// publish: such a results.json was not written by a run.
fn listed_files(results: &[u8]) -> Result<Vec<Listed>, String> {
    let parsed: ListedResults =
        serde_json::from_slice(results).map_err(|e| format!("is not a results manifest: {e}"))?;
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    for file in parsed.steps.into_iter().flat_map(|s| s.files) {
        if !stays_inside(&file.path) || file.path.contains('\\') {
            return Err(format!(
                "lists the file `{}`, which is outside the run folder; nothing was published",
                file.path
            ));
        }
        if seen.insert(file.path.clone()) {
            files.push(file);
        }
    }
    Ok(files)
}

/// Whether `path` is in the bucket as `wanted`: the manifest says it was
/// published with these contents, and the listing shows the object with
/// that size and etag. A listing that lags only costs a file sent again.
fn is_there(
    manifest: &Manifest,
    there: &HashMap<String, (u64, Option<String>)>,
    path: &str,
    wanted: &Record,
) -> bool {
    let Some(record) = manifest.files.get(path) else {
        return false;
    };
    let Some((size, etag)) = there.get(path) else {
        return false;
    };
    record.sha256 == wanted.sha256
        && record.bytes == wanted.bytes
        && *size == wanted.bytes
        && (record.etag.is_none() || etag.is_none() || record.etag == *etag)
}

fn read_manifest(bucket: &Bucket) -> Result<Manifest, String> {
    let Some(object) = bucket
        .get(MANIFEST, MANIFEST_LIMIT)
        .map_err(|e| e.to_string())?
    else {
        return Ok(Manifest::default());
    };
    // One that cannot be read only means every file is sent again.
    Ok(serde_json::from_slice(&object.bytes).unwrap_or_default())
}

fn write_manifest(bucket: &Bucket, manifest: &Manifest) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?;
    bucket
        .put(MANIFEST, Bytes::from(text))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every object under the prefix: size and etag by relative path.
fn listing(bucket: &Bucket) -> Result<HashMap<String, (u64, Option<String>)>, String> {
    use futures::TryStreamExt as _;
    let store = bucket.store().clone();
    let prefix = bucket.key("");
    let metas = super::run(async move {
        store
            .list(Some(&prefix))
            .try_collect::<Vec<object_store::ObjectMeta>>()
            .await
    })?;
    let metas = match metas {
        Ok(metas) => metas,
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => {
            return Err(format!(
                "cannot list `{}`: {}",
                bucket.url(),
                redact(&e.to_string())
            ));
        }
    };
    Ok(metas
        .into_iter()
        .filter_map(|m| Some((bucket.relative(&m.location)?, (m.size, m.e_tag))))
        .collect())
}

/// How one file went.
struct Sent {
    etag: Option<String>,
    multipart: bool,
}

/// The part size: [`PART_SIZE`], or `SONICFLOW_PUBLISH_PART_SIZE` bytes
/// (at least 1 KiB) when set.
fn part_size() -> usize {
    std::env::var(PART_SIZE_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(PART_SIZE, |n| n.max(1024))
}

/// Sends the local files `chunk` names (in `dir`) at once, checking on
/// the way that each one's bytes are the ones results.json describes; how
/// each went, in order.
fn upload_all(
    bucket: &Bucket,
    dir: &Path,
    chunk: &[&Listed],
    part: usize,
) -> Vec<Result<Sent, String>> {
    let uploads: Vec<_> = chunk
        .iter()
        .map(|file| {
            let store = bucket.store().clone();
            let key = bucket.key(&file.path);
            let location = bucket.location(&file.path);
            let (path, wanted) = (dir.join(&file.path), file.record());
            async move {
                if wanted.bytes <= part as u64 {
                    single(store, key, &path, &wanted, &location).await
                } else {
                    multipart(store, key, &path, &wanted, &location, part).await
                }
            }
        })
        .collect();
    match super::run(futures::future::join_all(uploads)) {
        Ok(sent) => sent,
        Err(e) => chunk.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// A file that does not hold what results.json says it does.
fn changed(path: &Path, wanted: &Record, bytes: u64, sha256: &str) -> String {
    format!(
        "`{}` is {bytes} bytes with sha256 {sha256}, but results.json records {} bytes with sha256 {}; download it again with `sonicflow run --resume`",
        path.display(),
        wanted.bytes,
        wanted.sha256
    )
}

async fn single(
    store: Arc<dyn ObjectStore>,
    key: Key,
    path: &Path,
    wanted: &Record,
    location: &str,
) -> Result<Sent, String> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != wanted.sha256 || bytes.len() as u64 != wanted.bytes {
        return Err(changed(path, wanted, bytes.len() as u64, &sha256));
    }
    let put = store
        .put(&key, PutPayload::from(bytes))
        .await
        .map_err(|e| format!("cannot write `{location}`: {}", redact(&e.to_string())))?;
    Ok(Sent {
        etag: put.e_tag,
        multipart: false,
    })
}

async fn multipart(
    store: Arc<dyn ObjectStore>,
    key: Key,
    path: &Path,
    wanted: &Record,
    location: &str,
    part: usize,
) -> Result<Sent, String> {
    use tokio::io::AsyncReadExt as _;
    let store_error =
        |e: object_store::Error| format!("cannot write `{location}`: {}", redact(&e.to_string()));
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let upload = store.put_multipart(&key).await.map_err(store_error)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; part.min(1 << 20)];
    let failed = loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) => break Some(format!("cannot read `{}`: {e}", path.display())),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            break Some(store_error(e));
        }
        writer.write(&buf[..n]);
    };
    let sha256 = hex::encode(hasher.finalize());
    let failed = failed.or_else(|| {
        (sha256 != wanted.sha256 || total != wanted.bytes)
            .then(|| changed(path, wanted, total, &sha256))
    });
    if let Some(cause) = failed {
        // Never completed, the upload shows under no name; aborting it
        // frees its parts (a lifecycle rule does, if this fails too).
        let _ = writer.abort().await;
        return Err(cause);
    }
    let put = writer.finish().await.map_err(store_error)?;
    Ok(Sent {
        etag: put.e_tag,
        multipart: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(paths: &[(&str, &[u8])]) -> Vec<u8> {
        let files: Vec<serde_json::Value> = paths
            .iter()
            .map(|(p, bytes)| {
                serde_json::json!({
                    "path": p, "sha256": hex::encode(Sha256::digest(bytes)),
                    "bytes": bytes.len(), "url": "https://x/y",
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "steps": [{ "files": files }], "more": 1 }))
            .unwrap_or_default()
    }

    #[test]
    fn out_tells_urls_from_folders_and_refuses_unknown_schemes() {
        assert_eq!(store_url(Path::new("s3://b/p")), Ok(Some("s3://b/p")));
        assert_eq!(store_url(Path::new("runs/out")), Ok(None));
        assert_eq!(store_url(Path::new("/abs/out")), Ok(None));
        assert!(store_url(Path::new("ftp://host/x")).is_err());
    }

    #[test]
    fn a_path_that_climbs_out_refuses_the_publish() {
        let text = results(&[("ok.mp3", b"a"), ("../../etc/passwd", b"b")]);
        let error = listed_files(&text).err().unwrap_or_default();
        assert!(error.contains("../../etc/passwd"), "{error}");
        assert!(listed_files(&results(&[("/etc/passwd", b"x")])).is_err());
        let fine = listed_files(&results(&[("a/b.mp3", b"a"), ("a/b.mp3", b"a")]));
        assert_eq!(fine.map(|f| f.len()), Ok(1), "each file once");
    }

    #[test]
    fn a_file_store_gets_every_file_then_sends_only_what_changed() {
        let run = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        std::fs::create_dir_all(run.path().join("row")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(run.path().join("row/small.mp3"), b"small")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(run.path().join("big.wav"), &big).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            run.path().join(RESULTS),
            results(&[("row/small.mp3", b"small"), ("big.wav", &big)]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(run.path().join(REPORT), b"<html>").unwrap_or_else(|e| panic!("{e}"));
        let store = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bucket = Bucket::open(&format!("file://{}", store.path().display()))
            .unwrap_or_else(|e| panic!("{e}"));
        let first = publish_in_parts(&bucket, run.path(), 1024).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((first.sent, first.kept, first.multipart), (2, 0, 1));
        for (rel, bytes) in [
            ("row/small.mp3", &b"small"[..]),
            ("big.wav", &big),
            (REPORT, b"<html>"),
        ] {
            let got = bucket.get(rel, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.map(|o| o.bytes.to_vec()), Some(bytes.to_vec()), "{rel}");
        }
        let again = publish(&bucket, run.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((again.sent, again.kept), (0, 2), "nothing sent twice");
        // A local file that no longer holds what results.json records is
        // not published, and nothing after it either.
        std::fs::write(run.path().join("row/small.mp3"), b"SMALL")
            .unwrap_or_else(|e| panic!("{e}"));
        bucket
            .delete("row/small.mp3")
            .unwrap_or_else(|e| panic!("{e}"));
        let error = publish(&bucket, run.path()).err().map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(
            error.contains("row/small.mp3") && error.contains("results.json"),
            "{error}"
        );
    }
}
