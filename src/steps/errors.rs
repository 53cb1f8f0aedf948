//! Client failures as the engine must treat them.
//!
//! The one rule that matters most: a submit that may have been charged is
//! `InDoubt`, never `Transient`, because resending a paid request whose
//! outcome is unknown could pay twice. Polls are free and idempotent, so
//! their transport and decode failures are simply transient.
//!
//! The client never puts the API key in an error, and nothing here adds it.

use crate::api::{ApiError, ErrorClass};
use crate::engine::{ErrorKind, StepError};

/// A failed submit.
pub(crate) fn from_submit(err: &ApiError) -> StepError {
    if err.may_have_been_charged() {
        let mut e = StepError::new(
            ErrorKind::InDoubt,
            format!(
                "{err}; it may have been accepted and charged, so it must not be resent without checking"
            ),
        );
        e.charged = true;
        return e;
    }
    let kind = match err.class() {
        ErrorClass::Invalid => ErrorKind::Invalid,
        ErrorClass::Unauthorised => ErrorKind::Unauthorised,
        ErrorClass::OutOfCredits => ErrorKind::OutOfCredits,
        ErrorClass::Moderation => ErrorKind::Moderation,
        ErrorClass::RateLimited => ErrorKind::RateLimited,
        ErrorClass::Transient => ErrorKind::Transient,
        // Both are covered by `may_have_been_charged` for submits (every
        // submit is a POST); a free call that fails this way changed nothing.
        ErrorClass::InDoubt | ErrorClass::Decode => ErrorKind::Transient,
    };
    with_retry_after(StepError::new(kind, err.to_string()), err)
}

/// A failed poll.
pub(crate) fn from_poll(err: &ApiError) -> StepError {
    let kind = match err.class() {
        ErrorClass::Invalid => ErrorKind::Invalid,
        ErrorClass::Unauthorised => ErrorKind::Unauthorised,
        ErrorClass::OutOfCredits => ErrorKind::OutOfCredits,
        ErrorClass::Moderation => ErrorKind::Moderation,
        ErrorClass::RateLimited => ErrorKind::RateLimited,
        ErrorClass::Transient | ErrorClass::InDoubt | ErrorClass::Decode => ErrorKind::Transient,
    };
    let mut e = with_retry_after(StepError::new(kind, err.to_string()), err);
    e.charged = false;
    e
}

fn with_retry_after(mut e: StepError, err: &ApiError) -> StepError {
    e.retry_after = err.retry_after();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn decode(endpoint: &str) -> ApiError {
        ApiError::Decode {
            endpoint: endpoint.to_owned(),
            path: ".".to_owned(),
            message: "eof".to_owned(),
            body: "{".to_owned(),
        }
    }

    #[test]
    fn undecodable_or_dropped_submits_are_in_doubt_and_charged() {
        for err in [
            decode("POST /api/v1/sonic/create"),
            ApiError::InDoubt {
                endpoint: "POST /api/v1/sonic/create".into(),
                message: "reset".into(),
            },
        ] {
            let e = from_submit(&err);
            assert_eq!(e.kind, ErrorKind::InDoubt);
            assert!(e.charged);
            assert!(!e.kind.may_resend());
        }
    }

    #[test]
    fn poll_decode_failures_are_transient_and_uncharged() {
        let e = from_poll(&decode("GET /api/v1/sonic/task"));
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(!e.charged);
    }

    #[test]
    fn rate_limits_keep_retry_after() {
        let err = ApiError::RateLimited {
            endpoint: "POST /x".into(),
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into(),
        };
        let e = from_submit(&err);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
        assert!(!e.charged);
    }
}
