//! The credit ledger: one account per API key, every charge and refund
//! recorded with the operation, the request body's hash and the task id, so
//! a test can prove something was charged exactly once.
//!
//! It knows nothing of HTTP; the pipeline asks it to charge and the task
//! state machine asks it to refund.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// Whether an entry took credits or gave them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Charge,
    Refund,
}

/// One movement of credits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    /// Position in the whole ledger (all keys), from 1.
    pub seq: u64,
    pub kind: EntryKind,
    /// The price-table operation, e.g. `create_music`, `upload`, `wav`.
    pub operation: String,
    pub credits: u64,
    /// Hex SHA-256 of the raw request body that caused the charge.
    pub body_hash: String,
    /// The task the charge paid for, for async operations.
    pub task_id: Option<String>,
    /// The account's balance after this entry.
    pub balance_after: u64,
}

/// One planned debit, before it is applied.
#[derive(Debug, Clone)]
pub(crate) struct Debit {
    pub operation: String,
    pub credits: u64,
    pub task_id: Option<String>,
}

#[derive(Debug, Default)]
struct Account {
    balance: u64,
    entries: Vec<LedgerEntry>,
}

#[derive(Debug)]
struct Inner {
    start_balance: u64,
    seq: u64,
    accounts: BTreeMap<String, Account>,
}

/// A shared view of the ledger; cloning it shares the same accounts.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<Mutex<Inner>>,
}

impl Ledger {
    pub(crate) fn new(start_balance: u64) -> Ledger {
        Ledger {
            inner: Arc::new(Mutex::new(Inner {
                start_balance,
                seq: 0,
                accounts: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The starting balance every account begins with.
    pub fn start_balance(&self) -> u64 {
        self.lock().start_balance
    }

    /// The current balance of `key` (the starting balance if it never paid).
    pub fn balance(&self, key: &str) -> u64 {
        let inner = self.lock();
        inner
            .accounts
            .get(key)
            .map_or(inner.start_balance, |a| a.balance)
    }

    /// Every entry of `key`, oldest first.
    pub fn entries(&self, key: &str) -> Vec<LedgerEntry> {
        self.lock()
            .accounts
            .get(key)
            .map(|a| a.entries.clone())
            .unwrap_or_default()
    }

    /// The entries of `key` for one task.
    pub fn entries_for_task(&self, key: &str, task_id: &str) -> Vec<LedgerEntry> {
        let mut entries = self.entries(key);
        entries.retain(|e| e.task_id.as_deref() == Some(task_id));
        entries
    }

    /// Sum of all charges of `key`.
    pub fn charged(&self, key: &str) -> u64 {
        self.sum(key, EntryKind::Charge)
    }

    /// Sum of all refunds of `key`.
    pub fn refunded(&self, key: &str) -> u64 {
        self.sum(key, EntryKind::Refund)
    }

    fn sum(&self, key: &str, kind: EntryKind) -> u64 {
        self.entries(key)
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.credits)
            .sum()
    }

    /// Applies all `debits` or none: `false` when the balance is short.
    pub(crate) fn charge(&self, key: &str, body_hash: &str, debits: &[Debit]) -> bool {
        let mut inner = self.lock();
        let start = inner.start_balance;
        let total: u64 = debits.iter().map(|d| d.credits).sum();
        let balance = inner.accounts.get(key).map_or(start, |a| a.balance);
        if total > balance {
            return false;
        }
        for debit in debits.iter().filter(|d| d.credits > 0) {
            inner.seq += 1;
            let seq = inner.seq;
            let account = account(&mut inner.accounts, key, start);
            account.balance -= debit.credits;
            let entry = LedgerEntry {
                seq,
                kind: EntryKind::Charge,
                operation: debit.operation.clone(),
                credits: debit.credits,
                body_hash: body_hash.to_owned(),
                task_id: debit.task_id.clone(),
                balance_after: account.balance,
            };
            account.entries.push(entry);
        }
        true
    }

    /// Refunds the charge of `task_id`, at most once; returns the credits given back.
    pub(crate) fn refund_task(&self, key: &str, task_id: &str) -> u64 {
        let mut inner = self.lock();
        let start = inner.start_balance;
        let Some(acc) = inner.accounts.get(key) else {
            return 0;
        };
        let mine = |e: &&LedgerEntry| e.task_id.as_deref() == Some(task_id);
        if acc
            .entries
            .iter()
            .filter(mine)
            .any(|e| e.kind == EntryKind::Refund)
        {
            return 0;
        }
        let Some(charge) = acc
            .entries
            .iter()
            .filter(mine)
            .find(|e| e.kind == EntryKind::Charge)
            .cloned()
        else {
            return 0;
        };
        inner.seq += 1;
        let seq = inner.seq;
        let account = account(&mut inner.accounts, key, start);
        account.balance += charge.credits;
        let entry = LedgerEntry {
            seq,
            kind: EntryKind::Refund,
            balance_after: account.balance,
            ..charge
        };
        account.entries.push(entry);
        charge.credits
    }
}

fn account<'a>(
    accounts: &'a mut BTreeMap<String, Account>,
    key: &str,
    start: u64,
) -> &'a mut Account {
    accounts.entry(key.to_owned()).or_insert_with(|| Account {
        balance: start,
        entries: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn debit(op: &str, credits: u64, task: Option<&str>) -> Debit {
        Debit {
            operation: op.into(),
            credits,
            task_id: task.map(Into::into),
        }
    }

    #[test]
    fn charge_is_all_or_nothing_and_refund_happens_once() {
        let ledger = Ledger::new(20);
        assert!(ledger.charge("k", "h1", &[debit("create_music", 15, Some("t1"))]));
        assert!(!ledger.charge("k", "h2", &[debit("create_music", 15, Some("t2"))]));
        assert_eq!(ledger.balance("k"), 5);
        assert_eq!(ledger.refund_task("k", "t1"), 15);
        assert_eq!(ledger.refund_task("k", "t1"), 0);
        assert_eq!(ledger.balance("k"), 20);
        assert_eq!(ledger.entries_for_task("k", "t1").len(), 2);
        assert_eq!(ledger.balance("other"), 20);
    }
}
