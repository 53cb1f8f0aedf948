//! The dated price table: how many credits each remote operation costs.
//!
//! The table is data, not code. The built-in one ships in `builtin.yaml`
//! beside this file; a user can replace it (`--prices FILE`) or override
//! single entries (a `prices:` block in a manifest). Both the plan and the
//! sandbox ledger price operations from the same table, so an estimate and
//! a simulated charge can never disagree by construction.
//!
//! Operations are named by their wire identity: the `task_type` for
//! `/sonic/create` (`create_music`, `cover_upload_music`, …) and the endpoint
//! name for the others (`upload`, `stems_full`, `wav`, …).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod class;
mod latency;
pub use class::OpClass;
pub use latency::{LatencyRange, Wait, answered_after_work, expected_latency, typical_latency};

const BUILTIN: &str = include_str!("builtin.yaml");

/// A table older than this many days draws a warning from `plan`.
pub const STALE_AFTER_DAYS: i64 = 90;

/// Names the date `today` stands for (`YYYY-MM-DD`), instead of the
/// system clock's: for reproducible output.
pub const TODAY_ENV: &str = "SONICFLOW_TODAY";

/// Every operation the table must price, in a stable order.
pub const OPERATIONS: &[&str] = &[
    "create_music",
    "extend_music",
    "extend_upload_music",
    "cover_music",
    "cover_upload_music",
    "persona_music",
    "concat_music",
    "remaster",
    "add_instrumental",
    "add_vocals",
    "upload_extend",
    "upload_cover",
    "upload",
    "persona",
    "create_voice",
    "sample",
    "mashup",
    "replace_section",
    "bpm",
    "vox",
    "upsample_tags",
    "aligned_lyrics",
    "midi",
    "wav",
    "stems_basic",
    "stems_full",
    "lyrics",
];

/// A price table as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceTableSpec {
    name: String,
    date: String,
    source: String,
    prices: BTreeMap<String, u64>,
    #[serde(default)]
    earlier: Vec<EarlierRead>,
}

/// An older reading of some prices that differed from the table's: kept so
/// the spread is visible, never used to price anything.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EarlierRead {
    pub date: String,
    pub source: String,
    pub prices: BTreeMap<String, u64>,
}

/// A validated, complete price table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Short name of the table (`live-read` for the built-in one).
    pub name: String,
    /// The date the prices were read or decided, `YYYY-MM-DD`.
    pub date: String,
    /// Where the prices come from.
    pub source: String,
    /// Names of the operations whose price was overridden, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
    /// Credits per operation.
    pub prices: BTreeMap<String, u64>,
    /// Older readings where they differed, newest first; informational.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<EarlierRead>,
}

/// Why a price table could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PriceError {
    #[error("price table `{origin}` is not valid YAML of the expected shape: {detail}")]
    Malformed { origin: String, detail: String },
    #[error("price table `{origin}` names unknown operation `{operation}`")]
    UnknownOperation { origin: String, operation: String },
    #[error("price table `{origin}` has no price for `{operation}`")]
    MissingOperation { origin: String, operation: String },
}

impl PriceError {
    /// The fix to show on a `help:` line.
    pub fn help(&self) -> String {
        match self {
            PriceError::Malformed { .. } => {
                "a price table has the keys `name`, `date`, `source` and `prices` (operation: credits)"
                    .to_owned()
            }
            PriceError::UnknownOperation { operation, .. } => {
                match crate::suggest::did_you_mean(operation, OPERATIONS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known operations: {}", OPERATIONS.join(", ")),
                }
            }
            PriceError::MissingOperation { operation, .. } => {
                format!("add `{operation}: <credits>` under `prices:`")
            }
        }
    }
}

impl PriceTable {
    /// The table compiled into sonicflow.
    pub fn builtin() -> PriceTable {
        match PriceTable::from_yaml(BUILTIN, "built-in") {
            Ok(table) => table,
            // The built-in table is checked by a unit test; reaching this is a build defect.
            Err(e) => panic!("the built-in price table is invalid: {e}"),
        }
    }

    /// Reads a complete table from YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<PriceTable, PriceError> {
        let spec: PriceTableSpec =
            serde_yaml::from_str(text).map_err(|e| PriceError::Malformed {
                origin: origin.to_owned(),
                detail: e.to_string(),
            })?;
        check_names(spec.prices.keys(), origin)?;
        for read in &spec.earlier {
            check_names(read.prices.keys(), origin)?;
        }
        if let Some(missing) = OPERATIONS.iter().find(|op| !spec.prices.contains_key(**op)) {
            return Err(PriceError::MissingOperation {
                origin: origin.to_owned(),
                operation: (*missing).to_owned(),
            });
        }
        Ok(PriceTable {
            name: spec.name,
            date: spec.date,
            source: spec.source,
            overridden: Vec::new(),
            prices: spec.prices,
            earlier: spec.earlier,
        })
    }

    /// A copy of this table with some entries replaced.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, u64>,
        origin: &str,
    ) -> Result<PriceTable, PriceError> {
        check_names(overrides.keys(), origin)?;
        let mut table = self.clone();
        for (op, credits) in overrides {
            table.prices.insert(op.clone(), *credits);
            if !table.overridden.contains(op) {
                table.overridden.push(op.clone());
            }
        }
        table.overridden.sort();
        Ok(table)
    }

    /// Credits for one submit of `operation`; `None` for an unknown name.
    pub fn price(&self, operation: &str) -> Option<u64> {
        self.prices.get(operation).copied()
    }

    /// A short identity of the table's contents, stable across runs:
    /// `name@date` plus a digest of every entry, so two tables with the same
    /// name but different prices never compare equal.
    pub fn version(&self) -> String {
        let mut hasher = Sha256::new();
        for (op, credits) in &self.prices {
            hasher.update(op.as_bytes());
            hasher.update(b"=");
            hasher.update(credits.to_string().as_bytes());
            hasher.update(b"\n");
        }
        let digest = hex::encode(hasher.finalize());
        format!("{}@{}#{}", self.name, self.date, &digest[..12])
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date; `None` if it is not one.
pub fn day_number(date: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs / 86_400).ok()
}

/// Today, `YYYY-MM-DD`: `SONICFLOW_TODAY` if set, else the system clock's (UTC).
pub fn today() -> Result<String, String> {
    match std::env::var(TODAY_ENV) {
        Ok(date) if day_number(&date).is_some() => Ok(date),
        Ok(date) => Err(format!(
            "`{TODAY_ENV}` is `{date}`, not a date; write it as YYYY-MM-DD, e.g. 2026-12-01"
        )),
        Err(_) => Ok(clock_today()),
    }
}

/// Today by the system clock (UTC), `YYYY-MM-DD`.
pub fn clock_today() -> String {
    let now = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    now.get(..10).unwrap_or_default().to_owned()
}

/// How old a table is on `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Age {
    pub days: i64,
    /// Older than [`STALE_AFTER_DAYS`].
    pub stale: bool,
}

impl PriceTable {
    /// The table's age on `today`; `None` when its date is not `YYYY-MM-DD`.
    pub fn age(&self, today: &str) -> Option<Age> {
        let days = day_number(today)? - day_number(&self.date)?;
        Some(Age {
            days,
            stale: days > STALE_AFTER_DAYS,
        })
    }

    /// The line saying how old the table is, and past the threshold the
    /// warning that follows it.
    pub fn age_lines(&self, today: &str) -> Vec<String> {
        let Some(age) = self.age(today) else {
            return vec![format!(
                "price table age: unknown (its date `{}` is not YYYY-MM-DD)",
                self.date
            )];
        };
        let day = if age.days == 1 { "day" } else { "days" };
        let mut lines = vec![format!(
            "price table age: {} {day} (dated {}, today {today})",
            age.days, self.date
        )];
        if age.stale {
            lines.push(format!(
                "warning: the price table is {} days old, over {STALE_AFTER_DAYS}; the service changes its prices: make a newer table from what runs were charged with `sonicflow prices learn RUN_DIR -o prices.yaml` and plan with `--prices prices.yaml`",
                age.days
            ));
        }
        lines
    }
}

impl fmt::Display for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}; {})", self.name, self.date, self.source)?;
        if !self.overridden.is_empty() {
            write!(f, ", overridden: {}", self.overridden.join(", "))?;
        }
        Ok(())
    }
}

fn check_names<'a>(
    names: impl Iterator<Item = &'a String>,
    origin: &str,
) -> Result<(), PriceError> {
    for name in names {
        if !OPERATIONS.contains(&name.as_str()) {
            return Err(PriceError::UnknownOperation {
                origin: origin.to_owned(),
                operation: name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_prices_every_operation_as_last_read_live() {
        let table = PriceTable::builtin();
        assert_eq!(table.prices.len(), OPERATIONS.len());
        assert_eq!(table.price("create_music"), Some(20));
        assert_eq!(table.price("remaster"), Some(15));
        assert_eq!(table.price("stems_basic"), Some(30));
        assert_eq!(table.price("wav"), Some(2));
        assert_eq!(table.price("stems_full"), Some(75));
        assert_eq!(table.price("concat_music"), Some(2));
        assert_eq!(table.price("nope"), None);
        assert_eq!(table.date, "2026-10-07");
        let earlier = &table.earlier[0];
        assert_eq!(earlier.date, "2026-07-15");
        assert_eq!(earlier.prices.get("create_music"), Some(&15));
        assert_eq!(earlier.prices.get("wav"), Some(&1));
    }

    #[test]
    fn overrides_change_version_and_are_listed() {
        let base = PriceTable::builtin();
        let mut o = BTreeMap::new();
        o.insert("create_music".to_owned(), 25);
        let t = base.with_overrides(&o, "manifest").unwrap();
        assert_eq!(t.price("create_music"), Some(25));
        assert_eq!(t.overridden, vec!["create_music"]);
        assert_ne!(t.version(), base.version());
        assert!(t.to_string().contains("overridden: create_music"));
    }

    #[test]
    fn unknown_and_missing_operations_are_rejected_with_help() {
        let mut o = BTreeMap::new();
        o.insert("create_musik".to_owned(), 20);
        let err = PriceTable::builtin().with_overrides(&o, "x").unwrap_err();
        assert_eq!(err.help(), "did you mean `create_music`?");
        let err = PriceTable::from_yaml("name: a\ndate: b\nsource: c\nprices: {upload: 1}\n", "f")
            .unwrap_err();
        assert!(matches!(err, PriceError::MissingOperation { .. }));
        let err = PriceTable::from_yaml("name: [", "f").unwrap_err();
        assert!(matches!(err, PriceError::Malformed { .. }));
    }
}
