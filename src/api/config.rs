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
    /// Wraps a key; a leading UTF-8 byte order mark and surrounding
    /// whitespace (a trailing newline in a key file) are dropped.
    pub fn new(key: impl Into<String>) -> Result<ApiKey, ConfigError> {
        ApiKey::from_source(key.into(), "the API key")
    }

    /// [`ApiKey::new`], naming `source` (a file, a variable) in errors.
    /// A key must be visible ASCII, as an HTTP header needs; the error says
    /// which character is wrong and where, never the key.
    pub(crate) fn from_source(key: String, source: &str) -> Result<ApiKey, ConfigError> {
        let key = key.trim().trim_start_matches('\u{feff}').trim();
        if key.is_empty() {
            return Err(ConfigError::EmptyKey);
        }
        if let Some((at, c)) = key.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
            let what = match c {
                ' ' => "a space".to_owned(),
                c if c.is_control() => format!("a control character (U+{:04X})", u32::from(c)),
                c => format!("a non-ASCII character (U+{:04X})", u32::from(c)),
            };
            return Err(ConfigError::KeyCharacter {
                place: source.to_owned(),
                what,
                position: at + 1,
            });
        }
        Ok(ApiKey(key.to_owned()))
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
    #[error(
        "{place} has {what} at character {position}, which cannot be sent in an HTTP header: keep only the key itself (letters, digits and punctuation) there"
    )]
    KeyCharacter {
        place: String,
        what: String,
        position: usize,
    },
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
                Ok(k) if !k.trim().is_empty() => ApiKey::from_source(k, "`MUSICAPI_KEY`")?,
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
    if let Some(warning) = exposure_warning(path) {
        crate::errln!("warning: {warning}");
    }
    ApiKey::from_source(text, &format!("the API key file `{}`", path.display()))
}

/// A warning when other users may read the key file.
#[cfg(unix)]
fn exposure_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    exposure_of(path, mode)
}

#[cfg(not(unix))]
fn exposure_warning(_path: &Path) -> Option<String> {
    None
}

#[cfg_attr(
    not(unix),
    allow(dead_code, reason = "permission bits are read on unix only")
)]
fn exposure_of(path: &Path, mode: u32) -> Option<String> {
    let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (_, true) => "every user of this machine",
        (true, false) => "its group",
        (false, false) => return None,
    };
    Some(format!(
        "the API key file `{p}` can be read by {who} (mode {:03o}); restrict it with `chmod 600 {p}`",
        mode & 0o777,
        p = path.display()
    ))
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
    fn keys_lose_a_bom_and_whitespace_and_bad_characters_are_named_not_shown() {
        let ok = |raw: &str| ApiKey::new(raw).unwrap().expose().to_owned();
        assert_eq!(ok("\u{feff}sk-abc\r\n"), "sk-abc");
        assert_eq!(ok("  \u{feff}sk-abc\t"), "sk-abc");
        for (raw, what, at) in [
            ("sk-ab cd", "a space", 6),
            ("sk-ab\u{0}cd", "a control character (U+0000)", 6),
            ("sk-\u{e9}cd", "a non-ASCII character (U+00E9)", 4),
            ("sk-ab\u{feff}", "a non-ASCII character (U+FEFF)", 6),
        ] {
            let err = ApiKey::from_source(raw.to_owned(), "`MUSICAPI_KEY`").unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("`MUSICAPI_KEY` has {what} at character {at},")),
                "{text}"
            );
            assert!(!text.contains("sk-"), "{text}");
        }
    }

    #[test]
    fn readable_key_files_are_warned_about() {
        let p = Path::new("/keys/musicapi");
        assert_eq!(exposure_of(p, 0o100600), None);
        assert_eq!(exposure_of(p, 0o100400), None);
        let world = exposure_of(p, 0o100644).unwrap();
        assert!(
            world.contains("`/keys/musicapi`") && world.contains("every user"),
            "{world}"
        );
        assert!(world.ends_with("`chmod 600 /keys/musicapi`"), "{world}");
        assert!(exposure_of(p, 0o100640).unwrap().contains("its group"));
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
