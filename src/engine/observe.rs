//! Observed charges: what the service really took for each request, read
//! off the (free) balance, never assumed from the price table.
//!
//! # Windows
//!
//! The runner reads the balance before its first submit, after every
//! submit's answer and after every task it sees finish. Two successful
//! reads in a row bound a *window*. Every paid submit holds a shared lock
//! for the whole of its HTTP exchange and a balance read holds it
//! exclusively, so no submit is ever on the wire while the balance is read:
//! each submit lies wholly inside exactly one window, whatever else runs at
//! the same time (submits of other operation classes, polls, downloads).
//! A balance read waits at most [`READ_WAIT`] (divided by the time scale)
//! and holds back the next submit for no longer than that.
//!
//! The exception is a request whose answer waits for work on the service
//! ([`answered_after_work`](crate::prices::answered_after_work): a
//! synchronous upload takes 15–25 s): holding the lock that long would
//! queue every other submit behind the next read. Such a request holds no
//! window; it is recorded in the window open when its answer came, with
//! `since` the window open when it was sent, and the windows in between are
//! weighed as one group, as a refund's are. A group that may reach into a
//! window that never closed is never split.
//!
//! A read that fails (an error, no answer in time) closes nothing: its
//! window runs on to the next read that succeeds, so the change between two
//! known balances is still explained by everything sent between them. A
//! window that no successful read closes (the last read failed, or the run
//! was killed) is journaled with no closing balance, and everything in it is
//! *unknown*, never guessed.
//!
//! # What is attributed when
//!
//! A refund lands on the service between the last poll that saw its task
//! pending and the poll that saw it failed, so a task seen failed ties
//! together every window from the one its last pending poll was sent in to
//! the one it was seen failed in; windows tied together are weighed as one
//! group. Then, for each group (a single window, mostly), with `spent` the
//! balance before minus the balance after:
//!
//! - no submits and no failures: a change is **unattributed** (another user
//!   of the key, or a charge nobody sent); it is reported apart and never
//!   added to any request or operation;
//! - submits of one operation only, and no failures: each submit cost
//!   `spent / n` when that divides evenly and is not negative;
//! - failures only, all of one operation: each failed task was refunded
//!   `-spent / n` under the same condition;
//! - anything else (submits of different operations in one window, submits
//!   and refunds together, an uneven split): the group's change is reported
//!   as **shared** by its requests, and none of them gets a per-request
//!   figure, since the balance alone cannot tell them apart — unless it
//!   holds submits only and every operation in it but one was seen on its
//!   own in this run at exactly one price: then those take that price and
//!   the one left costs what remains (when it divides evenly), as for a
//!   window of one operation; a group whose operations were all seen is
//!   split only when their prices add up to its change exactly.
//!
//! A change inside a window that holds submits is taken to be theirs: a
//! second user spending in the same instant would be blended in, which is
//! why windows are closed right after each answer. Such a blend shows as
//! an operation seen at two prices, which `sonicflow prices learn` reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long one balance read may take before its window is left open.
pub const READ_WAIT: Duration = Duration::from_secs(10);

/// A request whose exchange lay inside a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSubmit {
    /// The instance (`step[key/0]`).
    pub inst: String,
    pub attempt: u32,
    pub operation: String,
    /// What the price table says it costs.
    pub planned: u64,
    /// For an exchange that held no window (one answered only after work on
    /// the service, which would hold every other submit back), the window
    /// open when it was sent: its charge lies in a window from that one to
    /// this, so they are weighed together. `None`: wholly inside this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// A task seen failed inside a window, whose refund lies somewhere from
/// window `since` to this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowFailure {
    pub inst: String,
    pub attempt: u32,
    pub operation: String,
    /// What the table says the task cost (what its refund should be).
    pub planned: u64,
    /// The first window the refund may lie in; `None` when it may lie
    /// before this process's first read (a task taken up on resume and
    /// seen failed at once), so it cannot be bracketed.
    pub since: Option<u64>,
}

/// One window between two balance reads, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Numbered from 0 over the run and its resumes.
    pub seq: u64,
    /// The balance that opened it; `None` when no read before it succeeded.
    pub before: Option<u64>,
    /// The balance that closed it; `None` when no read after it succeeded.
    pub after: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submits: Vec<WindowSubmit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<WindowFailure>,
    /// Balance reads that failed inside it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_reads: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Window {
    fn is_empty(&self) -> bool {
        self.submits.is_empty() && self.failures.is_empty()
    }
}

/// What one attempt of one instance was seen to cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AttemptCharge {
    /// Credits taken by its submit; `None` when not known on its own.
    pub charged: Option<u64>,
    /// Credits given back for its failed task; `None` when not known on its own.
    pub refunded: Option<u64>,
}

/// The observations of one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OperationCharges {
    /// The price table's price (of the submits seen).
    pub table: u64,
    /// Submits whose charge was observed on its own.
    pub observed_calls: u64,
    /// Observed charge → how many submits were charged it.
    pub observed: BTreeMap<u64, u64>,
    /// Submits whose charge is unknown or shared with others.
    pub unobserved_calls: u64,
    /// Credits refunded to failed tasks of the operation, as observed.
    pub refunded: u64,
    /// Observed charge → the instances charged it.
    pub charged_to: BTreeMap<u64, Vec<String>>,
}

impl OperationCharges {
    /// The observed prices that differ from the table's.
    pub fn differs(&self) -> bool {
        self.observed.keys().any(|&p| p != self.table)
    }
}

/// A step's submits seen, priced by the table and by the balance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StepCharges {
    /// The table's price of every submit seen.
    pub planned: u64,
    /// What the submits observed on their own were charged.
    pub charged: u64,
    pub refunded: u64,
    /// Submits whose charge was not seen on its own.
    pub unobserved: u64,
}

/// The step id of an instance name (`song[rain/0]` → `song`).
fn step_of(inst: &str) -> &str {
    inst.split_once('[').map_or(inst, |(step, _)| step)
}

/// A group of windows whose change was shared by several requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedCharge {
    /// The windows, first and last.
    pub windows: (u64, u64),
    /// `instance #attempt` of each request.
    pub requests: Vec<String>,
    /// Credits spent over the group (negative: more came back than went).
    pub spent: i64,
}

/// A balance change no request explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unattributed {
    pub window: u64,
    /// Credits spent (negative: credits came back).
    pub spent: i64,
}

/// Everything the windows say, attributed as the module docs describe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observations {
    /// Balance windows that closed.
    pub windows: u64,
    /// `(instance, attempt)` → what it cost.
    pub attempts: BTreeMap<(String, u32), AttemptCharge>,
    pub operations: BTreeMap<String, OperationCharges>,
    /// Per step id: the table's price of its submits seen, and what they were seen to cost.
    pub steps: BTreeMap<String, StepCharges>,
    pub shared: Vec<SharedCharge>,
    pub unattributed: Vec<Unattributed>,
    /// Requests in windows whose balance was never read on one side.
    pub unknown: Vec<String>,
    /// Balance reads that failed.
    pub failed_reads: u32,
    /// Net credits the balance went down by over every closed window.
    pub spent: i64,
}

/// A difference between the table and the service, as warnings name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceDifference {
    pub operation: String,
    pub table: u64,
    pub observed: u64,
    pub calls: u64,
}

impl fmt::Display for PriceDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let calls = if self.calls == 1 { "call" } else { "calls" };
        write!(
            f,
            "{}: the price table says {}, the service charged {} ({} {calls})",
            self.operation, self.table, self.observed, self.calls
        )
    }
}

impl Observations {
    /// Every observed price that differs from the table, by operation.
    pub fn differences(&self) -> Vec<PriceDifference> {
        let mut out = Vec::new();
        for (operation, op) in &self.operations {
            for (&observed, &calls) in &op.observed {
                if observed != op.table {
                    out.push(PriceDifference {
                        operation: operation.clone(),
                        table: op.table,
                        observed,
                        calls,
                    });
                }
            }
        }
        out
    }

    /// Credits the balance moved by that no request explains.
    pub fn unattributed_spent(&self) -> i64 {
        self.unattributed.iter().map(|u| u.spent).sum()
    }

    /// What instance `inst` was seen to be charged and refunded over its
    /// attempts, and how many of its attempts are not known on their own.
    pub fn instance(&self, inst: &str) -> Option<(u64, u64, u64)> {
        let mut found = None;
        for ((name, _), a) in &self.attempts {
            if name != inst {
                continue;
            }
            let (charged, refunded, unknown) = found.get_or_insert((0, 0, 0));
            match a.charged {
                Some(c) => *charged += c,
                None => *unknown += 1,
            }
            *refunded += a.refunded.unwrap_or(0);
        }
        found
    }
}

/// Attributes the windows of a run (in any order) as the module docs say.
pub fn attribute(windows: &[Window]) -> Observations {
    let mut windows: Vec<&Window> = windows.iter().collect();
    windows.sort_by_key(|w| w.seq);
    let mut obs = Observations::default();
    for w in &windows {
        obs.failed_reads += w.failed_reads;
    }
    // A window not closed on both sides: what was sent in it is unknown.
    let (known, open): (Vec<&Window>, Vec<&Window>) = windows
        .into_iter()
        .partition(|w| w.before.is_some() && w.after.is_some());
    for w in open {
        for s in &w.submits {
            obs.unknown.push(format!("{} #{}", s.inst, s.attempt));
            note_submit(&mut obs, s, None);
        }
        for f in &w.failures {
            obs.unknown
                .push(format!("{} #{} (refund)", f.inst, f.attempt));
            note_refund(&mut obs, f, None);
        }
    }
    obs.windows = known.len() as u64;
    let mut shared = Vec::new();
    for group in groups(&known) {
        shared.extend(weigh(&mut obs, &group));
    }
    settle_shared(&mut obs, shared);
    obs
}

/// A group of windows whose change the first pass could not split.
struct Pending<'a> {
    windows: (u64, u64),
    spent: i64,
    submits: Vec<&'a WindowSubmit>,
    failures: Vec<&'a WindowFailure>,
    /// Whether the group's change holds every charge and refund of its
    /// requests; one that may not is never split.
    whole: bool,
}

/// Splits what it can of the shared groups, then reports the rest. A group
/// of submits only (no refunds) is split when every operation in it but at
/// most one was seen on its own in this run at exactly one price: those
/// are taken at that price, and the one left costs what remains, when that
/// divides evenly and is not negative; a group whose operations are all
/// known is split only when they add up exactly. A split can make another
/// operation known, so this goes round until nothing more splits.
fn settle_shared(obs: &mut Observations, mut pending: Vec<Pending<'_>>) {
    loop {
        let before = pending.len();
        let mut rest = Vec::new();
        for group in pending {
            match split(obs, &group) {
                Some(prices) => {
                    for s in &group.submits {
                        note_submit(obs, s, prices.get(&s.operation).copied());
                    }
                }
                None => rest.push(group),
            }
        }
        pending = rest;
        if pending.len() == before {
            break;
        }
    }
    for group in pending {
        let mut requests = Vec::new();
        for s in group.submits {
            requests.push(format!("{} #{}", s.inst, s.attempt));
            note_submit(obs, s, None);
        }
        for f in group.failures {
            requests.push(format!("{} #{} (refund)", f.inst, f.attempt));
            note_refund(obs, f, None);
        }
        obs.shared.push(SharedCharge {
            windows: group.windows,
            requests,
            spent: group.spent,
        });
    }
}

/// The price of each operation of a shared group, if the group splits.
fn split(obs: &Observations, group: &Pending<'_>) -> Option<BTreeMap<String, u64>> {
    if !group.failures.is_empty() || !group.whole {
        return None;
    }
    let mut left = u64::try_from(group.spent).ok()?;
    let mut calls: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &group.submits {
        *calls.entry(s.operation.as_str()).or_default() += 1;
    }
    let mut prices = BTreeMap::new();
    let mut unseen = None;
    for (&op, &n) in &calls {
        let seen = obs.operations.get(op).map(|o| &o.observed);
        match seen.map(|prices| prices.keys().copied().collect::<Vec<u64>>()) {
            Some(one) if one.len() == 1 => {
                left = left.checked_sub(one[0].checked_mul(n)?)?;
                prices.insert(op.to_owned(), one[0]);
            }
            // Seen at two prices: which one this call cost cannot be told.
            Some(many) if many.len() > 1 => return None,
            _ if unseen.is_none() => unseen = Some((op, n)),
            _ => return None,
        }
    }
    match unseen {
        None => (left == 0).then_some(prices),
        Some((op, n)) => (left % n == 0).then(|| {
            prices.insert(op.to_owned(), left / n);
            prices
        }),
    }
}

/// Ties windows together where a failure's refund, or the charge of an
/// exchange that held no window, may lie in any of them.
fn groups<'a>(windows: &[&'a Window]) -> Vec<Vec<&'a Window>> {
    let seqs: BTreeSet<u64> = windows.iter().map(|w| w.seq).collect();
    // Each window's group reaches back to the earliest `since` tied to it.
    let mut reach: BTreeMap<u64, u64> = seqs.iter().map(|&s| (s, s)).collect();
    for w in windows {
        let spans = w.submits.iter().filter_map(|s| s.since);
        for since in w
            .failures
            .iter()
            .map(|f| f.since.unwrap_or(w.seq))
            .chain(spans)
        {
            // Only windows that closed, in one unbroken run of numbers, can be tied.
            let mut from = w.seq;
            while from > since && seqs.contains(&(from - 1)) {
                from -= 1;
            }
            let r = reach.entry(w.seq).or_insert(w.seq);
            *r = (*r).min(from);
        }
    }
    let mut out: Vec<Vec<&Window>> = Vec::new();
    for w in windows {
        let from = reach[&w.seq];
        let mut group = vec![*w];
        // Earlier groups ending inside this window's reach join it.
        while out
            .last()
            .and_then(|g| g.last())
            .is_some_and(|g| g.seq >= from)
        {
            let mut earlier = out.pop().unwrap_or_default();
            earlier.append(&mut group);
            group = earlier;
        }
        out.push(group);
    }
    out
}

/// Attributes one group, or hands it back when it is shared.
fn weigh<'a>(obs: &mut Observations, group: &[&'a Window]) -> Option<Pending<'a>> {
    let spent: i64 = group
        .iter()
        .map(|w| w.before.unwrap_or(0) as i64 - w.after.unwrap_or(0) as i64)
        .sum();
    obs.spent += spent;
    let submits: Vec<&WindowSubmit> = group.iter().flat_map(|w| &w.submits).collect();
    let failures: Vec<&WindowFailure> = group.iter().flat_map(|w| &w.failures).collect();
    let first = group.first().map_or(0, |w| w.seq);
    let last = group.last().map_or(0, |w| w.seq);
    // A charge or refund that may lie before the group (in a window that
    // never closed) leaves its change unexplained: the group is not split.
    let reaches_out = submits.iter().filter_map(|s| s.since).any(|s| s < first)
        || failures.iter().any(|f| f.since.is_some_and(|s| s < first));
    let one_op = |ops: &mut dyn Iterator<Item = &str>| {
        let ops: BTreeSet<&str> = ops.collect();
        ops.len() == 1
    };
    match (submits.is_empty(), failures.is_empty()) {
        _ if reaches_out => {
            return Some(Pending {
                windows: (first, last),
                spent,
                submits,
                failures,
                whole: false,
            });
        }
        (true, true) => {
            if spent != 0 {
                obs.unattributed.push(Unattributed {
                    window: first,
                    spent,
                });
            }
        }
        (false, true)
            if one_op(&mut submits.iter().map(|s| s.operation.as_str()))
                && spent >= 0
                && spent % submits.len() as i64 == 0 =>
        {
            let each = spent.unsigned_abs() / submits.len() as u64;
            for s in submits {
                note_submit(obs, s, Some(each));
            }
        }
        (true, false)
            if one_op(&mut failures.iter().map(|f| f.operation.as_str()))
                && spent <= 0
                && spent % failures.len() as i64 == 0 =>
        {
            let each = spent.unsigned_abs() / failures.len() as u64;
            for f in failures {
                note_refund(obs, f, Some(each));
            }
        }
        _ => {
            return Some(Pending {
                windows: (first, last),
                spent,
                submits,
                failures,
                whole: true,
            });
        }
    }
    None
}

fn note_submit(obs: &mut Observations, s: &WindowSubmit, charged: Option<u64>) {
    let key = (s.inst.clone(), s.attempt);
    obs.attempts.entry(key).or_default().charged = charged;
    let step = obs.steps.entry(step_of(&s.inst).to_owned()).or_default();
    step.planned += s.planned;
    match charged {
        Some(c) => step.charged += c,
        None => step.unobserved += 1,
    }
    let op = obs.operations.entry(s.operation.clone()).or_default();
    op.table = s.planned;
    match charged {
        Some(c) => {
            op.observed_calls += 1;
            *op.observed.entry(c).or_default() += 1;
            op.charged_to.entry(c).or_default().push(s.inst.clone());
        }
        None => op.unobserved_calls += 1,
    }
}

fn note_refund(obs: &mut Observations, f: &WindowFailure, refunded: Option<u64>) {
    let key = (f.inst.clone(), f.attempt);
    obs.attempts.entry(key).or_default().refunded = refunded;
    obs.steps
        .entry(step_of(&f.inst).to_owned())
        .or_default()
        .refunded += refunded.unwrap_or(0);
    let op = obs.operations.entry(f.operation.clone()).or_default();
    op.table = op.table.max(f.planned);
    op.refunded += refunded.unwrap_or(0);
}

/// The driver's side: which window is open, what happened in it, and
/// whether a read is due. Pure bookkeeping; the driver does the I/O.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// The open window's number (the count of successful reads so far,
    /// plus the windows of earlier processes).
    pub(crate) open: u64,
    /// The balance that opened it, when known.
    pub(crate) before: Option<u64>,
    pending: BTreeMap<u64, (Vec<WindowSubmit>, Vec<WindowFailure>)>,
    failed_reads: u32,
    /// A read is on its way.
    pub(crate) reading: bool,
    /// Another read is wanted once it is back.
    pub(crate) again: bool,
}

impl Ledger {
    /// Starts numbering after the windows an earlier process journaled.
    pub(crate) fn after(earlier: &[Window]) -> Ledger {
        let open = earlier.iter().map(|w| w.seq + 1).max().unwrap_or(0);
        Ledger {
            open,
            ..Ledger::default()
        }
    }

    /// A submit's exchange lay inside window `seq`.
    pub(crate) fn submitted(&mut self, seq: u64, submit: WindowSubmit) {
        self.pending.entry(seq).or_default().0.push(submit);
    }

    /// A task was seen failed; its refund lies in window `seq` at the latest.
    pub(crate) fn failed(&mut self, seq: u64, failure: WindowFailure) {
        self.pending.entry(seq).or_default().1.push(failure);
    }

    /// A read came back: `Some(balance)` closes the open window, which is
    /// returned unless it is the opening read of this process with nothing in it.
    pub(crate) fn read(&mut self, balance: Option<u64>) -> Option<Window> {
        self.reading = false;
        let Some(balance) = balance else {
            self.failed_reads += 1;
            return None;
        };
        let window = self.take(Some(balance));
        self.before = Some(balance);
        self.open += 1;
        // Nothing can happen before the opening read: no submit is let through first.
        (window.before.is_some() || !window.is_empty()).then_some(window)
    }

    /// The open window as it stands, with no closing balance (the run ended
    /// without one); `None` when nothing happened in it.
    pub(crate) fn close_unread(&mut self) -> Option<Window> {
        let window = self.take(None);
        (!window.is_empty()).then_some(window)
    }

    fn take(&mut self, after: Option<u64>) -> Window {
        let (submits, failures) = self.pending.remove(&self.open).unwrap_or_default();
        Window {
            seq: self.open,
            before: self.before,
            after,
            submits,
            failures,
            failed_reads: std::mem::take(&mut self.failed_reads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(inst: &str, op: &str, planned: u64) -> WindowSubmit {
        WindowSubmit {
            inst: inst.to_owned(),
            attempt: 1,
            operation: op.to_owned(),
            planned,
            since: None,
        }
    }

    fn failure(inst: &str, op: &str, since: Option<u64>) -> WindowFailure {
        WindowFailure {
            inst: inst.to_owned(),
            attempt: 1,
            operation: op.to_owned(),
            planned: 15,
            since,
        }
    }

    fn window(seq: u64, before: u64, after: u64) -> Window {
        Window {
            seq,
            before: Some(before),
            after: Some(after),
            submits: Vec::new(),
            failures: Vec::new(),
            failed_reads: 0,
        }
    }

    #[test]
    fn each_kind_of_window_is_attributed_as_documented() {
        // (windows, charged per attempt, refunded per attempt, unattributed, shared groups)
        type Case = (Vec<Window>, Vec<Option<u64>>, Vec<Option<u64>>, i64, usize);
        let mut one = window(0, 100, 80);
        one.submits.push(submit("a", "create_music", 15));
        let mut two_same = window(0, 100, 60);
        two_same.submits = vec![
            submit("a", "create_music", 15),
            submit("b", "create_music", 15),
        ];
        let mut mixed = window(0, 100, 78);
        mixed.submits = vec![submit("a", "create_music", 15), submit("b", "wav", 1)];
        let mut uneven = window(0, 100, 59);
        uneven.submits = vec![
            submit("a", "create_music", 15),
            submit("b", "create_music", 15),
        ];
        let quiet = window(0, 100, 98);
        let still = window(0, 100, 100);
        let mut refund = window(1, 80, 100);
        refund.failures.push(failure("a", "create_music", Some(1)));
        let mut submitted = window(0, 100, 80);
        submitted.submits.push(submit("a", "create_music", 15));
        let cases: Vec<(&str, Case)> = vec![
            ("one submit", (vec![one], vec![Some(20)], vec![None], 0, 0)),
            (
                "two of one operation",
                (
                    vec![two_same],
                    vec![Some(20), Some(20)],
                    vec![None, None],
                    0,
                    0,
                ),
            ),
            (
                "two operations",
                (vec![mixed], vec![None, None], vec![None, None], 0, 1),
            ),
            (
                "an uneven split",
                (vec![uneven], vec![None, None], vec![None, None], 0, 1),
            ),
            ("nobody's spend", (vec![quiet], vec![], vec![], 2, 0)),
            ("no change", (vec![still], vec![], vec![], 0, 0)),
            (
                "a refund",
                (
                    vec![submitted, refund],
                    vec![Some(20)],
                    vec![Some(20)],
                    0,
                    0,
                ),
            ),
        ];
        for (name, (windows, charged, refunded, unattributed, shared)) in cases {
            let obs = attribute(&windows);
            let got_c: Vec<Option<u64>> = obs.attempts.values().map(|a| a.charged).collect();
            let got_r: Vec<Option<u64>> = obs.attempts.values().map(|a| a.refunded).collect();
            assert_eq!(got_c, charged, "{name}: charged");
            assert_eq!(got_r, refunded, "{name}: refunded");
            assert_eq!(
                obs.unattributed_spent(),
                unattributed,
                "{name}: unattributed"
            );
            assert_eq!(obs.shared.len(), shared, "{name}: shared");
        }
    }

    /// An upload that held no window, sent while `since` was open.
    fn spanning(inst: &str, since: u64) -> WindowSubmit {
        WindowSubmit {
            since: Some(since),
            ..submit(inst, "upload", 2)
        }
    }

    #[test]
    fn an_exchange_that_held_no_window_is_weighed_with_every_window_it_spanned() {
        // The upload went out in window 0 and was answered in window 2; its
        // charge landed in window 1, beside a cover's. A cover seen alone in
        // window 3 prices the covers, so the upload costs what is left.
        let w0 = window(0, 100, 100);
        let mut w1 = window(1, 100, 83);
        w1.submits
            .push(submit("cover[a]", "cover_upload_music", 15));
        let mut w2 = window(2, 83, 83);
        w2.submits.push(spanning("upload[b]", 0));
        let mut w3 = window(3, 83, 68);
        w3.submits
            .push(submit("cover[c]", "cover_upload_music", 15));
        let obs = attribute(&[w0.clone(), w1.clone(), w2.clone(), w3.clone()]);
        let charged = |inst: &str| obs.attempts[&(inst.to_owned(), 1)].charged;
        assert_eq!(charged("cover[c]"), Some(15));
        assert_eq!(charged("cover[a]"), Some(15));
        assert_eq!(charged("upload[b]"), Some(2));
        assert!(obs.shared.is_empty(), "{:?}", obs.shared);
        assert_eq!(obs.unattributed_spent(), 0);

        // Weighed on its own, window 1 would say the cover cost 17 and the
        // upload nothing: the span is what keeps them apart.
        let mut alone = w2.clone();
        alone.submits[0].since = None;
        let obs = attribute(&[w0, w1, alone, w3]);
        assert_eq!(obs.attempts[&("cover[a]".to_owned(), 1)].charged, Some(17));
    }

    #[test]
    fn a_span_reaching_into_a_window_that_never_closed_is_not_split() {
        // Window 0 was never closed (an earlier process was killed): the
        // upload's charge may lie there, so window 1's change explains nothing.
        let mut w1 = window(1, 100, 85);
        w1.submits.push(spanning("upload[b]", 0));
        w1.submits
            .push(submit("cover[a]", "cover_upload_music", 15));
        let mut w2 = window(2, 85, 70);
        w2.submits
            .push(submit("cover[c]", "cover_upload_music", 15));
        let obs = attribute(&[w1, w2]);
        assert_eq!(obs.attempts[&("upload[b]".to_owned(), 1)].charged, None);
        assert_eq!(obs.attempts[&("cover[a]".to_owned(), 1)].charged, None);
        assert_eq!(obs.shared.len(), 1, "{:?}", obs.shared);
    }

    #[test]
    fn a_shared_window_is_split_by_the_prices_its_operations_were_seen_at_alone() {
        let mut stems_alone = window(0, 100, 70);
        stems_alone
            .submits
            .push(submit("stems[0]", "stems_basic", 30));
        let mut both = window(1, 70, 38);
        both.submits = vec![
            submit("stems[1]", "stems_basic", 30),
            submit("wav[1]", "wav", 2),
        ];
        // The wav is what stems alone does not explain: 32 - 30.
        let obs = attribute(&[stems_alone.clone(), both.clone()]);
        assert!(obs.shared.is_empty(), "{:?}", obs.shared);
        assert_eq!(obs.instance("wav[1]"), Some((2, 0, 0)));
        assert_eq!(obs.instance("stems[1]"), Some((30, 0, 0)));
        // Once wav is known too, a later pair must add up exactly.
        let mut wav_alone = window(2, 38, 36);
        wav_alone.submits.push(submit("wav[2]", "wav", 2));
        let mut off = window(3, 36, 3);
        off.submits = vec![
            submit("stems[3]", "stems_basic", 30),
            submit("wav[3]", "wav", 2),
        ];
        let obs = attribute(&[stems_alone.clone(), wav_alone, off]);
        assert_eq!(obs.shared.len(), 1, "33 is not 30 + 2: {:?}", obs.shared);
        assert_eq!(obs.instance("wav[3]"), Some((0, 0, 1)));
        // With nothing seen alone, nothing is split.
        let obs = attribute(&[both.clone()]);
        assert_eq!(obs.shared.len(), 1);
        // Nor when an operation was seen at two prices.
        let mut dearer = window(2, 38, 3);
        dearer.submits.push(submit("stems[2]", "stems_basic", 30));
        let obs = attribute(&[stems_alone, dearer, both]);
        assert_eq!(obs.shared.len(), 1, "{:?}", obs.shared);
    }

    #[test]
    fn a_refund_that_may_lie_in_earlier_windows_ties_them_together() {
        let mut w0 = window(0, 100, 80);
        w0.submits.push(submit("a", "create_music", 15));
        // The refund of `a` came back here, where `b` was sent too …
        let mut w1 = window(1, 80, 85);
        w1.submits.push(submit("b", "create_music", 15));
        // … and `a` was seen failed one window later.
        let mut w2 = window(2, 85, 85);
        w2.failures.push(failure("a", "create_music", Some(1)));
        let obs = attribute(&[w0, w1, w2]);
        assert_eq!(obs.attempts[&("a".to_owned(), 1)].charged, Some(20));
        assert_eq!(obs.attempts[&("b".to_owned(), 1)].charged, None);
        assert_eq!(obs.shared.len(), 1, "{obs:?}");
        assert_eq!(obs.shared[0].windows, (1, 2));
        assert_eq!(obs.shared[0].spent, -5);
        assert_eq!(obs.unattributed_spent(), 0);
    }

    #[test]
    fn windows_without_a_balance_on_one_side_are_unknown_never_guessed() {
        let mut w = window(3, 100, 0);
        w.after = None;
        w.submits.push(submit("a", "wav", 2));
        let obs = attribute(&[w]);
        assert_eq!(obs.unknown, vec!["a #1"]);
        assert_eq!(obs.operations["wav"].unobserved_calls, 1);
        assert_eq!(obs.spent, 0);
        assert!(obs.differences().is_empty());
    }

    #[test]
    fn differences_name_the_operation_both_prices_and_the_calls() {
        let mut w = window(0, 100, 60);
        w.submits = vec![
            submit("a", "create_music", 15),
            submit("b", "create_music", 15),
        ];
        let d = attribute(&[w]).differences();
        assert_eq!(
            d[0].to_string(),
            "create_music: the price table says 15, the service charged 20 (2 calls)"
        );
    }

    #[test]
    fn the_ledger_numbers_windows_on_from_earlier_processes() {
        let mut ledger = Ledger::after(&[window(4, 10, 10)]);
        assert_eq!(ledger.open, 5);
        assert_eq!(
            ledger.read(Some(100)),
            None,
            "the opening read holds nothing"
        );
        ledger.submitted(6, submit("a", "wav", 2));
        assert_eq!(ledger.read(None), None);
        let w = ledger.read(Some(98)).unwrap();
        assert_eq!(
            (w.seq, w.before, w.after, w.failed_reads),
            (6, Some(100), Some(98), 1)
        );
        assert_eq!(w.submits.len(), 1);
        assert_eq!(ledger.close_unread(), None);
    }
}
