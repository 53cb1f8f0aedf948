//! Which files a finished step instance yields and where they go:
//! `<out_dir>/<step_id>/<instance…>/<clip_id>.<ext>`, every component
//! sanitised and the final folder checked to be inside `out_dir`. A clip id
//! that sanitising changed, or whose name another file of the instance
//! already took, gets `-<8 hex digits of the raw id's sha256>` appended,
//! so two ids never share a file.
//!
//! A failure here is `ErrorKind::Local`, never `Transient`: the remote work
//! is finished and paid, so the engine must not resend the request to get
//! the file again.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::action::Action;
use crate::engine::{ErrorKind, Job, SavedFile, StepError};

use sha2::{Digest, Sha256};

use super::download::{self, DownloadKinds, DownloadOptions};
use super::hosts::HostPolicy;
use super::sanitize;

/// One file to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub url: String,
    /// The clip the file belongs to; names the file.
    pub clip_id: String,
    pub ext: &'static str,
}

fn str_at<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn clips_audio(list: Option<&Value>, out: &mut Vec<Wanted>) {
    for c in list.and_then(Value::as_array).into_iter().flatten() {
        if let (Some(url), Some(id)) = (str_at(c, "audio_url"), str_at(c, "clip_id")) {
            out.push(Wanted {
                url: url.to_owned(),
                clip_id: id.to_owned(),
                ext: "mp3",
            });
        }
    }
}

/// The files `outputs` points at that `kinds` asks for.
pub(crate) fn wanted(job: &Job, outputs: &Value, kinds: DownloadKinds) -> Vec<Wanted> {
    let mut out = Vec::new();
    let source = job
        .fields
        .get("clip")
        .and_then(Value::as_str)
        .unwrap_or("clip");
    match job.action {
        Action::Wav if kinds.wav => {
            if let Some(url) = str_at(outputs, "wav_url") {
                out.push(Wanted {
                    url: url.to_owned(),
                    clip_id: source.to_owned(),
                    ext: "wav",
                });
            }
        }
        Action::Midi if kinds.midi => {
            if let Some(url) = str_at(outputs, "midi_url") {
                out.push(Wanted {
                    url: url.to_owned(),
                    clip_id: source.to_owned(),
                    ext: "mid",
                });
            }
        }
        Action::StemsBasic | Action::StemsFull if kinds.stems => {
            clips_audio(outputs.get("stems"), &mut out);
        }
        a if a.generates() && kinds.audio => {
            clips_audio(outputs.get("clips"), &mut out);
            clips_audio(outputs.get("full_clips"), &mut out);
        }
        _ => {}
    }
    // The same clip listed twice is saved once.
    let mut seen = BTreeSet::new();
    out.retain(|w| seen.insert((w.clip_id.clone(), w.ext)));
    out
}

fn local(job: &Job, what: String) -> StepError {
    StepError::new(
        ErrorKind::Local,
        format!(
            "{what}; `{}` finished remotely and was paid, so its request is not resent",
            job.id
        ),
    )
}

/// Creates the instance folder and proves it lies inside `out_dir`.
async fn instance_dir(job: &Job, out_dir: &Path) -> Result<(PathBuf, PathBuf), StepError> {
    let relative = sanitize::instance_dir(&job.id.step_id, &job.id.instance());
    let dir = out_dir.join(&relative);
    let io =
        |e: std::io::Error, p: &Path| local(job, format!("cannot create `{}`: {e}", p.display()));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io(e, &dir))?;
    let root = tokio::fs::canonicalize(out_dir)
        .await
        .map_err(|e| io(e, out_dir))?;
    let real = tokio::fs::canonicalize(&dir)
        .await
        .map_err(|e| io(e, &dir))?;
    if !real.starts_with(&root) {
        return Err(local(
            job,
            format!(
                "`{}` resolves outside the output folder `{}`",
                dir.display(),
                root.display()
            ),
        ));
    }
    Ok((real, relative))
}

/// Saves every wanted file of `job` and records them.
pub(crate) async fn save_all(
    http: &reqwest::Client,
    hosts: &HostPolicy,
    options: &DownloadOptions,
    job: &Job,
    outputs: &Value,
) -> Result<Vec<SavedFile>, StepError> {
    let wanted = wanted(job, outputs, options.kinds);
    if !options.enabled || wanted.is_empty() {
        return Ok(Vec::new());
    }
    let (dir, relative) = instance_dir(job, &options.out_dir).await?;
    let mut saved = Vec::with_capacity(wanted.len());
    let mut names = HashSet::new();
    for w in wanted {
        // URLs are quoted in errors on one line of bounded length.
        let shown = crate::api::one_line(&w.url);
        let url = parse_url(&w.url)
            .and_then(|u| hosts.check(&u).map(|()| u))
            .map_err(|m| local(job, format!("`{shown}` was not downloaded: {m}")))?;
        let name = file_name(&w.clip_id, w.ext, &mut names);
        let result = download::fetch(http, options, &url, &dir.join(&name)).await;
        let file = result.map_err(|f| {
            let place = if f.local { "saving" } else { "downloading" };
            local(job, format!("{place} `{shown}` failed: {}", f.message))
        })?;
        saved.push(SavedFile {
            path: sanitize::slash_path(&relative.join(&name)),
            sha256: file.sha256,
            bytes: file.bytes,
            url: w.url,
        });
    }
    Ok(saved)
}

/// A file name for `clip_id` that no earlier name in `taken` has.
fn file_name(clip_id: &str, ext: &str, taken: &mut HashSet<String>) -> String {
    let safe = sanitize::component(clip_id);
    let plain = format!("{safe}.{ext}");
    if safe == clip_id && taken.insert(plain.clone()) {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(clip_id.as_bytes()));
    let mut name = format!("{safe}-{}.{ext}", &digest[..8]);
    // Only an id spelled like another's hashed name can get here twice.
    let mut n = 1;
    while !taken.insert(name.clone()) {
        n += 1;
        name = format!("{safe}-{}-{n}.{ext}", &digest[..8]);
    }
    name
}

/// Only plain web URLs are fetched: no `file:`, no other schemes.
fn parse_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("it is not a valid URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "it uses scheme `{}`; only http and https are downloaded",
            crate::api::one_line(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::InstanceId;
    use serde_json::json;

    fn job(action: Action, fields: Value) -> Job {
        Job {
            id: InstanceId {
                row: 0,
                row_key: None,
                step: 0,
                step_id: "s".into(),
                path: vec![],
                names: Vec::new(),
            },
            action,
            operation: "",
            fields: fields.as_object().cloned().unwrap_or_default(),
            attempt: 1,
            request_hash: String::new(),
        }
    }

    #[test]
    fn kinds_choose_the_files_and_repeated_clips_are_saved_once() {
        let song = json!({
            "clips": [{"clip_id": "a", "audio_url": "http://h/a.mp3"}],
            "full_clips": [{"clip_id": "f", "audio_url": "http://h/f.mp3"},
                           {"clip_id": "f", "audio_url": "http://h/f.mp3"}],
        });
        let create = job(Action::ReplaceSection, json!({}));
        let all = wanted(&create, &song, DownloadKinds::all());
        let ids: Vec<&str> = all.iter().map(|w| w.clip_id.as_str()).collect();
        assert_eq!(ids, ["a", "f"]);
        let no_audio = DownloadKinds {
            audio: false,
            ..DownloadKinds::all()
        };
        assert!(wanted(&create, &song, no_audio).is_empty());
        let wav = job(Action::Wav, json!({"clip": "src"}));
        let files = wanted(
            &wav,
            &json!({"wav_url": "http://h/x.wav"}),
            DownloadKinds::all(),
        );
        assert_eq!(
            files,
            [Wanted {
                url: "http://h/x.wav".into(),
                clip_id: "src".into(),
                ext: "wav"
            }]
        );
        let only_audio = DownloadKinds {
            wav: false,
            ..DownloadKinds::all()
        };
        assert!(wanted(&wav, &json!({"wav_url": "http://h/x.wav"}), only_audio).is_empty());
    }

    #[test]
    fn names_are_unique_and_changed_ids_are_marked() {
        let mut taken = HashSet::new();
        let a = file_name("a/b", "mp3", &mut taken);
        let b = file_name("a_b", "mp3", &mut taken);
        let c = file_name("a?b", "mp3", &mut taken);
        assert_eq!(b, "a_b.mp3");
        assert!(
            a.starts_with("a_b-") && c.starts_with("a_b-") && a != c,
            "{a} {c}"
        );
        // The plain id after its hashed twin still gets its own name.
        let mut taken = HashSet::new();
        let first = file_name("x y", "mp3", &mut taken);
        let twin = first.trim_end_matches(".mp3").to_owned();
        let again = file_name(&twin, "mp3", &mut taken);
        assert_ne!(first, again);
        assert_eq!(file_name("x", "wav", &mut taken), "x.wav");
    }

    #[test]
    fn only_web_urls_are_accepted() {
        assert!(parse_url("https://cdn.example/a.mp3").is_ok());
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
