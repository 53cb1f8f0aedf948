//! Where the client talks to and with which key.
//!
//! The key is held in [`ApiKey`], whose `Debug` is redacted and which has no
//! `Display`, so it cannot leak into an error, a log line or a panic message
//! by accident.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.musicapi.ai";

/// A secret API key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; surrounding whitespace (a trailing newline in a key file) is dropped.
    pub fn new(key: impl Into<String>) -> Result<ApiKey, ConfigError> {
        let key = key.into().trim().to_owned();
        if key.is_empty() {
            return Err(ConfigError::EmptyKey);
        }
        Ok(ApiKey(key))
    }

    /// The key itself, for building the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Why a client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no API key: set `MUSICAPI_KEY` or pass `--api-key-file FILE`")]
    MissingKey,
    #[error(
        "the API key is empty: put the key in `MUSICAPI_KEY` or in the file given to `--api-key-file`"
    )]
    EmptyKey,
    #[error("cannot read the API key file `{path}`: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error(
        "the base URL `{url}` is not an http(s) URL: set `MUSICAPI_BASE_URL` or `--api-base` to e.g. `{DEFAULT_BASE_URL}`"
    )]
    BaseUrl { url: String },
    #[error("cannot build the HTTP client: {detail}")]
    Http { detail: String },
}

/// The base URL to talk to: `api_base` (`--api-base`) as given, else
/// `MUSICAPI_BASE_URL` unless it is empty or blank, else production; without
/// surrounding whitespace or a trailing `/`. The client talks to it and the
/// state folder records it as the service's identity, so both read the
/// environment by this one rule.
pub(crate) fn resolve_base_url(api_base: Option<&str>) -> String {
    base_url_from(api_base, std::env::var("MUSICAPI_BASE_URL").ok().as_deref())
}

fn base_url_from(api_base: Option<&str>, env_base: Option<&str>) -> String {
    let chosen = api_base
        .or(env_base.filter(|b| !b.trim().is_empty()))
        .unwrap_or(DEFAULT_BASE_URL);
    normalise(chosen)
}

fn normalise(base_url: &str) -> String {
    base_url.trim().trim_end_matches('/').to_owned()
}

/// Everything the client needs to reach the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL without a trailing slash, e.g. `https://api.musicapi.ai`.
    pub base_url: String,
    /// The secret key sent as a Bearer token.
    pub key: ApiKey,
    /// Limit for establishing a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Limit for a whole request, response body included. Upload-type calls
    /// take up to a minute upstream, so the default is generous.
    pub request_timeout: Duration,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

impl ClientConfig {
    /// A configuration with default timeouts.
    pub fn new(base_url: &str, key: ApiKey) -> Result<ClientConfig, ConfigError> {
        let base_url = normalise(base_url);
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::BaseUrl { url: base_url });
        }
        Ok(ClientConfig {
            base_url,
            key,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            user_agent: format!("sonicflow/{}", env!("CARGO_PKG_VERSION")),
        })
    }

    /// Reads the configuration the way the CLI documents it: the base URL
    /// by [`resolve_base_url`], the key from `key_file` or else `MUSICAPI_KEY`.
    pub fn from_env(
        api_base: Option<&str>,
        key_file: Option<&Path>,
    ) -> Result<ClientConfig, ConfigError> {
        let base = resolve_base_url(api_base);
        let key = match key_file {
            Some(path) => read_key_file(path)?,
            None => match std::env::var("MUSICAPI_KEY") {
                Ok(k) if !k.trim().is_empty() => ApiKey::new(k)?,
                _ => return Err(ConfigError::MissingKey),
            },
        };
        ClientConfig::new(&base, key)
    }

    /// Replaces both timeouts.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> ClientConfig {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }
}

fn read_key_file(path: &Path) -> Result<ApiKey, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::KeyFile {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    ApiKey::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_key_and_config_is_redacted() {
        let key = ApiKey::new("sk-very-secret-123").unwrap();
        let cfg = ClientConfig::new("http://127.0.0.1:1/", key.clone()).unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        let dbg = format!("{cfg:?} {cfg:#?}");
        assert!(!dbg.contains("sk-very-secret-123"), "{dbg}");
        assert_eq!(cfg.base_url, "http://127.0.0.1:1");
    }

    #[test]
    fn empty_key_and_bad_base_are_rejected() {
        assert!(matches!(ApiKey::new(" \n"), Err(ConfigError::EmptyKey)));
        let key = ApiKey::new("k").unwrap();
        let err = ClientConfig::new("ftp://x", key).unwrap_err();
        assert!(err.to_string().contains("`ftp://x`"));
    }

    #[test]
    fn an_empty_or_blank_environment_means_production_and_a_flag_wins() {
        for env in [
            None,
            Some(""),
            Some("  \n"),
            Some("https://api.musicapi.ai/"),
        ] {
            assert_eq!(base_url_from(None, env), DEFAULT_BASE_URL, "{env:?}");
        }
        let local = Some(" http://127.0.0.1:8080/ ");
        assert_eq!(base_url_from(None, local), "http://127.0.0.1:8080");
        assert_eq!(base_url_from(Some("http://flag/"), local), "http://flag");
    }

    #[test]
    fn key_file_is_trimmed_and_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(read_key_file(&path).unwrap().expose(), "abc");
        let err = read_key_file(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"));
    }
}
