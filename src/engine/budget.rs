//! The run's credits: what it was charged, what came back, what is in
//! doubt, what is reserved by submits still waiting for an answer, and
//! whether the next submit would cross the cap.

use serde::{Deserialize, Serialize};

use super::StopReason;

/// A run's credits, over its first process and every resume. Every view of
/// a run's cost (live view, summary, `results.json`, `status`, the journal's
/// closing line) shows these same four numbers.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Every credit the service took or may have taken: accepted submits
    /// (a synchronous call whose file could not be saved included) and
    /// sends whose answer never came.
    pub charged: u64,
    /// Credits given back (a failed task is refunded).
    pub refunded: u64,
    /// The part of `charged` sent with no answer recorded: it may not have
    /// been charged, and is counted as if it was.
    pub in_doubt: u64,
    /// `charged - refunded`: what the run cost, at most.
    pub net: u64,
}

impl Account {
    /// A submit the service accepted, at `credits`.
    pub fn charge(&mut self, credits: u64) {
        self.charged += credits;
        self.recount();
    }

    /// A submit sent at `credits` whose answer never came.
    pub fn doubt(&mut self, credits: u64) {
        self.charged += credits;
        self.in_doubt += credits;
        self.recount();
    }

    /// The service gave `credits` back.
    pub fn refund(&mut self, credits: u64) {
        self.refunded += credits;
        self.recount();
    }

    fn recount(&mut self) {
        self.net = self.charged.saturating_sub(self.refunded);
    }
}

/// `45 credits net`, or `60 credits charged (15 in doubt), 15 refunded,
/// 45 net`: how the live view, the summary and `status` say it.
impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.refunded == 0 && self.in_doubt == 0 {
            return write!(f, "{} net", crate::format::credits(self.net));
        }
        write!(f, "{} charged", crate::format::credits(self.charged))?;
        if self.in_doubt > 0 {
            write!(f, " ({} in doubt)", self.in_doubt)?;
        }
        write!(f, ", {} refunded, {} net", self.refunded, self.net)
    }
}

/// Whether a run that has spent `spent` and plans to spend `to_spend` more
/// goes past `cap`: `plan` calls it over budget, `run` refuses to start
/// (unless it may stop part way).
pub fn over_cap(cap: u64, spent: u64, to_spend: u64) -> bool {
    spent.saturating_add(to_spend) > cap
}

/// Credits of one run. A submit reserves its price before it leaves and
/// settles the reservation when its answer comes; the cap is checked
/// against everything charged or reserved, net of refunds, since the run
/// began (a resume starts from what its journal says was charged).
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    cap: Option<u64>,
    account: Account,
    reserved: u64,
}

impl Budget {
    /// A budget capped at `cap`, of a run that has already spent `earlier`.
    pub(crate) fn new(cap: Option<u64>, earlier: Account) -> Budget {
        Budget {
            cap,
            account: earlier,
            reserved: 0,
        }
    }

    /// A submit costing `credits` is about to be sent.
    pub(crate) fn reserve(&mut self, credits: u64) {
        self.reserved += credits;
    }

    /// The answer to a submit that reserved `credits` came (charged or not).
    pub(crate) fn settle(&mut self, credits: u64) {
        self.reserved = self.reserved.saturating_sub(credits);
    }

    /// An accepted submit of this process.
    pub(crate) fn charge(&mut self, credits: u64) {
        self.account.charge(credits);
    }

    /// A send of this process whose answer was lost.
    pub(crate) fn doubt(&mut self, credits: u64) {
        self.account.doubt(credits);
    }

    /// The service gave `credits` back (a failed task).
    pub(crate) fn refund(&mut self, credits: u64) {
        self.account.refund(credits);
    }

    pub(crate) fn account(&self) -> Account {
        self.account
    }

    /// Charged and not refunded, plus what submits awaiting an answer reserved.
    pub(crate) fn committed(&self) -> u64 {
        self.account.net + self.reserved
    }

    /// Why sending `instance`, at `needs` credits, would cross the cap, if
    /// it would whatever the answers to the submits in flight turn out to
    /// be. `Err(())` when it would cross only if a reservation still in
    /// flight is charged: the caller waits for that answer.
    pub(crate) fn would_cross(&self, instance: &str, needs: u64) -> Result<Option<StopReason>, ()> {
        let Some(cap) = self.cap else {
            return Ok(None);
        };
        let spent = self.account.net;
        if spent + needs > cap {
            return Ok(Some(StopReason::Budget {
                instance: instance.to_owned(),
                needs,
                committed: spent,
                cap,
            }));
        }
        if self.committed() + needs > cap {
            return Err(());
        }
        Ok(None)
    }

    /// Why sending `instance` at `needs` would cross the cap counting what
    /// is reserved too (when no answer in flight can settle it).
    pub(crate) fn over(&self, instance: &str, needs: u64) -> StopReason {
        StopReason::Budget {
            instance: instance.to_owned(),
            needs,
            committed: self.committed(),
            cap: self.cap.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_waits_for_reservations_and_stops_only_on_what_is_spent() {
        let mut b = Budget::new(Some(40), Account::default());
        b.reserve(15);
        b.reserve(15);
        assert_eq!(b.committed(), 30);
        assert_eq!(b.would_cross("a", 10), Ok(None), "40 is not over 40");
        assert_eq!(
            b.would_cross("song", 15),
            Err(()),
            "over only if both answers are charged: wait for them"
        );
        // One answer is charged, the other is refused (a 429): the song fits.
        b.settle(15);
        b.charge(15);
        b.settle(15);
        assert_eq!(b.would_cross("song", 15), Ok(None));
        b.charge(15);
        assert_eq!(
            b.would_cross("song", 15),
            Ok(Some(StopReason::Budget {
                instance: "song".into(),
                needs: 15,
                committed: 30,
                cap: 40
            }))
        );
        b.refund(15);
        let a = b.account();
        assert_eq!((a.charged, a.refunded, a.in_doubt, a.net), (30, 15, 0, 15));
        assert_eq!(
            Budget::new(None, Account::default()).would_cross("x", u64::MAX / 2),
            Ok(None)
        );
    }

    #[test]
    fn what_a_resumed_run_spent_before_counts_against_the_cap() {
        let mut earlier = Account::default();
        earlier.charge(15);
        earlier.doubt(15);
        let b = Budget::new(Some(30), earlier);
        assert_eq!(b.account().in_doubt, 15);
        assert!(matches!(b.would_cross("wav", 2), Ok(Some(_))));
    }
}
