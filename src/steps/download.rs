//! Saving one remote file: streamed to `<name>.part` while hashing, fsynced,
//! then renamed, so a file without `.part` is always complete. Transient
//! failures (connection, timeout, 5xx, 429, a body cut short) are retried a
//! bounded number of times with a doubling delay. A file larger than
//! [`DownloadOptions::max_bytes`] is refused, and one file may take at most
//! [`DownloadOptions::deadline`], its retries included.
//!
//! Downloads go through their own HTTP client that sends no credentials:
//! file hosts must never see the API key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::hosts::HostRule;
use crate::api::{describe_transport, human_bytes};

/// Largest file saved unless `--max-download-size` says otherwise.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 512 << 20;

/// Longest one file may take, retries included.
pub const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// How downloads behave.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Where files are saved, created when needed, at the paths
    /// [`names`](Self::names) gives them; every component keeps only
    /// `[A-Za-z0-9._-]`, never starting with a dot.
    pub out_dir: PathBuf,
    /// Nothing is downloaded when false.
    pub enabled: bool,
    /// Which kinds of file to save.
    pub kinds: DownloadKinds,
    /// Attempts after the first one, for transient failures.
    pub retries: u32,
    /// Delay before the first retry; doubles after each.
    pub backoff: Duration,
    /// Divides every delay (the sandbox runs faster than real time).
    pub time_scale: f64,
    /// Limit for one attempt at a download.
    pub timeout: Duration,
    /// Limit for one file, all attempts and delays included.
    pub deadline: Duration,
    /// Largest file saved, in bytes.
    pub max_bytes: u64,
    /// Hosts allowed besides the service's and the API's own
    /// (`--allow-download-host`).
    pub allowed_hosts: Vec<HostRule>,
    /// How saved files are named (`artifacts.name`).
    pub names: super::naming::FileNames,
    /// Which file of the run holds each path so far: the last guard
    /// against two instances' files sharing a name.
    pub(crate) claims: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<PathBuf, String>>>,
}

impl DownloadOptions {
    /// Everything enabled into `out_dir`, with 3 retries from 1 s.
    pub fn new(out_dir: impl Into<PathBuf>) -> DownloadOptions {
        DownloadOptions {
            out_dir: out_dir.into(),
            enabled: true,
            kinds: DownloadKinds::all(),
            retries: 3,
            backoff: Duration::from_secs(1),
            time_scale: 1.0,
            timeout: Duration::from_secs(300),
            deadline: DOWNLOAD_DEADLINE,
            max_bytes: DEFAULT_MAX_DOWNLOAD,
            allowed_hosts: Vec::new(),
            names: super::naming::FileNames::default(),
            claims: std::sync::Arc::default(),
        }
    }

    /// Downloads turned off.
    pub fn disabled() -> DownloadOptions {
        DownloadOptions {
            enabled: false,
            ..DownloadOptions::new(".")
        }
    }

    /// Names files by these templates.
    pub fn with_names(mut self, names: super::naming::FileNames) -> Self {
        self.names = names;
        self
    }

    /// Files already saved in the output folder, by path and owner (see
    /// [`naming::owner`](super::naming::owner)): a run taken up again keeps
    /// them, and no other file of it is given their names.
    pub fn with_saved(self, saved: impl IntoIterator<Item = (String, String)>) -> Self {
        {
            let mut claims = self
                .claims
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (path, owner) in saved {
                claims.insert(PathBuf::from(path), owner);
            }
        }
        self
    }

    pub fn with_kinds(mut self, kinds: DownloadKinds) -> Self {
        self.kinds = kinds;
        self
    }

    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// A size cap per file and a deadline per file.
    pub fn with_limits(mut self, max_bytes: u64, deadline: Duration) -> Self {
        self.max_bytes = max_bytes;
        self.deadline = deadline;
        self
    }

    /// Allows more download hosts.
    pub fn with_allowed_hosts(mut self, hosts: Vec<HostRule>) -> Self {
        self.allowed_hosts = hosts;
        self
    }

    pub fn with_time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let base = self.backoff.saturating_mul(1 << attempt.min(16));
        if self.time_scale.is_finite() && self.time_scale > 0.0 {
            base.div_f64(self.time_scale)
        } else {
            base
        }
    }
}

/// Reads a size: bytes (`1048576`), or a number with a unit, decimal
/// (`kB`, `MB`, `GB`) or binary (`KiB`, `MiB`, `GiB`); case does not matter.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "`{raw}` has an unknown unit `{other}`: use bytes, kB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a size: give e.g. `800MB` or `2GiB`"))?;
    let bytes = value * factor as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes <= u64::MAX as f64) {
        return Err(format!("`{raw}` is not a size of at least one byte"));
    }
    Ok(bytes as u64)
}

/// Which result files to save.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadKinds {
    /// Generated clips' `audio_url` (`.mp3`).
    pub audio: bool,
    /// `wav_url` of `wav` steps (`.wav`).
    pub wav: bool,
    /// `midi_url` of `midi` steps (`.mid`).
    pub midi: bool,
    /// Each stem's `audio_url` (`.mp3`).
    pub stems: bool,
}

impl DownloadKinds {
    pub fn all() -> DownloadKinds {
        DownloadKinds {
            audio: true,
            wav: true,
            midi: true,
            stems: true,
        }
    }
}

/// A saved file, before it is recorded relative to the output folder.
pub(crate) struct Saved {
    pub sha256: String,
    pub bytes: u64,
}

/// Why one attempt failed, and whether another may help.
pub(crate) struct Failure {
    pub message: String,
    pub transient: bool,
    /// The remote side is fine; this machine could not write.
    pub local: bool,
}

impl Failure {
    fn remote(message: String, transient: bool) -> Failure {
        Failure {
            message,
            transient,
            local: false,
        }
    }

    fn local(message: String) -> Failure {
        Failure {
            message,
            transient: false,
            local: true,
        }
    }
}

/// Downloads `url` to `target` with retries, within the deadline;
/// `target`'s folder must exist.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    options: &DownloadOptions,
    url: &reqwest::Url,
    target: &Path,
) -> Result<Saved, Failure> {
    let mut attempt = 0;
    let attempts = async {
        loop {
            match fetch_once(http, options, url, target).await {
                Ok(saved) => return Ok(saved),
                Err(f) if f.transient && attempt < options.retries => {
                    tokio::time::sleep(options.delay(attempt)).await;
                    attempt += 1;
                }
                Err(mut f) => {
                    if f.transient {
                        f.message = format!("{} (after {} attempts)", f.message, attempt + 1);
                    }
                    return Err(f);
                }
            }
        }
    };
    match tokio::time::timeout(options.deadline, attempts).await {
        Ok(result) => result,
        Err(_) => {
            // The attempt in progress was dropped: its `.part` goes too.
            let _ = tokio::fs::remove_file(part_path(target)).await;
            Err(Failure::remote(
                format!(
                    "not complete within the {} deadline for one file",
                    humantime::format_duration(options.deadline)
                ),
                false,
            ))
        }
    }
}

fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

async fn fetch_once(
    http: &reqwest::Client,
    options: &DownloadOptions,
    url: &reqwest::Url,
    target: &Path,
) -> Result<Saved, Failure> {
    let part = part_path(target);
    let result = stream_to(http, options, url, &part).await;
    let saved = match result {
        Ok(saved) => saved,
        Err(f) => {
            // Leave nothing behind that could pass for a download.
            let _ = tokio::fs::remove_file(&part).await;
            return Err(f);
        }
    };
    if let Err(e) = tokio::fs::rename(&part, target).await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(Failure::local(format!(
            "cannot rename `{}` into place: {e}",
            part.display()
        )));
    }
    Ok(saved)
}

async fn stream_to(
    http: &reqwest::Client,
    options: &DownloadOptions,
    url: &reqwest::Url,
    part: &Path,
) -> Result<Saved, Failure> {
    // A refused redirect is the policy speaking: trying again cannot help.
    let transport = |e: reqwest::Error| Failure::remote(describe_transport(&e), !e.is_redirect());
    let resp = http
        .get(url.clone())
        .timeout(options.timeout)
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status();
    let host = resp.url().host_str().unwrap_or("the server").to_owned();
    if !status.is_success() {
        let transient = status.is_server_error() || status.as_u16() == 429;
        let moved = if status.is_redirection() {
            " (a redirect without a usable `Location`)"
        } else {
            ""
        };
        return Err(Failure::remote(
            format!("`{host}` answered {status}{moved}"),
            transient,
        ));
    }
    let too_large = || {
        Failure::remote(
            format!(
                "`{host}` sends a file larger than the {} limit; raise it with `--max-download-size`",
                human_bytes(options.max_bytes)
            ),
            false,
        )
    };
    if resp.content_length().is_some_and(|n| n > options.max_bytes) {
        return Err(too_large());
    }
    let write =
        |e: std::io::Error| Failure::local(format!("cannot write `{}`: {e}", part.display()));
    // A stale `.part` (even a planted link) is removed, then the file is
    // created fresh: writing never follows a link out of the folder.
    let _ = tokio::fs::remove_file(part).await;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(part)
        .await
        .map_err(write)?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(transport)?;
        bytes += chunk.len() as u64;
        if bytes > options.max_bytes {
            return Err(too_large());
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write)?;
    }
    file.flush().await.map_err(write)?;
    // The rename must not become visible before the data is on disk.
    file.sync_all().await.map_err(write)?;
    Ok(Saved {
        sha256: hex::encode(hasher.finalize()),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        let rows: &[(&str, Option<u64>)] = &[
            ("1048576", Some(1 << 20)),
            ("512MiB", Some(512 << 20)),
            ("800MB", Some(800_000_000)),
            ("2 GiB", Some(2 << 30)),
            ("1.5kb", Some(1500)),
            ("0", None),
            ("-1MB", None),
            ("lots", None),
            ("5 parsecs", None),
            ("99999999999999999999999GB", None),
        ];
        for (raw, want) in rows {
            assert_eq!(parse_size(raw).ok(), *want, "{raw}");
        }
    }

    #[test]
    fn delays_double_and_follow_the_time_scale() {
        let o = DownloadOptions::new("out")
            .with_retries(3, Duration::from_secs(1))
            .with_time_scale(1000.0);
        assert_eq!(o.delay(0), Duration::from_millis(1));
        assert_eq!(o.delay(2), Duration::from_millis(4));
        assert_eq!(part_path(Path::new("a/b.mp3")), Path::new("a/b.mp3.part"));
    }
}
