//! The sandbox's memory: the clips it produced (and where each came from),
//! tasks, batches, personas, per-key rate-limit windows and id counters.
//!
//! Everything lives behind one mutex that is never held across an await.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::config::{AnswerStyle, SandboxConfig};
use super::faults::{Roll, request_digest};
use super::fields::Model;
use super::ledger::{Debit, Ledger};
use super::reply::{self, Failure};
use super::tasks::{ClipState, Task};
use crate::prices::OpClass;

/// Which paid requests share a key's submit slot. (Its variants' text is
/// kept out of `--help`, which names the two and says what they mean.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RateLimitScope {
    /// Generation submits only (create-type task types, upload-extend and
    /// upload-cover, sample, mashup, replace-section, stems, batches), as
    /// documented: quick calls such as `bpm` or `wav` are never limited.
    #[default]
    #[value(help = None::<&str>)]
    Generation,
    /// One slot for every paid call, quick ones included (stricter than documented).
    #[value(help = None::<&str>)]
    Shared,
}

impl RateLimitScope {
    /// Whether a paid request debiting `debits` takes the slot.
    fn limits(self, debits: &[Debit]) -> bool {
        let mut paid = debits.iter().filter(|d| d.credits > 0);
        match self {
            RateLimitScope::Shared => paid.next().is_some(),
            RateLimitScope::Generation => {
                paid.any(|d| OpClass::of(&d.operation) == OpClass::Generation)
            }
        }
    }
}

/// Where a clip came from; decides which task types may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Upload,
    Generated,
}

/// A clip the sandbox produced.
#[derive(Debug, Clone)]
pub(crate) struct ClipRecord {
    pub id: String,
    pub origin: Origin,
    /// The task that produces it; `None` for a synchronous upload.
    pub task_id: Option<String>,
    pub title: String,
    pub tags: Option<String>,
    /// `None` when there is nothing sung (uploads, instrumentals, most stems).
    pub lyrics: Option<String>,
    /// The model asked for; polls spell it as the style says.
    pub mv: Option<Model>,
    pub gpt_description_prompt: Option<String>,
    pub negative_tags: Option<String>,
    pub style_weight: Option<f64>,
    pub weirdness_constraint: Option<f64>,
    /// Seconds.
    pub duration: f64,
    pub stem_type: Option<String>,
    pub created_at: String,
}

impl ClipRecord {
    /// `mv` as polls show it: echoed as requested in the observed style,
    /// in `chirp-*` spelling in the documented one.
    pub(crate) fn mv_as(&self, style: AnswerStyle) -> Option<String> {
        let model = self.mv.as_ref()?;
        Some(match style {
            AnswerStyle::Observed => model.requested.clone(),
            AnswerStyle::Documented => model.chirp(),
        })
    }
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub clips: HashMap<String, ClipRecord>,
    pub tasks: HashMap<String, Task>,
    pub batches: HashMap<String, Vec<String>>,
    /// `(key, clip_id)` pairs whose aligned lyrics were already paid for.
    pub aligned_paid: HashSet<(String, String)>,
    /// Arrival of the latest accepted paid submit, per key.
    next_submit: HashMap<String, Instant>,
    occurrences: HashMap<[u8; 32], u64>,
    id_counter: u64,
    /// How many polls were answered in each form (see [`PollForms`]).
    poll_forms: PollForms,
}

/// How many task polls were answered in each form: `not_ready` (the
/// `type` object or HTTP 202), `empty_data`, or the task's status
/// (`pending`, `running`, `streaming`, `succeeded`, `failed`) for polls
/// that showed clips.
pub type PollForms = std::collections::BTreeMap<String, u64>;

impl World {
    /// Counts one poll answered in `form`.
    pub(crate) fn served(&mut self, form: &str) {
        *self.poll_forms.entry(form.to_owned()).or_insert(0) += 1;
    }
}

/// State shared by every request handler and timer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub ledger: Ledger,
    pub base_url: String,
    pub http: reqwest::Client,
    /// Requests answered so far, `/_sandbox/…` ones aside: what a
    /// benchmark divides a client's CPU time by.
    pub requests: std::sync::atomic::AtomicU64,
    world: Mutex<World>,
}

impl Shared {
    pub(crate) fn new(config: SandboxConfig, base_url: String) -> Shared {
        let ledger = Ledger::new(config.balance);
        Shared {
            config,
            ledger,
            base_url,
            http: reqwest::Client::new(),
            requests: std::sync::atomic::AtomicU64::new(0),
            world: Mutex::new(World::default()),
        }
    }

    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The forms polls were answered in so far.
    pub(crate) fn poll_forms(&self) -> PollForms {
        self.world().poll_forms.clone()
    }

    /// The dice for one request (see `faults`).
    pub(crate) fn roll(&self, method: &str, path: &str, body: &[u8]) -> Roll {
        let digest = request_digest(self.config.seed, method, path, body);
        let occurrence = {
            let mut world = self.world();
            let n = world.occurrences.entry(digest).or_insert(0);
            *n += 1;
            *n
        };
        Roll::new(&self.config.faults, &digest, occurrence)
    }

    /// The next id, UUID-shaped and derived from the seed and a counter so a
    /// seeded run names things the same way every time.
    pub(crate) fn next_id(&self) -> String {
        let n = {
            let mut world = self.world();
            world.id_counter += 1;
            world.id_counter
        };
        uuid_from(self.config.seed, n)
    }

    /// Takes the key's submit slot for a request that arrived at `now`
    /// debiting `debits`, or answers 429 (burst 1). Which requests take it
    /// is the configured [`RateLimitScope`]. Requests may reach this check
    /// out of order, so what counts is the distance between arrivals,
    /// either way round.
    pub(crate) fn take_submit_slot(
        &self,
        key: &str,
        debits: &[Debit],
        now: Instant,
    ) -> Result<(), Failure> {
        if !self.config.rate_limit_scope.limits(debits) {
            return Ok(());
        }
        let interval = self.config.scaled(self.config.submit_interval);
        let mut world = self.world();
        let last = world.next_submit.get(key).copied();
        let spaced = last.is_none_or(|last| {
            let gap = if now >= last { now - last } else { last - now };
            gap >= interval
        });
        if !spaced {
            return Err(Failure::rate_limited());
        }
        let latest = last.map_or(now, |last| last.max(now));
        world.next_submit.insert(key.to_owned(), latest);
        Ok(())
    }

    /// A clip usable as a source: known (404 otherwise) and finished.
    pub(crate) fn source_clip(&self, id: &str) -> Result<ClipRecord, Failure> {
        let world = self.world();
        let Some(clip) = world.clips.get(id) else {
            return Err(Failure::not_found(reply::CLIP_NOT_FOUND));
        };
        if let Some(task) = clip.task_id.as_ref().and_then(|t| world.tasks.get(t)) {
            let state = task.clip_state(id, Instant::now());
            if state != Some(ClipState::Succeeded) {
                return Err(Failure::bad("The clip is not ready yet."));
            }
        }
        Ok(clip.clone())
    }
}

fn uuid_from(seed: u64, n: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"sandbox-id");
    h.update(seed.to_le_bytes());
    h.update(n.to_le_bytes());
    let mut b: [u8; 16] = [0; 16];
    b.copy_from_slice(&h.finalize()[..16]);
    // Version 4, RFC 4122 variant, so it looks like any other clip id.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`, like the service.
pub(crate) fn iso_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_shaped_and_seeded() {
        let a = uuid_from(1, 1);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_eq!(a, uuid_from(1, 1));
        assert_ne!(a, uuid_from(2, 1));
    }

    #[test]
    fn each_scope_says_which_paid_requests_take_the_slot() {
        let debit = |operation: &str, credits| Debit {
            operation: operation.to_owned(),
            credits,
            task_id: None,
        };
        let batch = [debit("create_music", 15), debit("create_music", 15)];
        let wav = [debit("wav", 2)];
        let free = [debit("create_music", 0)];
        let rows: [(&[Debit], bool, bool); 3] = [
            // debits, generation scope, shared scope
            (&batch, true, true),
            (&wav, false, true),
            (&free, false, false),
        ];
        for (debits, generation, shared) in rows {
            assert_eq!(
                (
                    RateLimitScope::Generation.limits(debits),
                    RateLimitScope::Shared.limits(debits)
                ),
                (generation, shared),
                "{debits:?}"
            );
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
