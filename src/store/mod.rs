//! A bucket of an object store, where state and results go when they must
//! outlive the machine: S3 (`s3://bucket/prefix`), Google Cloud Storage
//! (`gs://bucket/prefix`), Azure Blob Storage (`az://container/prefix`), or
//! a folder through `file:///path`, as the `object_store` crate speaks them.
//!
//! Credentials come from each cloud's standard environment (`AWS_*`,
//! `GOOGLE_*`, `AZURE_*`), never from a manifest or a flag, and never reach
//! a message: every error text passes through [`redact`].
//!
//! The engine's journal and lock code is synchronous; a [`Bucket`] answers
//! synchronously too, running each request on a small runtime of its own so
//! it can be called from inside the engine's runtime as well as outside it.

pub mod publish;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig,
};

/// How long one request to a store may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a failing request is retried before the error is reported.
const RETRY_FOR: Duration = Duration::from_secs(8);

/// A prefix in a bucket, and a client for it.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Key,
    /// The URL as given, for messages (it holds no credentials).
    url: String,
    scheme: Scheme,
}

/// Which kind of store a bucket is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
    File,
}

impl Scheme {
    /// The scheme of `text` if it is a store URL sonicflow understands.
    pub fn of(text: &str) -> Option<Scheme> {
        let (scheme, _) = text.split_once("://")?;
        match scheme {
            "s3" | "s3a" => Some(Scheme::S3),
            "gs" => Some(Scheme::Gcs),
            "az" | "azure" | "abfs" | "abfss" => Some(Scheme::Azure),
            "file" => Some(Scheme::File),
            _ => None,
        }
    }
}

/// What [`Bucket::put_new`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The object is ours, with this etag.
    Written { etag: Option<String> },
    /// An object of that name was there already; nothing was written.
    Exists,
}

/// What [`Bucket::put_if_match`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// The object was replaced; its new etag.
    Written { etag: Option<String> },
    /// The object is gone or was changed by someone else; nothing was written.
    Conflict,
}

/// One object as read: its bytes and etag.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Bytes,
    pub etag: Option<String>,
}

/// Why a request to a store failed. The text names the store URL and the
/// object, never a credential.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot {doing} `{location}`: {message}")]
pub struct StoreError {
    /// What was being done ("write", "read", "list", "open the store").
    pub doing: &'static str,
    /// The URL of the object or prefix.
    pub location: String,
    pub message: String,
    /// Whether the request may have taken effect although it failed (a
    /// timeout after the request was sent): a write must then be checked.
    pub unsure: bool,
}

impl StoreError {
    fn new(doing: &'static str, location: String, error: &object_store::Error) -> StoreError {
        let unsure = !matches!(
            error,
            object_store::Error::NotFound { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented
                | object_store::Error::InvalidPath { .. }
        );
        StoreError {
            doing,
            location,
            message: redact(&error.to_string()),
            unsure,
        }
    }
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl Bucket {
    /// Opens the bucket and prefix `url` names, with credentials from the
    /// environment. Nothing is sent yet: a wrong bucket or credential shows
    /// at the first request.
    pub fn open(url: &str) -> Result<Bucket, StoreError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Bucket::open_with(url, &vars)
    }

    /// Opens `url` with the configuration in `vars` (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*` names, as the environment has them) instead of the
    /// process's environment.
    pub fn open_with(url: &str, vars: &[(String, String)]) -> Result<Bucket, StoreError> {
        let bad = |message: String| StoreError {
            doing: "open the store",
            location: url.to_owned(),
            message: redact(&message),
            unsure: false,
        };
        let scheme = Scheme::of(url).ok_or_else(|| {
            bad("not a store URL: use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///path".to_owned())
        })?;
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("{e}")))?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: RETRY_FOR,
        };
        let client = ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(Duration::from_secs(5));
        let (store, prefix): (Arc<dyn ObjectStore>, Key) = match scheme {
            Scheme::S3 => {
                let built = configured(
                    object_store::aws::AmazonS3Builder::new()
                        .with_retry(retry.clone())
                        .with_client_options(client.clone()),
                    vars,
                    "AWS_",
                    |b, k, v| match k.parse() {
                        Ok(key) => b.with_config(key, v),
                        Err(_) => b,
                    },
                )
                .with_url(url)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                .build()
                .map_err(|e| bad(e.to_string()))?;
                (Arc::new(built), path_prefix(&parsed)?)
            }
            Scheme::Gcs => {
                let built = configured(
                    object_store::gcp::GoogleCloudStorageBuilder::new()
                        .with_retry(retry.clone())
                        .with_client_options(client.clone()),
                    vars,
                    "GOOGLE_",
                    |b, k, v| match k.parse() {
                        Ok(key) => b.with_config(key, v),
                        Err(_) => b,
                    },
                )
                .with_url(url)
                .build()
                .map_err(|e| bad(e.to_string()))?;
                (Arc::new(built), path_prefix(&parsed)?)
            }
            Scheme::Azure => {
                let built = configured(
                    object_store::azure::MicrosoftAzureBuilder::new()
                        .with_retry(retry.clone())
                        .with_client_options(client.clone()),
                    vars,
                    "AZURE_",
                    |b, k, v| match k.parse() {
                        Ok(key) => b.with_config(key, v),
                        Err(_) => b,
                    },
                )
                .with_url(url)
                .build()
                .map_err(|e| bad(e.to_string()))?;
                (Arc::new(built), path_prefix(&parsed)?)
            }
            Scheme::File => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| bad("a file:// URL needs an absolute path".to_owned()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| bad(e.to_string()))?;
                (Arc::new(local), Key::default())
            }
        };
        Ok(Bucket {
            store,
            prefix,
            url: url.trim_end_matches('/').to_owned(),
            scheme,
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The URL as given (no trailing `/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The full URL of `rel` under the prefix, for messages.
    pub fn location(&self, rel: &str) -> String {
        format!("{}/{}", self.url, rel.trim_start_matches('/'))
    }

    /// The object store client and the key of `rel` under the prefix, for
    /// callers that need more than the helpers here (streaming uploads).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key of `rel` (a `/`-separated relative path) under the prefix.
    pub fn key(&self, rel: &str) -> Key {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(rel.split('/').filter(|p| !p.is_empty()).map(str::to_owned));
        Key::from_iter(parts)
    }

    /// `rel` for a key under the prefix (the inverse of [`Bucket::key`]).
    pub fn relative(&self, key: &Key) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// Writes `bytes` to `rel` only if no object has that name
    /// (`If-None-Match: *`).
    pub fn put_new(&self, rel: &str, bytes: Bytes) -> Result<Created, StoreError> {
        let store = self.store.clone();
        let key = self.key(rel);
        let answer = run(async move {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            store.put_opts(&key, PutPayload::from(bytes), options).await
        });
        match answer {
            Ok(Ok(put)) => Ok(Created::Written { etag: put.e_tag }),
            Ok(Err(object_store::Error::AlreadyExists { .. }))
            | Ok(Err(object_store::Error::Precondition { .. })) => Ok(Created::Exists),
            Ok(Err(e)) => Err(StoreError::new("write", self.location(rel), &e)),
            Err(e) => Err(self.runtime_error("write", rel, e)),
        }
    }

    /// Replaces `rel` with `bytes` only if its etag is still `etag`
    /// (`If-Match`).
    pub fn put_if_match(&self, rel: &str, etag: &str, bytes: Bytes) -> Result<Swapped, StoreError> {
        let store = self.store.clone();
        let key = self.key(rel);
        let version = object_store::UpdateVersion {
            e_tag: Some(etag.to_owned()),
            version: None,
        };
        let answer = run(async move {
            let options = PutOptions {
                mode: PutMode::Update(version),
                ..PutOptions::default()
            };
            store.put_opts(&key, PutPayload::from(bytes), options).await
        });
        match answer {
            Ok(Ok(put)) => Ok(Swapped::Written { etag: put.e_tag }),
            Ok(Err(object_store::Error::Precondition { .. }))
            | Ok(Err(object_store::Error::NotFound { .. }))
            | Ok(Err(object_store::Error::AlreadyExists { .. })) => Ok(Swapped::Conflict),
            Ok(Err(e)) => Err(StoreError::new("write", self.location(rel), &e)),
            Err(e) => Err(self.runtime_error("write", rel, e)),
        }
    }

    /// Writes `bytes` to `rel` whatever is there: a single PUT, so a reader
    /// sees the old object or the new one, never part of one.
    pub fn put(&self, rel: &str, bytes: Bytes) -> Result<Option<String>, StoreError> {
        let store = self.store.clone();
        let key = self.key(rel);
        let answer = run(async move { store.put(&key, PutPayload::from(bytes)).await });
        match answer {
            Ok(Ok(put)) => Ok(put.e_tag),
            Ok(Err(e)) => Err(StoreError::new("write", self.location(rel), &e)),
            Err(e) => Err(self.runtime_error("write", rel, e)),
        }
    }

    /// The object `rel`, or `None` if there is none. Objects larger than
    /// `limit` bytes are refused, so a hostile store cannot fill memory.
    pub fn get(&self, rel: &str, limit: u64) -> Result<Option<Object>, StoreError> {
        let store = self.store.clone();
        let key = self.key(rel);
        let answer = run(async move {
            let got = store.get(&key).await?;
            if got.meta.size > limit {
                return Err(object_store::Error::Generic {
                    store: "sonicflow",
                    source: format!(
                        "the object is {} bytes, more than the {limit} expected",
                        got.meta.size
                    )
                    .into(),
                });
            }
            let etag = got.meta.e_tag.clone();
            let bytes = got.bytes().await?;
            Ok(Object { bytes, etag })
        });
        match answer {
            Ok(Ok(object)) => Ok(Some(object)),
            Ok(Err(object_store::Error::NotFound { .. })) => Ok(None),
            Ok(Err(e)) => Err(StoreError::new("read", self.location(rel), &e)),
            Err(e) => Err(self.runtime_error("read", rel, e)),
        }
    }

    /// Every object under `rel` (recursively), as paths relative to the
    /// bucket's prefix, sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, StoreError> {
        use futures::TryStreamExt as _;
        let store = self.store.clone();
        let key = self.key(rel);
        let answer = run(async move {
            let metas: Vec<object_store::ObjectMeta> = store.list(Some(&key)).try_collect().await?;
            Ok::<_, object_store::Error>(metas)
        });
        let metas = match answer {
            Ok(Ok(metas)) => metas,
            Ok(Err(object_store::Error::NotFound { .. })) => Vec::new(),
            Ok(Err(e)) => return Err(StoreError::new("list", self.location(rel), &e)),
            Err(e) => return Err(self.runtime_error("list", rel, e)),
        };
        let mut names: Vec<String> = metas
            .iter()
            .filter_map(|m| self.relative(&m.location))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes `rel` (no error if it is gone).
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let store = self.store.clone();
        let key = self.key(rel);
        match run(async move { store.delete(&key).await }) {
            Ok(Ok(())) | Ok(Err(object_store::Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(StoreError::new("delete", self.location(rel), &e)),
            Err(e) => Err(self.runtime_error("delete", rel, e)),
        }
    }

    fn runtime_error(&self, doing: &'static str, rel: &str, message: String) -> StoreError {
        StoreError {
            doing,
            location: self.location(rel),
            message,
            unsure: true,
        }
    }
}

/// `builder` with every variable of `vars` named `PREFIX…` applied as the
/// builder's `from_env` would (lower-cased names as configuration keys;
/// names it does not know are ignored).
fn configured<B>(
    builder: B,
    vars: &[(String, String)],
    prefix: &str,
    apply: impl Fn(B, &str, &str) -> B,
) -> B {
    vars.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .fold(builder, |b, (k, v)| apply(b, &k.to_ascii_lowercase(), v))
}

/// The path part of a bucket URL as a key prefix.
fn path_prefix(url: &url::Url) -> Result<Key, StoreError> {
    Key::from_url_path(url.path()).map_err(|e| StoreError {
        doing: "open the store",
        location: url.to_string(),
        message: e.to_string(),
        unsure: false,
    })
}

/// Runs `future` to completion on the stores' runtime, from any thread
/// (inside another runtime too): the calling thread waits for it.
pub fn run<F>(future: F) -> Result<F::Output, String>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("sonicflow-store")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the store's runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let task = runtime.spawn(future);
    futures::executor::block_on(task).map_err(|e| format!("a store request was cut short: {e}"))
}

/// `text` with every credential of the environment masked: the values of
/// the cloud variables that hold secrets, wherever a server or a library
/// put them in a message.
pub fn redact(text: &str) -> String {
    const SECRETS: &[&str] = &[
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_CLIENT_SECRET",
        "MUSICAPI_KEY",
    ];
    let values: Vec<String> = SECRETS
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .collect();
    mask(text, &values)
}

/// `text` with each of `secrets` (of four characters or more) replaced by `***`.
fn mask(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |out, secret| {
            out.replace(secret.as_str(), "***")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_told_from_paths() {
        for (text, scheme) in [
            ("s3://b/p", Some(Scheme::S3)),
            ("gs://b", Some(Scheme::Gcs)),
            ("az://c/p", Some(Scheme::Azure)),
            ("file:///tmp/x", Some(Scheme::File)),
            ("./state", None),
            ("/abs/state", None),
            ("http://example.com/x", None),
        ] {
            assert_eq!(Scheme::of(text), scheme, "{text}");
        }
    }

    #[test]
    fn a_file_store_creates_only_once_and_swaps_only_on_its_etag() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("file://{}", dir.path().display());
        let bucket = Bucket::open(&url).unwrap_or_else(|e| panic!("{e}"));
        let first = bucket
            .put_new("a/b.json", Bytes::from_static(b"one"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(first, Created::Written { .. }));
        let again = bucket
            .put_new("a/b.json", Bytes::from_static(b"two"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, Created::Exists);
        let got = bucket
            .get("a/b.json", 1024)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.map(|o| o.bytes), Some(Bytes::from_static(b"one")));
        assert_eq!(
            bucket.list("a").unwrap_or_else(|e| panic!("{e}")),
            vec!["a/b.json".to_owned()]
        );
        assert!(
            bucket
                .get("a/none.json", 1024)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
    }

    #[test]
    fn a_secret_is_masked_wherever_it_appears() {
        let secrets = vec!["s3cr3t-value".to_owned(), "ab".to_owned()];
        assert_eq!(
            mask("denied for s3cr3t-value (s3cr3t-value) ab", &secrets),
            "denied for *** (***) ab"
        );
    }
}
