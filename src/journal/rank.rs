//! How candidate answers from the past rank against each other. The order
//! is the derived one: fields compare in the order they are declared, so
//! the declarations below are the precedence, and the greater rank wins.

/// What an earlier request offers a new one. Declared worst first, so that
/// a result ranks highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Offer {
    /// A send whose answer never came: the request is not sent again.
    InDoubt,
    /// A task accepted and never followed to the end: it is polled again.
    Task,
    /// A result: taken as it is, and nothing more is paid.
    Result,
}

/// A candidate answer's rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Rank {
    /// From the run's own journal (a resume): what this very run already
    /// did outranks anything another run did.
    pub(super) own_run: bool,
    pub(super) offer: Offer,
    /// For a result: how many of the requests that the instances reading
    /// it would then make have results of their own. Of two results of one
    /// request, the one that keeps what was built on it reusable wins over
    /// a newer one that would make all of that new.
    pub(super) dependents_reused: usize,
    /// Made by the same instance (matrix row and fan-out position), so that
    /// rows repeating one request each take back their own.
    pub(super) same_instance: bool,
    /// Where the candidate came in the search. The sources are read oldest
    /// first, so among equal facts the later, newer one wins.
    pub(super) found: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(own_run: bool, offer: Offer, same_instance: bool, found: usize) -> Rank {
        Rank {
            own_run,
            offer,
            dependents_reused: 0,
            same_instance,
            found,
        }
    }

    #[test]
    fn an_earlier_answer_ranks_by_its_facts_in_order_of_precedence() {
        use Offer::{InDoubt, Result, Task};
        // Best first. Each row was found before the next, so a rank that let
        // the order of finding count before the facts would reverse it.
        let table = [
            ("own run: a result", rank(true, Result, true, 0)),
            ("own run: a task", rank(true, Task, true, 1)),
            ("own run: a send in doubt", rank(true, InDoubt, true, 2)),
            (
                "a result of the same instance",
                rank(false, Result, true, 3),
            ),
            (
                "a result of another instance",
                rank(false, Result, false, 4),
            ),
            ("a task of the same instance", rank(false, Task, true, 5)),
            ("a task of another instance", rank(false, Task, false, 6)),
            (
                "a doubt of the same instance",
                rank(false, InDoubt, true, 7),
            ),
            (
                "a doubt of another instance",
                rank(false, InDoubt, false, 8),
            ),
        ];
        for pair in table.windows(2) {
            let [(better, a), (worse, b)] = pair else {
                continue;
            };
            assert!(a > b, "{better} must outrank {worse}: {a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_result_whose_dependents_are_reusable_outranks_a_newer_one_whose_are_not() {
        let older = Rank {
            dependents_reused: 3,
            ..rank(false, Offer::Result, true, 0)
        };
        let newer = Rank {
            dependents_reused: 1,
            ..rank(false, Offer::Result, true, 1)
        };
        assert!(older > newer);
        // Never over what the run itself did.
        assert!(rank(true, Offer::Result, true, 0) > older);
    }

    #[test]
    fn among_equal_facts_the_one_found_later_wins() {
        let older = rank(false, Offer::Task, false, 0);
        let newer = rank(false, Offer::Task, false, 1);
        assert!(newer > older);
    }
}
