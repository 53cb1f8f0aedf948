//! What the journal, the reuse index and the run registry hold, one JSON
//! object per line.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::observe::Window;
use crate::engine::{Account, ErrorKind, Outputs, TaskRef};
use crate::prices::PriceTable;

/// The first line of a run's journal: what was run, and how, so that
/// `run --resume` can build the same plan again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunHeader {
    /// The run's name: its folder's name.
    pub id: String,
    pub pipeline: String,
    /// The manifest, as an absolute path.
    pub manifest: String,
    pub manifest_sha256: String,
    pub price_version: String,
    pub tool_version: String,
    pub started_at: String,
    /// `--input` overrides, in order.
    #[serde(default)]
    pub inputs: Vec<(String, String)>,
    /// `--prices`, as an absolute path.
    #[serde(default)]
    pub prices: Option<String>,
    /// `--matrix`, as an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<String>,
    /// The SHA-256 of the matrix file the rows were read from (`--matrix` or `matrix.file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_sha256: Option<String>,
    #[serde(default)]
    pub select: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub max_credits: Option<u64>,
    /// `--allow-partial`: spend up to the cap and stop, kept on resume.
    #[serde(default)]
    pub allow_partial: bool,
    #[serde(default)]
    pub download: bool,
    /// The state folder (absolute) holding the index this run reuses from.
    #[serde(default)]
    pub state_dir: Option<String>,
    /// The bucket holding the state, when it is kept in one (`state_dir`
    /// is then the working copy of the machine that started the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_url: Option<String>,
    /// The API base URL the run talks to; `None` for a throwaway in-process sandbox.
    #[serde(default)]
    pub api: Option<String>,
    /// Started with `--no-reuse`: its resumes take nothing from other runs either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_reuse: bool,
    /// `--force` steps: its resumes do not take other runs' results for them either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub force: Vec<String>,
    /// `--upload-callback`: uploads are sent in the service's task mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_callback: Option<String>,
    /// `--out URL`: the bucket the run's results are published to when it
    /// ends, again by its resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_url: Option<String>,
    /// The price table the plan was priced with, whole, so that what the
    /// run was seen to be charged can be set against it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_table: Option<Box<PriceTable>>,
    /// `--run-id`: the run all shards of one batch share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `--shard K/N`: the part of the matrix this run covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// One line of a run's journal.
#[expect(
    clippy::large_enum_variant,
    reason = "a journal holds one header; boxing it would only add an allocation to every read"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    Run(RunHeader),
    /// A process took the run up again.
    Resumed {
        at: String,
    },
    /// A request is about to be sent (durable before it is).
    Intent {
        inst: String,
        hash: String,
        attempt: u32,
        fields: Map<String, Value>,
        /// Its price: what it costs if the service takes it (in doubt until answered).
        #[serde(default)]
        credits: u64,
        at: String,
    },
    /// The service accepted it; `task` is `None` for a synchronous operation.
    Accepted {
        inst: String,
        hash: String,
        attempt: u32,
        task: Option<TaskRef>,
        credits: u64,
        at: String,
    },
    /// The attempt ended with nothing charged, or was refunded.
    Released {
        inst: String,
        hash: String,
        attempt: u32,
        kind: ErrorKind,
        /// What the service said (absent in older journals).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        refunded: u64,
        at: String,
    },
    Succeeded {
        inst: String,
        hash: String,
        fields: Map<String, Value>,
        outputs: Outputs,
        /// The run it was reused from. Older journals also hold this run's
        /// own earlier results, taken up on resume, with an empty name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reused_from: Option<String>,
        /// Credits charged by a synchronous call (a task's are in its `accepted`).
        #[serde(default)]
        credits: u64,
        at: String,
    },
    Failed {
        inst: String,
        hash: String,
        fields: Map<String, Value>,
        kind: ErrorKind,
        message: String,
        charged: bool,
        /// Credits a synchronous call was charged before its files failed to save.
        #[serde(default)]
        credits: u64,
        /// The answer of that paid call, kept so only its files are fetched again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outputs: Option<Outputs>,
        at: String,
    },
    /// A balance window closed: what was sent and seen failed in it, and
    /// the balances on either side.
    Observed(Window),
    /// The run ended (it may still have failed steps).
    Finished {
        status: String,
        /// How it ended ([`RunOutcome::verdict`](crate::engine::RunOutcome::verdict));
        /// absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
        /// The run's credits so far, earlier processes included.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credits: Option<Account>,
        /// For a run stopped by the cap: the cap its resume needs to finish.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        needed_cap: Option<u64>,
        at: String,
    },
}

/// How an indexed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Sent, and no answer ever came: it may have been charged.
    InDoubt,
    /// Accepted and paid, but not followed to the end (it timed out).
    Unfinished,
}

/// One line of `index.jsonl` in the state folder: a request some run finished with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The API base URL that answered: results of one service mean nothing to another.
    pub api: String,
    pub pipeline: String,
    /// The run's name.
    pub run: String,
    /// The run's folder (absolute), where its downloaded files are.
    pub dir: String,
    pub inst: String,
    pub hash: String,
    pub outcome: Outcome,
    pub fields: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// The task to poll again for an unfinished request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at: String,
}

/// One line of `runs.jsonl` in the state folder: a run that was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    pub id: String,
    pub pipeline: String,
    /// The run's folder (absolute).
    pub dir: String,
    pub manifest: String,
    pub started_at: String,
    /// `--run-id`: the run all shards of one batch share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `--shard K/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// One shard of a run split over several processes: `index` of `count`,
/// from 1 (`--shard K/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// K: this shard, from 1.
    pub index: u32,
    /// N: how many shards the batch was split into.
    pub count: u32,
}
