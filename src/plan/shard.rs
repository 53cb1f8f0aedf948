//! `--shard K/N`: which matrix rows one of N processes sharing a run takes.
//!
//! A row belongs to shard `1 + fnv1a64(key) % N`, by its matrix key, never
//! by its position: adding rows moves no other row to another shard.

use std::fmt;

pub use crate::journal::Shard;

/// The most shards a run may be split into.
pub const MAX_SHARDS: u32 = 1000;

impl Shard {
    /// Reads `K/N` (1 ≤ K ≤ N ≤ 1000); the error says what is wrong and
    /// what would do.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let usage = "write `--shard K/N` with 1 ≤ K ≤ N, for example `--shard 1/4`";
        let Some((k, n)) = text.split_once('/') else {
            return Err(format!("`{text}` is not a shard: {usage}"));
        };
        let number = |part: &str, what: &str| -> Result<u32, String> {
            part.trim().parse::<u32>().map_err(|_| {
                format!("`{text}`: the {what} `{part}` is not a whole number; {usage}")
            })
        };
        let (index, count) = (number(k, "shard number")?, number(n, "shard count")?);
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "`{text}`: the shard count must be between 1 and {MAX_SHARDS}; {usage}"
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "`{text}`: shard {index} does not exist among {count} (they are numbered 1 to {count}); {usage}"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard (1-based, of `count`) the matrix row with `key` belongs to.
    pub fn of_key(key: &str, count: u32) -> u32 {
        1 + u32::try_from(fnv1a64(key.as_bytes()) % u64::from(count.max(1))).unwrap_or(0)
    }

    /// Whether the matrix row with `key` is this shard's.
    pub fn owns(&self, key: &str) -> bool {
        Shard::of_key(key, self.count) == self.index
    }

    /// `K` zero-padded to the width of `N`, as folder and lock names carry it.
    pub fn padded_index(&self) -> String {
        let width = self.count.to_string().len();
        format!("{:0width$}", self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// For clap: `--shard K/N`.
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text)
}

/// 64-bit FNV-1a: small, stable across platforms and releases.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_with_the_reason() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(Shard::parse("1/1"), Ok(Shard { index: 1, count: 1 }));
        for (bad, says) in [
            ("0/3", "does not exist among 3"),
            ("3/2", "does not exist among 2"),
            ("a/b", "`a` is not a whole number"),
            ("1/b", "`b` is not a whole number"),
            ("3", "is not a shard"),
            ("1/0", "between 1 and 1000"),
            ("1/1001", "between 1 and 1000"),
        ] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.contains(says) && e.contains("--shard K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn rows_spread_over_every_shard_by_a_fixed_hash() {
        // The known FNV-1a vectors: the rule must not drift between releases.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let keys: Vec<String> = (0..50).map(|i| format!("row-{i}")).collect();
        let before: Vec<u32> = keys.iter().map(|k| Shard::of_key(k, 4)).collect();
        assert!(before.iter().all(|s| (1..=4).contains(s)));
        // Every shard of four gets some of fifty rows.
        for s in 1..=4 {
            assert!(before.contains(&s), "shard {s} got nothing");
        }
    }

    #[test]
    fn padded_to_the_width_of_the_count() {
        assert_eq!(
            Shard {
                index: 3,
                count: 12
            }
            .padded_index(),
            "03"
        );
        assert_eq!(Shard { index: 3, count: 9 }.padded_index(), "3");
    }
}
