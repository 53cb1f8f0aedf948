//! [`Client`]: one method per endpoint.
//!
//! Every POST is treated as paid (each one costs credits per the reference),
//! so a transport failure after sending it is reported as in doubt rather
//! than transient. GETs (polling, credits) are free and safe to repeat.
//!
//! The server is not trusted: a body is read up to a cap per endpoint (an
//! answer over it is undecodable, so a paid one is in doubt), a redirect is
//! an error and never followed (nothing is sent anywhere the user did not
//! name), `Retry-After` is read by one clamped parser, and every byte of an
//! answer passes through the sanitiser of `text` before anything sees it.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::{ClientConfig, ConfigError};
use super::decode::{decode, error_message, excerpt};
use super::error::{ApiError, from_status, from_transport, parse_retry_after};
use super::poll::TaskStatus;
use super::requests::*;
use super::responses::*;
use super::text::{Redactor, percent_encode};

/// A client for the MusicAPI Sonic API (or the sandbox that imitates it).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    /// `base_url` parsed once, when it is a plain origin with an optional
    /// path: each request's URL is joined to it without parsing the host
    /// again. `None` sends the joined text instead, for reqwest to judge.
    base: Option<reqwest::Url>,
    auth: HeaderValue,
    redactor: Redactor,
}

/// Most bytes read of any JSON answer, unless [`answer_cap`] says more.
pub const ANSWER_CAP: usize = 1 << 20;
/// Most bytes read of a poll or batch status (many clips with lyrics).
pub const STATUS_CAP: usize = 8 << 20;
/// Most bytes read of a MIDI, aligned-lyrics or vox answer (note, word and
/// waveform lists).
pub const LISTS_CAP: usize = 16 << 20;
/// Most bytes read of an error answer; the rest is not read.
pub const ERROR_CAP: usize = 64 << 10;

/// The body limit of the endpoint at `path`.
fn answer_cap(path: &str) -> usize {
    let path = path.split('?').next().unwrap_or(path);
    if path.starts_with("/api/v1/sonic/task/") || path == "/api/v1/sonic/batch" {
        STATUS_CAP
    } else if matches!(
        path,
        "/api/v1/sonic/midi" | "/api/v1/sonic/aligned-lyrics" | "/api/v1/sonic/vox"
    ) {
        LISTS_CAP
    } else {
        ANSWER_CAP
    }
}

#[derive(serde::Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

/// A raw response: status and body bytes.
struct Raw {
    status: StatusCode,
    body: Vec<u8>,
}

impl Client {
    /// Builds a client; fails only if the TLS backend cannot start.
    pub fn new(config: &ClientConfig) -> Result<Client, ConfigError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            // A redirect is reported, never followed: a paid request must
            // not be sent on to a server the user did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Http {
                detail: e.to_string(),
            })?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", config.key.expose())).map_err(|_| {
                ConfigError::Http {
                    detail: "the API key contains characters not allowed in an HTTP header"
                        .to_owned(),
                }
            })?;
        // Keeps the header out of reqwest's own Debug output.
        auth.set_sensitive(true);
        Ok(Client {
            http,
            base_url: config.base_url.clone(),
            base: parsed_base(&config.base_url),
            auth,
            redactor: Redactor::new(config.key.expose()),
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of `path` (which may end in a query) on this client's API.
    fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        let Some(base) = &self.base else {
            return Err(format!("{}{}", self.base_url, path));
        };
        let (path_part, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut url = base.clone();
        if base.path() == "/" {
            url.set_path(path_part);
        } else {
            url.set_path(&format!("{}{path_part}", base.path()));
        }
        url.set_query(query);
        Ok(url)
    }

    /// Sends one request; with `-v` each is logged with how it ended and
    /// how long it took (the path only: never a header, so never the key).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Raw, ApiError> {
        if !tracing::enabled!(tracing::Level::INFO) {
            return self.send_once(method, path, body).await;
        }
        let started = std::time::Instant::now();
        let shown = method.clone();
        let answer = self.send_once(method, path, body).await;
        let ms = started.elapsed().as_millis();
        match &answer {
            Ok(raw) => tracing::info!("{shown} {path} → {} in {ms} ms", raw.status.as_u16()),
            Err(e) => tracing::info!("{shown} {path} failed in {ms} ms: {e}"),
        }
        answer
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Raw, ApiError> {
        let endpoint = format!("{method} {path}");
        let paid = method == Method::POST;
        let req = match self.url(path) {
            Ok(url) => self.http.request(method, url),
            Err(text) => self.http.request(method, text),
        };
        let mut req = req.header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| from_transport(&endpoint, paid, &e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .map_or_else(
                    || "nowhere".to_owned(),
                    |l| format!("`{}`", self.redactor.line(&l)),
                );
            return Err(ApiError::Redirected {
                endpoint,
                status: status.as_u16(),
                location,
            });
        }
        let retry_after = parse_retry_after(
            resp.headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        if !status.is_success() {
            // An error's body is only read for its message: what is past
            // the cap is left unread.
            let body = match read_capped(&mut resp, ERROR_CAP).await {
                Ok((body, _)) => body,
                Err(e) => return Err(from_transport(&endpoint, paid, &e)),
            };
            let body = self.redactor.bytes(body);
            return Err(from_status(
                &endpoint,
                status.as_u16(),
                error_message(&self.redactor, &body),
                retry_after,
            ));
        }
        let cap = answer_cap(path);
        let too_large = |read: Vec<u8>| ApiError::Decode {
            endpoint: endpoint.clone(),
            path: ".".to_owned(),
            message: format!(
                "the answer is larger than the {} limit of this endpoint, so it was not read",
                super::text::human_bytes(cap as u64)
            ),
            body: excerpt(&self.redactor, &self.redactor.bytes(read)),
        };
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large(Vec::new()));
        }
        let (body, complete) = read_capped(&mut resp, cap)
            .await
            .map_err(|e| from_transport(&endpoint, paid, &e))?;
        if !complete {
            return Err(too_large(body));
        }
        Ok(Raw {
            status,
            body: self.redactor.bytes(body),
        })
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let raw = self.send(Method::POST, path, Some(to_json(body))).await?;
        decode(&self.redactor, &format!("POST {path}"), &raw.body)
    }

    async fn post_data<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let env: DataEnvelope<T> = self.post(path, body).await?;
        Ok(env.data)
    }

    /// `POST /api/v1/sonic/create` with any task type.
    pub async fn create(&self, req: &CreateRequest) -> Result<Submitted, ApiError> {
        self.post("/api/v1/sonic/create", req).await
    }

    /// `POST /api/v1/sonic/upload`, synchronous: waits for the clip id.
    pub async fn upload(&self, url: &str) -> Result<UploadedClip, ApiError> {
        self.post(
            "/api/v1/sonic/upload",
            &UploadBody {
                url,
                callback_url: None,
            },
        )
        .await
    }

    /// `POST /api/v1/sonic/upload` with `callback_url`: returns a task at once.
    pub async fn upload_async(&self, url: &str, callback_url: &str) -> Result<Submitted, ApiError> {
        let body = UploadBody {
            url,
            callback_url: Some(callback_url),
        };
        self.post("/api/v1/sonic/upload", &body).await
    }

    /// `POST /api/v1/sonic/upload-extend` (one-stop upload + extend).
    pub async fn upload_extend(
        &self,
        req: &UploadExtendRequest,
    ) -> Result<StepsSubmitted, ApiError> {
        self.steps("/api/v1/sonic/upload-extend", req).await
    }

    /// `POST /api/v1/sonic/upload-cover` (one-stop upload + cover).
    pub async fn upload_cover(&self, req: &UploadCoverRequest) -> Result<StepsSubmitted, ApiError> {
        self.steps("/api/v1/sonic/upload-cover", req).await
    }

    async fn steps<B: Serialize>(&self, path: &str, req: &B) -> Result<StepsSubmitted, ApiError> {
        let wire: StepsWire = self.post(path, req).await?;
        let upload = wire.steps.and_then(|s| s.upload).unwrap_or_default();
        let endpoint = format!("POST {path}");
        if let Some(err) = upload.error.clone() {
            // The upload phase refused the audio; no task was started.
            return Err(ApiError::Invalid {
                endpoint,
                status: 200,
                message: err,
            });
        }
        match wire.task_id {
            Some(task_id) => Ok(StepsSubmitted {
                task_id,
                upload_clip_id: upload.clip_id,
            }),
            None => Err(ApiError::Invalid {
                endpoint,
                status: 200,
                message: upload
                    .message
                    .unwrap_or_else(|| "no `task_id` in the answer".to_owned()),
            }),
        }
    }

    /// `POST /api/v1/sonic/persona`.
    pub async fn persona(&self, req: &PersonaRequest) -> Result<PersonaCreated, ApiError> {
        self.post("/api/v1/sonic/persona", req).await
    }

    /// `POST /api/v1/sonic/sample`.
    pub async fn sample(&self, req: &SampleRequest) -> Result<Submitted, ApiError> {
        self.post("/api/v1/sonic/sample", req).await
    }

    /// `POST /api/v1/sonic/mashup`.
    pub async fn mashup(&self, req: &MashupRequest) -> Result<Submitted, ApiError> {
        self.post("/api/v1/sonic/mashup", req).await
    }

    /// `POST /api/v1/sonic/replace-section`.
    pub async fn replace_section(
        &self,
        req: &ReplaceSectionRequest,
    ) -> Result<Submitted, ApiError> {
        self.post("/api/v1/sonic/replace-section", req).await
    }

    /// `POST /api/v1/sonic/bpm`.
    pub async fn bpm(&self, clip_id: &str) -> Result<Bpm, ApiError> {
        self.post_data("/api/v1/sonic/bpm", &ClipIdBody { clip_id })
            .await
    }

    /// `POST /api/v1/sonic/vox`.
    pub async fn vox(&self, req: &VoxRequest) -> Result<Vox, ApiError> {
        self.post_data("/api/v1/sonic/vox", req).await
    }

    /// `POST /api/v1/sonic/wav`.
    pub async fn wav(&self, clip_id: &str) -> Result<Wav, ApiError> {
        self.post_data("/api/v1/sonic/wav", &ClipIdBody { clip_id })
            .await
    }

    /// `POST /api/v1/sonic/midi`.
    pub async fn midi(&self, clip_id: &str) -> Result<Midi, ApiError> {
        self.post_data("/api/v1/sonic/midi", &ClipIdBody { clip_id })
            .await
    }

    /// `POST /api/v1/sonic/aligned-lyrics`.
    pub async fn aligned_lyrics(&self, clip_id: &str) -> Result<AlignedLyrics, ApiError> {
        self.post_data("/api/v1/sonic/aligned-lyrics", &ClipIdBody { clip_id })
            .await
    }

    /// `POST /api/v1/sonic/upsample-tags`.
    pub async fn upsample_tags(&self, tags: &str) -> Result<UpsampledTags, ApiError> {
        self.post_data("/api/v1/sonic/upsample-tags", &TagsBody { tags })
            .await
    }

    /// `POST /api/v1/sonic/stems/basic`.
    pub async fn stems_basic(&self, clip_id: &str) -> Result<Submitted, ApiError> {
        self.post("/api/v1/sonic/stems/basic", &ClipIdBody { clip_id })
            .await
    }

    /// `POST /api/v1/sonic/stems/full`.
    pub async fn stems_full(&self, clip_id: &str) -> Result<Submitted, ApiError> {
        self.post("/api/v1/sonic/stems/full", &ClipIdBody { clip_id })
            .await
    }

    /// `POST /api/v1/sonic/lyrics`.
    pub async fn lyrics(&self, description: &str) -> Result<Lyrics, ApiError> {
        self.post("/api/v1/sonic/lyrics", &DescriptionBody { description })
            .await
    }

    /// `POST /api/v1/sonic/batch`.
    pub async fn batch(&self, req: &BatchRequest) -> Result<BatchSubmitted, ApiError> {
        self.post("/api/v1/sonic/batch", req).await
    }

    /// `GET /api/v1/sonic/batch?batch_id=…`.
    pub async fn batch_status(&self, batch_id: &str) -> Result<BatchStatus, ApiError> {
        let path = format!("/api/v1/sonic/batch?batch_id={}", percent_encode(batch_id));
        let raw = self.send(Method::GET, &path, None).await?;
        decode(&self.redactor, "GET /api/v1/sonic/batch", &raw.body)
    }

    /// `GET /api/v1/sonic/task/{task_id}`; HTTP 202 means not ready yet.
    pub async fn task(&self, task_id: &str) -> Result<TaskStatus, ApiError> {
        let path = format!("/api/v1/sonic/task/{}", percent_encode(task_id));
        let raw = self.send(Method::GET, &path, None).await?;
        if raw.status == StatusCode::ACCEPTED {
            return Ok(TaskStatus::NotReady);
        }
        TaskStatus::from_body(&self.redactor, "GET /api/v1/sonic/task", &raw.body)
    }

    /// `GET /api/v1/get-credits`.
    pub async fn credits(&self) -> Result<Credits, ApiError> {
        let raw = self.send(Method::GET, "/api/v1/get-credits", None).await?;
        decode(&self.redactor, "GET /api/v1/get-credits", &raw.body)
    }
}

/// `base_url` as a URL that request paths can be joined to, when it is one
/// whose joining by text and by URL agree: a web origin with a path at
/// most, no query, fragment or credentials, written as it parses.
fn parsed_base(base_url: &str) -> Option<reqwest::Url> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && !url.cannot_be_a_base();
    let same = url.as_str().trim_end_matches('/') == base_url;
    (plain && same).then_some(url)
}

/// Reads at most `cap` bytes of the body; `false` when more was left unread.
async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            let room = cap - body.len();
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

fn to_json<B: Serialize + ?Sized>(body: &B) -> Vec<u8> {
    // Request types hold only strings, numbers and booleans, whose
    // serialisation cannot fail; a failure would be a bug in a request type.
    serde_json::to_vec(body).unwrap_or_else(|e| panic!("request body cannot be serialised: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiKey;

    /// Joining a path to the base parsed once gives the URL that parsing
    /// the joined text gives, for every kind of base and path.
    #[test]
    fn a_path_joined_to_the_parsed_base_is_the_url_of_the_joined_text() {
        let key = ApiKey::new("bench-key-123").unwrap_or_else(|e| panic!("{e}"));
        let bases = [
            "http://127.0.0.1:8080",
            "https://api.example.com",
            "https://api.example.com/prefix",
            "https://api.example.com/a%20b/c",
            "http://[::1]:9",
            "https://bücher.example",
            "https://API.Example.COM",
        ];
        let paths = [
            "/api/v1/sonic/create",
            "/api/v1/sonic/task/abc%2Fdef",
            "/api/v1/sonic/batch?batch_id=a%26b",
            "/api/v1/get-credits",
        ];
        for base in bases {
            let config = ClientConfig::new(base, key.clone()).unwrap_or_else(|e| panic!("{e}"));
            let client = Client::new(&config).unwrap_or_else(|e| panic!("{e}"));
            for path in paths {
                let text = format!("{}{path}", client.base_url);
                let want = reqwest::Url::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                let got = client.url(path).unwrap_or_else(|t| {
                    reqwest::Url::parse(&t).unwrap_or_else(|e| panic!("{t}: {e}"))
                });
                assert_eq!(got, want, "{base} + {path}");
            }
        }
        // The sandbox's and the service's bases are joined, not parsed again.
        for base in ["http://127.0.0.1:1", "https://api.example.com/prefix"] {
            let config = ClientConfig::new(base, key.clone()).unwrap_or_else(|e| panic!("{e}"));
            let client = Client::new(&config).unwrap_or_else(|e| panic!("{e}"));
            assert!(client.base.is_some(), "{base}");
        }
    }
}
