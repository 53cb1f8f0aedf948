//! [`SandboxConfig`]: everything that shapes the simulated service.
//!
//! All durations are written at real-world scale and divided by
//! `time_scale` when used, so one setting speeds up latencies, the upload
//! phase of sync calls and the rate-limit window together.

use std::net::SocketAddr;
use std::time::Duration;

pub use crate::prices::LatencyRange;
use crate::prices::{PriceTable, Wait};

use super::faults::Faults;
use super::world::RateLimitScope;

/// The secret webhooks are signed with when a request sends no
/// `webhook_secret` (the real service uses one of its own).
pub const DEFAULT_WEBHOOK_SECRET: &str = "sonicflow-sandbox-webhook-secret";

/// How long each kind of work takes; by default the windows the runner
/// expects ([`Wait::expected`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Latencies {
    /// `/upload` (sync answer or async task).
    pub upload: LatencyRange,
    /// The upload phase inside upload-extend / upload-cover, before the task id comes back.
    pub upload_phase: LatencyRange,
    /// New songs: create, persona, sample, mashup, cover, extend.
    pub song: LatencyRange,
    /// Edits: remaster, add_*, concat, replace-section.
    pub edit: LatencyRange,
    /// Stems, basic and full.
    pub stems: LatencyRange,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            upload: Wait::Upload.expected(),
            upload_phase: LatencyRange::secs(30, 60),
            song: Wait::Song.expected(),
            edit: Wait::Edit.expected(),
            stems: Wait::Stems.expected(),
        }
    }
}

/// Which forms the sandbox answers in where the documentation and the
/// live service were seen to differ.
///
/// - [`AnswerStyle::Observed`] (the default), as the service was seen to
///   answer: a poll before any clip exists is `{"type":"not_ready",
///   "message":…,"error":…}` without `data`; clips still generating have
///   `audio_url: ""`, `image_url: ""` and `duration: null`; between
///   `running` and `succeeded` a clip is `streaming` (its `audio_url` is a
///   stream of the partial song, `image_url` is set, `duration` is still
///   `null`), the task's status is `streaming`, and a task with a webhook
///   gets a `song.streaming` event as well as its terminal one; async
///   submits answer `{"message":"success","task_id":…}` without `code`;
///   `mv` is echoed as requested (`sonic-v5-5`); error bodies carry the text
///   in both `message` and `error`.
/// - [`AnswerStyle::Documented`], as the reference documents: an empty
///   `data` array before clips exist, `null` URLs while generating, a
///   decimal-string `duration` from the start, no `streaming`, `code` on
///   every answer, `mv` in `chirp-*` spelling, errors with `message` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerStyle {
    #[default]
    Observed,
    Documented,
}

impl AnswerStyle {
    /// Both styles, for tests that hold for either.
    pub const ALL: [AnswerStyle; 2] = [AnswerStyle::Observed, AnswerStyle::Documented];

    /// The name used by `--style`.
    pub fn name(self) -> &'static str {
        match self {
            AnswerStyle::Observed => "observed",
            AnswerStyle::Documented => "documented",
        }
    }

    /// How a poll answers before any clip exists, unless configured.
    pub fn not_ready_form(self) -> NotReadyForm {
        match self {
            AnswerStyle::Observed => NotReadyForm::TypeObject,
            AnswerStyle::Documented => NotReadyForm::EmptyData,
        }
    }
}

/// How a poll answers before a task has any clips (reference §9 #3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReadyForm {
    /// HTTP 200 `{"code":200,"message":"success","data":[]}`.
    EmptyData,
    /// HTTP 200 `{"type":"not_ready","message":…}` without `data` (observed
    /// style adds `error` with the same text).
    TypeObject,
    /// HTTP 202 with the `not_ready` object.
    Accepted,
}

impl NotReadyForm {
    /// The name used by `--not-ready-form`.
    pub fn name(self) -> &'static str {
        match self {
            NotReadyForm::EmptyData => "empty-data",
            NotReadyForm::TypeObject => "type-object",
            NotReadyForm::Accepted => "accepted",
        }
    }
}

/// Configuration of one sandbox instance. `Default` is a faithful service
/// at real-world speed on an ephemeral loopback port.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Every duration is divided by this (1000 turns 2 min into 120 ms).
    pub time_scale: f64,
    /// Seeds every random choice: ids, latencies, durations, faults.
    pub seed: u64,
    /// Starting balance of every key's account.
    pub balance: u64,
    /// Minimum spacing of paid submits per key (burst 1).
    pub submit_interval: Duration,
    /// Which paid submits that spacing applies to.
    pub rate_limit_scope: RateLimitScope,
    pub faults: Faults,
    /// Number of clips a basic stems split yields (4 on the live service).
    pub stems_basic_count: usize,
    /// Number of clips a full stems split yields (24 on the live service).
    pub stems_full_count: usize,
    pub latencies: Latencies,
    /// The price table the ledger debits from.
    pub prices: PriceTable,
    /// Keys accepted as Bearer tokens; `None` accepts any non-empty key.
    pub keys: Option<Vec<String>>,
    pub webhook_secret: String,
    /// The forms answers take.
    pub style: AnswerStyle,
    /// How polls answer before clips exist; `None` follows the style.
    pub not_ready_form: Option<NotReadyForm>,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            time_scale: 1.0,
            seed: 0,
            balance: 1000,
            submit_interval: Duration::from_secs(3),
            rate_limit_scope: RateLimitScope::default(),
            faults: Faults::default(),
            stems_basic_count: 4,
            stems_full_count: 24,
            latencies: Latencies::default(),
            prices: PriceTable::builtin(),
            keys: None,
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_owned(),
            style: AnswerStyle::default(),
            not_ready_form: None,
        }
    }
}

impl SandboxConfig {
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }
    pub fn with_time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_balance(mut self, balance: u64) -> Self {
        self.balance = balance;
        self
    }
    pub fn with_submit_interval(mut self, interval: Duration) -> Self {
        self.submit_interval = interval;
        self
    }
    pub fn with_rate_limit_scope(mut self, scope: RateLimitScope) -> Self {
        self.rate_limit_scope = scope;
        self
    }
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
    pub fn with_stems_basic_count(mut self, count: usize) -> Self {
        self.stems_basic_count = count;
        self
    }
    pub fn with_stems_full_count(mut self, count: usize) -> Self {
        self.stems_full_count = count;
        self
    }
    pub fn with_latencies(mut self, latencies: Latencies) -> Self {
        self.latencies = latencies;
        self
    }
    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }
    pub fn with_keys(mut self, keys: Vec<String>) -> Self {
        self.keys = Some(keys);
        self
    }
    pub fn with_style(mut self, style: AnswerStyle) -> Self {
        self.style = style;
        self
    }
    /// Overrides the style's answer to polls before clips exist.
    pub fn with_not_ready_form(mut self, form: NotReadyForm) -> Self {
        self.not_ready_form = Some(form);
        self
    }

    /// How polls answer before clips exist.
    pub(crate) fn not_ready(&self) -> NotReadyForm {
        self.not_ready_form
            .unwrap_or_else(|| self.style.not_ready_form())
    }

    pub(crate) fn observed(&self) -> bool {
        self.style == AnswerStyle::Observed
    }

    /// `d` divided by the time scale.
    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }

    /// Why the configuration cannot be served, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!(
                "time scale `{}` must be a positive number",
                self.time_scale
            ));
        }
        if self.stems_basic_count == 0 {
            return Err("the basic stems count must be at least 1".to_owned());
        }
        if self.stems_full_count == 0 {
            return Err("the full stems count must be at least 1".to_owned());
        }
        self.faults.check()
    }
}
