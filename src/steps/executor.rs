//! [`ApiExecutor`]: the engine's `StepExecutor` over the real client.
//!
//! Submit re-checks the rules on resolved fields, builds the request, sends
//! it once (never retrying: the engine decides from the error kind) and, for
//! synchronous endpoints, shapes and downloads the result at once. Poll
//! reads the task and, once every clip is terminal, shapes and downloads.
//!
//! A download failure is `ErrorKind::Local` (never resent: the work is
//! paid). After a synchronous submit it also says `charged: true`, since
//! that call succeeded and was billed, and carries the answer (`paid`) so
//! the journal keeps it; after a poll the charge was already counted when
//! the task was submitted.
//!
//! An upload is synchronous unless a callback URL is set: the service then
//! answers with a task id at once (reference §1.3 and §2.16) and the
//! upload is polled like any task, so a crash after the answer leaves a
//! task to re-attach to instead of a paid send whose outcome is unknown.
//! The service also POSTs the finished upload to the callback; sonicflow
//! does not listen for it.
//!
//! Upload-extend and upload-cover report the uploaded clip only in their
//! submit answer, so its id travels with the task reference (as its
//! `context`), which the journal keeps: a resumed run that re-attaches to
//! such a task still reports it.

use serde_json::{Value, json};

use crate::api::{ApiError, Client};
use crate::engine::{Job, Outputs, PollOutcome, StepError, StepExecutor, Submission, TaskRef};
use crate::plan::models::Models;

use super::download::DownloadOptions;
use super::errors;
use super::files;
use super::hosts::HostPolicy;
use super::outputs::{self, Finished};
use super::recheck;
use super::request::{self, ApiCall};

/// Runs step instances against the MusicAPI Sonic API (or the sandbox).
pub struct ApiExecutor {
    client: Client,
    models: Models,
    downloads: DownloadOptions,
    /// Sends no credentials: only for result files.
    http: reqwest::Client,
    /// Where the service announces finished uploads; `Some` sends uploads in task mode.
    upload_callback: Option<String>,
    /// Where result files may come from.
    hosts: HostPolicy,
}

impl std::fmt::Debug for ApiExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiExecutor")
            .field("base_url", &self.client.base_url())
            .field("downloads", &self.downloads)
            .field("upload_callback", &self.upload_callback)
            .finish_non_exhaustive()
    }
}

/// Why an executor could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up downloads: {0}")]
pub struct ExecutorError(String);

/// What a submit answered, before outputs are shaped.
enum Sent {
    Sync(Value),
    Task {
        task_id: String,
        upload_clip_id: Option<Option<String>>,
    },
}

impl ApiExecutor {
    /// An executor sending through `client`, checking fields against
    /// `models`, saving files per `downloads`.
    pub fn new(
        client: Client,
        models: Models,
        downloads: DownloadOptions,
    ) -> Result<ApiExecutor, ExecutorError> {
        let hosts = HostPolicy::new(client.base_url(), &downloads.allowed_hosts);
        let http = download_client(&hosts).map_err(|e| ExecutorError(e.to_string()))?;
        Ok(ApiExecutor {
            client,
            models,
            downloads,
            http,
            upload_callback: None,
            hosts,
        })
    }

    /// Sends uploads in task mode, with `callback` as their `callback_url`.
    #[must_use]
    pub fn with_upload_callback(mut self, callback: Option<String>) -> ApiExecutor {
        self.upload_callback = callback;
        self
    }

    async fn send(&self, call: ApiCall) -> Result<Sent, ApiError> {
        let c = &self.client;
        let task = |s: crate::api::Submitted| Sent::Task {
            task_id: s.task_id,
            upload_clip_id: None,
        };
        let steps = |s: crate::api::StepsSubmitted| Sent::Task {
            task_id: s.task_id,
            upload_clip_id: Some(s.upload_clip_id),
        };
        Ok(match call {
            ApiCall::Create(r) => task(c.create(&r).await?),
            ApiCall::Sample(r) => task(c.sample(&r).await?),
            ApiCall::Mashup(r) => task(c.mashup(&r).await?),
            ApiCall::ReplaceSection(r) => task(c.replace_section(&r).await?),
            ApiCall::StemsBasic { clip_id } => task(c.stems_basic(&clip_id).await?),
            ApiCall::StemsFull { clip_id } => task(c.stems_full(&clip_id).await?),
            ApiCall::UploadExtend(r) => steps(c.upload_extend(&r).await?),
            ApiCall::UploadCover(r) => steps(c.upload_cover(&r).await?),
            ApiCall::Upload { url } => match &self.upload_callback {
                Some(callback) => task(c.upload_async(&url, callback).await?),
                None => Sent::Sync(outputs::upload(&c.upload(&url).await?.clip_id)),
            },
            ApiCall::Persona(r) => Sent::Sync(outputs::persona(&c.persona(&r).await?.persona_id)),
            ApiCall::Bpm { clip_id } => Sent::Sync(outputs::bpm(&c.bpm(&clip_id).await?)),
            ApiCall::Vox(r) => Sent::Sync(outputs::vox(&c.vox(&r).await?, &r.clip_id)),
            ApiCall::Wav { clip_id } => Sent::Sync(outputs::wav(&c.wav(&clip_id).await?.wav_url)),
            ApiCall::Midi { clip_id } => Sent::Sync(outputs::midi(&c.midi(&clip_id).await?)),
            ApiCall::AlignedLyrics { clip_id } => {
                Sent::Sync(outputs::aligned(&c.aligned_lyrics(&clip_id).await?))
            }
            ApiCall::UpsampleTags { tags } => {
                Sent::Sync(outputs::upsampled(&c.upsample_tags(&tags).await?))
            }
            ApiCall::Lyrics { description } => {
                Sent::Sync(outputs::lyrics(&c.lyrics(&description).await?))
            }
        })
    }

    /// Attaches downloaded files to a finished instance's outputs.
    async fn finish(&self, job: &Job, value: Value) -> Result<Outputs, StepError> {
        let files = files::save_all(&self.http, &self.hosts, &self.downloads, job, &value).await?;
        Ok(Outputs { value, files })
    }
}

/// `--upload-callback`: an http(s) URL, since the service POSTs to it.
pub fn parse_upload_callback(text: &str) -> Result<String, String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "`{text}` is not an http(s) URL; give one the service can POST the finished upload to, such as `https://hooks.example.com/sonic`"
        )),
    }
}

/// The HTTP client for result files: no credentials, redirects per `hosts`.
fn download_client(hosts: &HostPolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .redirect(hosts.redirects())
        .build()
}

impl StepExecutor for ApiExecutor {
    async fn submit(&self, job: &Job) -> Result<Submission, StepError> {
        recheck::check(job, &self.models)?;
        let call = request::build(job)?;
        let sent = self.send(call).await.map_err(|e| errors::from_submit(&e))?;
        match sent {
            Sent::Sync(value) => match self.finish(job, value.clone()).await {
                Ok(outputs) => Ok(Submission::Done(outputs)),
                // The synchronous call succeeded and was paid; only saving
                // its file failed, so the charge must still be counted and
                // the answer kept: a later attempt fetches only the file.
                Err(mut e) => {
                    e.charged = true;
                    e.paid = Some(Box::new(Outputs {
                        value,
                        files: Vec::new(),
                    }));
                    Err(e)
                }
            },
            Sent::Task {
                task_id,
                upload_clip_id,
            } => Ok(Submission::Task(TaskRef {
                id: task_id,
                context: upload_clip_id.map(|u| json!({ "upload_clip_id": u })),
            })),
        }
    }

    async fn poll(&self, job: &Job, task: &TaskRef) -> Result<PollOutcome, StepError> {
        let status = self
            .client
            .task(&task.id)
            .await
            .map_err(|e| errors::from_poll(&e))?;
        let upload = task
            .context
            .as_ref()
            .and_then(|c| c.get("upload_clip_id"))
            .and_then(Value::as_str);
        match outputs::from_task(job.action, &status, upload) {
            Finished::Pending(waiting) => Ok(PollOutcome::Pending { waiting }),
            Finished::Failed(message) => Ok(PollOutcome::Failed { message }),
            Finished::Done(value) => {
                let outputs = self.finish(job, value).await?;
                Ok(PollOutcome::Done(outputs))
            }
        }
    }

    fn wants_files(&self) -> bool {
        self.downloads.enabled
    }

    async fn fetch(&self, job: &Job, outputs: Outputs) -> Result<Outputs, StepError> {
        self.finish(job, outputs.value).await
    }

    /// One `GET /api/v1/get-credits`, never retried: a read that fails
    /// leaves its window open rather than holding submits back.
    async fn balance(&self) -> Result<u64, String> {
        let credits = self.client.credits().await.map_err(|e| e.to_string())?;
        let total = credits.credits.saturating_add(credits.extra_credits);
        u64::try_from(total).map_err(|_| format!("the service reported a balance of {total}"))
    }
}
