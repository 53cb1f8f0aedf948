//! Which files a finished step instance yields and where they go: at the
//! path the run's `artifacts.name` template gives each (see
//! [`naming`](super::naming)), every component sanitised and each file's
//! folder checked to be inside `out_dir`. A generated clip's cover art is
//! saved beside its audio.
//!
//! A failure here is `ErrorKind::Local`, never `Transient`: the remote work
//! is finished and paid, so the engine must not resend the request to get
//! the file again.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::action::Action;
use crate::engine::{ErrorKind, Job, SavedFile, StepError};
use crate::report::FileKind;

use sha2::{Digest, Sha256};

use super::download::{self, DownloadKinds, DownloadOptions};
use super::hosts::HostPolicy;
use super::naming::{self, FileFacts};
use super::sanitize;

/// One file to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub url: String,
    /// The clip the file belongs to.
    pub clip_id: String,
    pub ext: &'static str,
    pub kind: FileKind,
    /// 1-based position of its clip in the instance's output.
    pub n: usize,
    pub title: Option<String>,
    pub stem: Option<String>,
}

impl Wanted {
    fn new(url: &str, clip_id: &str, ext: &'static str, kind: FileKind, n: usize) -> Wanted {
        Wanted {
            url: url.to_owned(),
            clip_id: clip_id.to_owned(),
            ext,
            kind,
            n,
            title: None,
            stem: None,
        }
    }
}

fn str_at<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// The extension of an image URL's path, `jpeg` when it names none known.
fn image_ext(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => "png",
        Some("webp") => "webp",
        Some("gif") => "gif",
        Some("jpg") => "jpg",
        _ => "jpeg",
    }
}

/// Each clip's audio and cover art, numbered in list order.
fn clips_audio(list: &[&Value], out: &mut Vec<Wanted>) {
    let mut n = 0;
    for c in list {
        let Some(id) = str_at(c, "clip_id") else {
            continue;
        };
        let Some(audio) = str_at(c, "audio_url").filter(|u| !u.is_empty()) else {
            continue;
        };
        n += 1;
        let title = str_at(c, "title").map(str::to_owned);
        out.push(Wanted {
            title: title.clone(),
            ..Wanted::new(audio, id, "mp3", FileKind::Audio, n)
        });
        if let Some(image) = str_at(c, "image_url").filter(|u| !u.is_empty()) {
            out.push(Wanted {
                title,
                ..Wanted::new(image, id, image_ext(image), FileKind::Image, n)
            });
        }
    }
}

fn stems(list: Option<&Value>, out: &mut Vec<Wanted>) {
    let items = list.and_then(Value::as_array).into_iter().flatten();
    for (i, c) in items.enumerate() {
        if let (Some(url), Some(id)) = (str_at(c, "audio_url"), str_at(c, "clip_id")) {
            out.push(Wanted {
                stem: str_at(c, "name").map(str::to_owned),
                ..Wanted::new(url, id, "mp3", FileKind::Stem, i + 1)
            });
        }
    }
}

/// The files `outputs` points at that `kinds` asks for, in output order.
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
                out.push(Wanted::new(url, source, "wav", FileKind::Wav, 1));
            }
        }
        Action::Midi if kinds.midi => {
            if let Some(url) = str_at(outputs, "midi_url") {
                out.push(Wanted::new(url, source, "mid", FileKind::Midi, 1));
            }
        }
        Action::StemsBasic | Action::StemsFull if kinds.stems => {
            stems(outputs.get("stems"), &mut out);
        }
        a if a.generates() && kinds.audio => {
            // The same clip listed twice is saved once, under its first place.
            let mut listed = BTreeSet::new();
            let clips: Vec<&Value> = ["clips", "full_clips"]
                .into_iter()
                .filter_map(|k| outputs.get(k).and_then(Value::as_array))
                .flatten()
                .filter(|c| listed.insert(str_at(c, "clip_id").unwrap_or_default().to_owned()))
                .collect();
            clips_audio(&clips, &mut out);
        }
        _ => {}
    }
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

/// Creates the folder of `relative` and proves it lies inside `root`
/// (`out_dir`, canonical); returns it, canonical.
async fn file_dir(job: &Job, root: &Path, relative: &Path) -> Result<PathBuf, StepError> {
    let parent = relative.parent().unwrap_or(Path::new(""));
    let dir = root.join(parent);
    let io =
        |e: std::io::Error, p: &Path| local(job, format!("cannot create `{}`: {e}", p.display()));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| io(e, &dir))?;
    let real = tokio::fs::canonicalize(&dir)
        .await
        .map_err(|e| io(e, &dir))?;
    if !real.starts_with(root) {
        return Err(local(
            job,
            format!(
                "`{}` resolves outside the output folder `{}`",
                dir.display(),
                root.display()
            ),
        ));
    }
    Ok(real)
}

/// The relative path of each wanted file of `job`: unique within the
/// instance (decided in output order, so whatever order downloads finish
/// in) and across the run.
pub(crate) fn paths(job: &Job, wanted: &[Wanted], options: &DownloadOptions) -> Vec<PathBuf> {
    let fan_out = job.id.fan_out();
    let mut taken = HashSet::new();
    let mut claims = options
        .claims
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    wanted
        .iter()
        .map(|w| {
            let facts = FileFacts {
                row: job.id.row_key.as_deref(),
                step: &job.id.step_id,
                instance: &fan_out,
                title: w.title.as_deref(),
                n: w.n,
                clip: &w.clip_id,
                stem: w.stem.as_deref(),
                kind: w.kind,
                ext: w.ext,
            };
            let rendered = options.names.for_kind(w.kind).render(&facts);
            let mut path = naming::dedupe(rendered, &mut taken);
            let owner = naming::owner(&job.id.to_string(), &w.clip_id, w.kind);
            // Another instance holds it: only a template that runs its
            // placeholders together can get here.
            while claims.get(&path).is_some_and(|o| *o != owner) {
                let digest = hex::encode(Sha256::digest(owner.as_bytes()));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let renamed = match name.rsplit_once('.') {
                    Some((stem, ext)) => format!("{stem}-{}.{ext}", &digest[..8]),
                    None => format!("{name}-{}", &digest[..8]),
                };
                path = naming::dedupe(path.with_file_name(renamed), &mut taken);
            }
            claims.insert(path.clone(), owner);
            path
        })
        .collect()
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
    let out_dir = &options.out_dir;
    tokio::fs::create_dir_all(out_dir)
        .await
        .map_err(|e| local(job, format!("cannot create `{}`: {e}", out_dir.display())))?;
    let root = tokio::fs::canonicalize(out_dir)
        .await
        .map_err(|e| local(job, format!("cannot read `{}`: {e}", out_dir.display())))?;
    let paths = paths(job, &wanted, options);
    let mut saved = Vec::with_capacity(wanted.len());
    for (w, relative) in wanted.into_iter().zip(paths) {
        // URLs are quoted in errors on one line of bounded length.
        let shown = crate::api::one_line(&w.url);
        let url = parse_url(&w.url)
            .and_then(|u| hosts.check(&u).map(|()| u))
            .map_err(|m| local(job, format!("`{shown}` was not downloaded: {m}")))?;
        let dir = file_dir(job, &root, &relative).await?;
        let name = relative.file_name().unwrap_or_default();
        let result = download::fetch(http, options, &url, &dir.join(name)).await;
        let file = result.map_err(|f| {
            let place = if f.local { "saving" } else { "downloading" };
            local(job, format!("{place} `{shown}` failed: {}", f.message))
        })?;
        saved.push(SavedFile {
            path: sanitize::slash_path(&relative),
            sha256: file.sha256,
            bytes: file.bytes,
            url: w.url,
            clip_id: Some(w.clip_id),
            kind: w.kind,
            stem: w.stem,
            title: w.title,
        });
    }
    Ok(saved)
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
            "clips": [{"clip_id": "a", "title": "Rain", "audio_url": "http://h/a.mp3", "image_url": "http://h/a.png?x=1"}],
            "full_clips": [{"clip_id": "f", "audio_url": "http://h/f.mp3", "image_url": ""},
                           {"clip_id": "f", "audio_url": "http://h/f.mp3"}],
        });
        let create = job(Action::ReplaceSection, json!({}));
        let all = wanted(&create, &song, DownloadKinds::all());
        let got: Vec<(&str, &str, usize)> = all
            .iter()
            .map(|w| (w.clip_id.as_str(), w.ext, w.n))
            .collect();
        assert_eq!(got, [("a", "mp3", 1), ("a", "png", 1), ("f", "mp3", 2)]);
        assert_eq!(all[1].kind, FileKind::Image);
        assert_eq!(all[1].title.as_deref(), Some("Rain"));
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
            [Wanted::new(
                "http://h/x.wav",
                "src",
                "wav",
                FileKind::Wav,
                1
            )]
        );
        let only_audio = DownloadKinds {
            wav: false,
            ..DownloadKinds::all()
        };
        assert!(wanted(&wav, &json!({"wav_url": "http://h/x.wav"}), only_audio).is_empty());
    }

    fn shown(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| sanitize::slash_path(p)).collect()
    }

    #[test]
    fn stems_are_named_by_their_stem_and_alike_ones_numbered_in_output_order() {
        let split = json!({"stems": [
            {"name": "vocals", "clip_id": "v", "audio_url": "http://h/v.mp3"},
            {"name": "vocals", "clip_id": "w", "audio_url": "http://h/w.mp3"},
            {"name": "drums", "clip_id": "d", "audio_url": "http://h/d.mp3"},
        ]});
        let mut stems = job(Action::StemsFull, json!({}));
        stems.id.row_key = Some("song07".into());
        stems.id.path = vec![1];
        let list = wanted(&stems, &split, DownloadKinds::all());
        let options = DownloadOptions::new("out");
        let expected = [
            "song07/s/1/vocals.mp3",
            "song07/s/1/vocals-2.mp3",
            "song07/s/1/drums.mp3",
        ];
        assert_eq!(shown(&paths(&stems, &list, &options)), expected);
        // Asked again (a retried download, a resumed run fetching again),
        // the instance's files keep their names.
        assert_eq!(shown(&paths(&stems, &list, &options)), expected);
    }

    #[test]
    fn instances_whose_files_render_alike_never_share_a_name() {
        let split =
            json!({"stems": [{"name": "vocals", "clip_id": "v", "audio_url": "http://h/v.mp3"}]});
        let one = job(Action::StemsFull, json!({}));
        let mut two = one.clone();
        two.id.row_key = Some("r".into());
        let list = wanted(&one, &split, DownloadKinds::all());
        let template = naming::NameTemplate::parse("{step}/{stem}.{ext}", naming::Needs::default());
        let options = DownloadOptions::new("out").with_names(naming::FileNames {
            stems: template.unwrap(),
            ..naming::FileNames::default()
        });
        let first = shown(&paths(&one, &list, &options));
        let second = shown(&paths(&two, &list, &options));
        assert_eq!(first, ["s/vocals.mp3"]);
        assert!(second[0].starts_with("s/vocals-"), "{second:?}");
        assert_eq!(shown(&paths(&one, &list, &options)), first);
    }

    #[test]
    fn a_resumed_run_keeps_the_names_its_journal_holds() {
        let split =
            json!({"stems": [{"name": "vocals", "clip_id": "v", "audio_url": "http://h/v.mp3"}]});
        let one = job(Action::StemsFull, json!({}));
        let mut two = one.clone();
        two.id.row_key = Some("r".into());
        let list = wanted(&one, &split, DownloadKinds::all());
        let template = naming::NameTemplate::parse("{step}/{stem}.{ext}", naming::Needs::default());
        let names = naming::FileNames {
            stems: template.unwrap(),
            ..naming::FileNames::default()
        };
        // Before the kill, `one` saved `s/vocals.mp3`; after it, `two`
        // happens to download first.
        let saved = [(
            "s/vocals.mp3".to_owned(),
            naming::owner("s", "v", FileKind::Stem),
        )];
        let options = DownloadOptions::new("out")
            .with_names(names)
            .with_saved(saved);
        let second = shown(&paths(&two, &list, &options));
        assert_ne!(second, ["s/vocals.mp3"], "never another's recorded file");
        assert_eq!(shown(&paths(&one, &list, &options)), ["s/vocals.mp3"]);
    }

    #[test]
    fn only_web_urls_are_accepted() {
        assert!(parse_url("https://cdn.example/a.mp3").is_ok());
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
