//! The run's credits: what it was charged, what came back, what is reserved
//! by submits still waiting for an answer, and whether the next submit
//! would cross the cap.

use super::StopReason;

/// Credits of one run. A submit reserves its price before it leaves and
/// settles the reservation when its answer comes; the cap is checked
/// against everything charged or reserved, net of refunds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    cap: Option<u64>,
    charged: u64,
    refunded: u64,
    reserved: u64,
}

impl Budget {
    pub(crate) fn new(cap: Option<u64>) -> Budget {
        Budget {
            cap,
            ..Budget::default()
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

    /// `credits` count as spent by this run: an accepted submit, a send in
    /// doubt, or this run's own earlier charge taken up on resume.
    pub(crate) fn charge(&mut self, credits: u64) {
        self.charged += credits;
    }

    /// The service gave `credits` back (a failed task).
    pub(crate) fn refund(&mut self, credits: u64) {
        self.refunded += credits;
    }

    pub(crate) fn charged(&self) -> u64 {
        self.charged
    }

    pub(crate) fn refunded(&self) -> u64 {
        self.refunded
    }

    /// Charged and not refunded, plus what submits awaiting an answer reserved.
    pub(crate) fn committed(&self) -> u64 {
        (self.charged + self.reserved).saturating_sub(self.refunded)
    }

    /// Why sending `instance`, at `needs` credits, would cross the cap, if it would.
    pub(crate) fn would_cross(&self, instance: &str, needs: u64) -> Option<StopReason> {
        let cap = self.cap?;
        let committed = self.committed();
        (committed + needs > cap).then(|| StopReason::Budget {
            instance: instance.to_owned(),
            needs,
            committed,
            cap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_against_the_cap_until_settled_and_refunds_give_room_back() {
        let mut b = Budget::new(Some(40));
        b.reserve(15);
        b.reserve(15);
        assert_eq!(b.committed(), 30);
        assert!(b.would_cross("a", 10).is_none(), "40 is not over 40");
        let over = b.would_cross("song", 15);
        assert_eq!(
            over,
            Some(StopReason::Budget {
                instance: "song".into(),
                needs: 15,
                committed: 30,
                cap: 40
            })
        );
        // One answer is charged, the other is refused: only the charge stays.
        b.settle(15);
        b.charge(15);
        b.settle(15);
        assert_eq!(b.committed(), 15);
        b.refund(15);
        assert_eq!((b.charged(), b.refunded(), b.committed()), (15, 15, 0));
        assert!(Budget::new(None).would_cross("x", u64::MAX / 2).is_none());
    }
}
