//! Failures of an API call, classified the way the engine acts on them.
//!
//! The class decides the reaction (fail the step, stop the run, wait, retry,
//! mark in doubt); the variant carries what a person needs to understand it.
//! No variant ever holds the API key.

use std::time::Duration;

/// What kind of failure an [`ApiError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 400/404: the request itself is wrong; resending it cannot help.
    Invalid,
    /// 401: the key is missing or refused.
    Unauthorised,
    /// 403 for a short balance or a missing subscription.
    OutOfCredits,
    /// Any other 403: content was refused.
    Moderation,
    /// 429: too many submits.
    RateLimited,
    /// 5xx, or a transport failure where nothing can have been charged.
    Transient,
    /// A transport failure after a paid submit was sent: it may have been
    /// accepted and charged. Never resend blindly.
    InDoubt,
    /// The response arrived but could not be decoded.
    Decode,
}

/// One failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("`{endpoint}` rejected the request ({status}): {message}")]
    Invalid {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("`{endpoint}` refused the API key (401): {message}")]
    Unauthorised { endpoint: String, message: String },
    #[error("`{endpoint}` refused for lack of credits (403): {message}")]
    OutOfCredits { endpoint: String, message: String },
    #[error("`{endpoint}` refused the content (403): {message}")]
    Moderation { endpoint: String, message: String },
    #[error("`{endpoint}` is rate limited (429){}: {message}", retry_after.map(|d| format!(", retry after {}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited {
        endpoint: String,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("`{endpoint}` failed transiently{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Transient {
        endpoint: String,
        status: Option<u16>,
        message: String,
    },
    #[error(
        "`{endpoint}` may or may not have been accepted (the connection failed after the request was sent): {message}"
    )]
    InDoubt { endpoint: String, message: String },
    #[error(
        "`{endpoint}` answered {status} redirecting to {location}; API calls are never followed elsewhere, so set the base URL (`--api-base` or `MUSICAPI_BASE_URL`) to the address that answers"
    )]
    Redirected {
        endpoint: String,
        status: u16,
        /// Where the server pointed, cleaned (or "nowhere").
        location: String,
    },
    #[error("cannot decode the response of `{endpoint}` at `{path}`: {message}; body: {body}")]
    Decode {
        endpoint: String,
        path: String,
        message: String,
        body: String,
    },
}

impl ApiError {
    /// The class the engine reacts to.
    pub fn class(&self) -> ErrorClass {
        match self {
            // The server answered: it did not take the request here, and
            // sending it again to the same address cannot help.
            ApiError::Invalid { .. } | ApiError::Redirected { .. } => ErrorClass::Invalid,
            ApiError::Unauthorised { .. } => ErrorClass::Unauthorised,
            ApiError::OutOfCredits { .. } => ErrorClass::OutOfCredits,
            ApiError::Moderation { .. } => ErrorClass::Moderation,
            ApiError::RateLimited { .. } => ErrorClass::RateLimited,
            ApiError::Transient { .. } => ErrorClass::Transient,
            ApiError::InDoubt { .. } => ErrorClass::InDoubt,
            ApiError::Decode { .. } => ErrorClass::Decode,
        }
    }

    /// Whether sending the same request again later may succeed without
    /// risking a second charge.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.class(),
            ErrorClass::RateLimited | ErrorClass::Transient
        )
    }

    /// Whether the call may have been accepted and charged although it
    /// failed: an in-doubt transport failure, or a paid submit (every POST)
    /// whose 200 answer could not be decoded. Such a request must not be
    /// resent without checking first.
    pub fn may_have_been_charged(&self) -> bool {
        match self {
            ApiError::InDoubt { .. } => true,
            ApiError::Decode { endpoint, .. } => endpoint.starts_with("POST "),
            _ => false,
        }
    }

    /// The server's `Retry-After`, when it sent one with a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, when the failure came with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Invalid { status, .. } | ApiError::Redirected { status, .. } => Some(*status),
            ApiError::Unauthorised { .. } => Some(401),
            ApiError::OutOfCredits { .. } | ApiError::Moderation { .. } => Some(403),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::Transient { status, .. } => *status,
            ApiError::InDoubt { .. } | ApiError::Decode { .. } => None,
        }
    }

    /// The server's message text (or the transport failure).
    pub fn message(&self) -> &str {
        match self {
            ApiError::Invalid { message, .. }
            | ApiError::Unauthorised { message, .. }
            | ApiError::OutOfCredits { message, .. }
            | ApiError::Moderation { message, .. }
            | ApiError::RateLimited { message, .. }
            | ApiError::Transient { message, .. }
            | ApiError::InDoubt { message, .. }
            | ApiError::Decode { message, .. } => message,
            ApiError::Redirected { location, .. } => location,
        }
    }
}

/// Classifies a non-success HTTP status with the message the server sent.
pub(crate) fn from_status(
    endpoint: &str,
    status: u16,
    message: String,
    retry_after: Option<Duration>,
) -> ApiError {
    let endpoint = endpoint.to_owned();
    match status {
        401 => ApiError::Unauthorised { endpoint, message },
        403 if is_credit_refusal(&message) => ApiError::OutOfCredits { endpoint, message },
        403 => ApiError::Moderation { endpoint, message },
        429 => ApiError::RateLimited {
            endpoint,
            retry_after,
            message,
        },
        s if s >= 500 => ApiError::Transient {
            endpoint,
            status: Some(s),
            message,
        },
        s => ApiError::Invalid {
            endpoint,
            status: s,
            message,
        },
    }
}

fn is_credit_refusal(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("remaining credits are not enough") || m.contains("active subscription")
}

/// Classifies a transport failure. `paid` says whether the request could
/// have been charged: then anything but a failure to connect (when nothing
/// was sent) leaves the outcome in doubt.
pub(crate) fn from_transport(endpoint: &str, paid: bool, err: &reqwest::Error) -> ApiError {
    let endpoint = endpoint.to_owned();
    let message = describe_transport(err);
    if paid && !err.is_connect() {
        ApiError::InDoubt { endpoint, message }
    } else {
        ApiError::Transient {
            endpoint,
            status: None,
            message,
        }
    }
}

/// The error and its causes on one line; reqwest's top-level text alone
/// ("error sending request") hides the useful part.
pub(crate) fn describe_transport(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The longest wait a `Retry-After` can ask for: a longer (or unreadable
/// huge) value is cut to this, so a server cannot pause a run for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Parses `Retry-After`, in either form HTTP allows: delay seconds (a
/// fraction is tolerated) or an HTTP date, which counts from now. The result
/// never exceeds [`MAX_RETRY_AFTER`]; a date in the past means no wait;
/// anything unreadable is ignored. This is the one place the header is read.
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    retry_after_at(value?, std::time::SystemTime::now())
}

fn retry_after_at(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        // Digits only: an integer too large for u64 is still "very long".
        value
            .parse::<u64>()
            .map_or(MAX_RETRY_AFTER, Duration::from_secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or_default()
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_classes() {
        let c = |s, m: &str| from_status("/x", s, m.to_owned(), None).class();
        assert_eq!(c(400, "task not found."), ErrorClass::Invalid);
        assert_eq!(c(404, ""), ErrorClass::Invalid);
        assert_eq!(c(401, ""), ErrorClass::Unauthorised);
        assert_eq!(
            c(
                403,
                "The remaining credits are not enough. You can buy more one-time credit packs or subscribe."
            ),
            ErrorClass::OutOfCredits
        );
        assert_eq!(
            c(
                403,
                "You do not have an active subscription. Please check whether your renewal was successful."
            ),
            ErrorClass::OutOfCredits
        );
        assert_eq!(
            c(403, "The song description needs moderation review."),
            ErrorClass::Moderation
        );
        assert_eq!(c(429, ""), ErrorClass::RateLimited);
        assert_eq!(c(504, ""), ErrorClass::Transient);
        assert!(from_status("/x", 500, String::new(), None).is_retryable());
        assert!(!from_status("/x", 400, String::new(), None).is_retryable());
    }

    #[test]
    fn undecodable_submits_and_in_doubt_calls_may_have_been_charged() {
        let decode = |endpoint: &str| ApiError::Decode {
            endpoint: endpoint.to_owned(),
            path: ".".to_owned(),
            message: String::new(),
            body: String::new(),
        };
        assert!(decode("POST /api/v1/sonic/create").may_have_been_charged());
        assert!(!decode("GET /api/v1/get-credits").may_have_been_charged());
        let in_doubt = ApiError::InDoubt {
            endpoint: "POST /x".into(),
            message: String::new(),
        };
        assert!(in_doubt.may_have_been_charged());
        assert!(!from_status("POST /x", 500, String::new(), None).may_have_been_charged());
    }

    #[test]
    fn retry_after_is_read_in_both_forms_and_clamped() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let at = |v: &str| retry_after_at(v, now);
        let secs = |s: u64| Some(Duration::from_secs(s));
        let rows: &[(&str, Option<Duration>)] = &[
            (" 3 ", secs(3)),
            ("0", secs(0)),
            ("1.5", Some(Duration::from_millis(1500))),
            ("600", Some(MAX_RETRY_AFTER)),
            ("601", Some(MAX_RETRY_AFTER)),
            ("1000000000", Some(MAX_RETRY_AFTER)),
            ("10000000000000000000", Some(MAX_RETRY_AFTER)),
            ("100000000000000000000", Some(MAX_RETRY_AFTER)),
            (
                "99999999999999999999999999999999999999",
                Some(MAX_RETRY_AFTER),
            ),
            ("1e19", Some(MAX_RETRY_AFTER)),
            ("1e20", Some(MAX_RETRY_AFTER)),
            ("1e308", Some(MAX_RETRY_AFTER)),
            ("inf", None),
            ("NaN", None),
            ("-5", None),
            ("", None),
            ("soon", None),
            ("Wed, 21 Oct 2015 07:28:30 GMT", secs(30)),
            ("Wed, 21 Oct 2015 07:00:00 GMT", secs(0)),
            ("Fri, 21 Oct 2050 07:28:00 GMT", Some(MAX_RETRY_AFTER)),
        ];
        for (value, want) in rows {
            assert_eq!(at(value), *want, "Retry-After: {value:?}");
        }
        assert_eq!(parse_retry_after(None), None);
        let e = from_status("/x", 429, "slow down".into(), Some(Duration::from_secs(2)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert!(e.to_string().contains("retry after 2s"));
    }
}
