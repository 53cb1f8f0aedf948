//! The sandbox: a faithful local simulator of the MusicAPI Sonic API.
//!
//! It serves every endpoint the client knows, with the documented
//! validation messages and status codes, a per-key credit ledger debited
//! from a [`crate::prices::PriceTable`] (the built-in one unless told
//! otherwise), tasks that move through pending → running → (streaming →)
//! succeeded | failed on a latency distribution, a
//! per-key submit rate limit, seeded fault injection, signed webhooks and
//! small real media files at the URLs it returns. A time scale divides
//! every duration. Where the documentation and the live service were seen
//! to differ, [`AnswerStyle`] picks which forms it answers in.
//!
//! It imports nothing of sonicflow but the price table (and the rate-limit
//! class of each priced operation): it must not know the client, manifests
//! or plans, so that it checks the client from outside.

mod clips;
mod config;
mod endpoints;
mod faults;
mod fields;
mod files;
mod ledger;
mod pipeline;
mod reply;
mod server;
mod tasks;
mod webhook;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{
    AnswerStyle, DEFAULT_WEBHOOK_SECRET, Latencies, LatencyRange, NotReadyForm, SandboxConfig,
};
pub use faults::Faults;
pub use ledger::{EntryKind, Ledger, LedgerEntry};
pub use webhook::signature as webhook_signature;
pub use world::PollForms;
pub use world::RateLimitScope;

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("cannot listen on `{addr}`: {detail}")]
    Bind { addr: SocketAddr, detail: String },
}

/// Entry point: `Sandbox::start(config)`.
pub struct Sandbox;

impl Sandbox {
    /// Binds `config.addr` (port 0 = ephemeral) and serves in the current
    /// tokio runtime until [`SandboxHandle::shutdown`] or the handle drops.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        config.check().map_err(SandboxError::Config)?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| SandboxError::Bind {
                addr: config.addr,
                detail: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| SandboxError::Bind {
            addr: config.addr,
            detail: e.to_string(),
        })?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(world::Shared::new(config, base_url.clone()));
        let ledger = shared.ledger.clone();
        let running = server::serve(listener, Arc::clone(&shared));
        Ok(SandboxHandle {
            base_url,
            addr,
            ledger,
            shared,
            running: Some(running),
        })
    }
}

/// A running sandbox.
pub struct SandboxHandle {
    base_url: String,
    addr: SocketAddr,
    ledger: Ledger,
    shared: Arc<world::Shared>,
    running: Option<server::Running>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:<port>`, the value for `MUSICAPI_BASE_URL`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The live ledger (shared with the server, not a snapshot).
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }

    /// How many task polls it answered in each form so far.
    pub fn poll_forms(&self) -> PollForms {
        self.shared.poll_forms()
    }

    /// Stops accepting connections and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.join.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
        }
    }
}
