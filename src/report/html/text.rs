//! Numbers and lengths as a person reads them on the page.

use serde_json::Value;

/// A clip's length in seconds, given as a number or a numeric string.
pub(crate) fn seconds(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s: &f64| s.is_finite() && *s >= 0.0)
}

/// `m:ss` of a clip's length.
pub(crate) fn clock_text(seconds: f64) -> String {
    let total = seconds.round() as u64;
    format!("{}:{:02}", total / 60, total % 60)
}

/// A run's or a task's length: `850 ms`, `4.2 s`, `3 min 05 s`, `2 h 01 min`.
pub(crate) fn duration_text(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, ms / 60_000 % 60),
    }
}

pub(crate) fn number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_as_a_person_writes_them() {
        assert_eq!(clock_text(85.41), "1:25");
        assert_eq!(clock_text(9.6), "0:10");
        assert_eq!(duration_text(850), "850 ms");
        assert_eq!(duration_text(4_240), "4.2 s");
        assert_eq!(duration_text(185_000), "3 min 05 s");
        assert_eq!(duration_text(7_260_000), "2 h 01 min");
    }
}
