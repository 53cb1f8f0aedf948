//! The run-wide pace limits and the rule each obeys. Two doors set them —
//! the `limits:` block of a manifest and the flags of `sonicflow run` — and
//! both go through [`Pace::check`], so a value one refuses the other refuses too.

/// Pace limits given on the command line, each overriding its `limits:` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceFlags {
    pub max_in_flight: Option<u32>,
    pub submits_per_minute: Option<u32>,
    pub quick_calls_per_minute: Option<u32>,
    pub polls_per_second: Option<u32>,
}

/// One of the run-wide pace limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    MaxInFlight,
    /// Generation submits (see [`crate::prices::OpClass`]).
    SubmitsPerMinute,
    /// Quick paid calls.
    QuickCallsPerMinute,
    PollsPerSecond,
}

/// Where a pace value was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    /// Under `limits:` in the manifest.
    Manifest,
    /// As a flag of `sonicflow run`.
    Flag,
}

/// Why a pace value is refused, in the words of the door it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) message: String,
    pub(crate) help: String,
}

impl Pace {
    /// The key under `limits:`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Pace::MaxInFlight => "max_in_flight",
            Pace::SubmitsPerMinute => "submits_per_minute",
            Pace::QuickCallsPerMinute => "quick_calls_per_minute",
            Pace::PollsPerSecond => "polls_per_second",
        }
    }

    /// The flag of `sonicflow run` that overrides the key.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Pace::MaxInFlight => "--max-in-flight",
            Pace::SubmitsPerMinute => "--submits-per-minute",
            Pace::QuickCallsPerMinute => "--quick-calls-per-minute",
            Pace::PollsPerSecond => "--polls-per-second",
        }
    }

    /// The value when neither door gives one. 20 a minute is the service's
    /// one generation submit per 3 s. Nothing documented limits quick calls;
    /// one a second (three times the generation pace) keeps a batch of
    /// exports from arriving all at once without making them the
    /// bottleneck, and a run that meets a service whose slot is shared by
    /// every paid call learns that from its 429s.
    pub(crate) fn default_value(self) -> u32 {
        match self {
            Pace::MaxInFlight => 8,
            Pace::SubmitsPerMinute => 20,
            Pace::QuickCallsPerMinute => 60,
            Pace::PollsPerSecond => 5,
        }
    }

    /// The rule of every door: at least 1. With no room in flight nothing
    /// would ever be submitted, and the engine reads a quota of zero as no
    /// pacing at all, which is the opposite of what zero seems to ask.
    pub(crate) fn check(self, value: u32, door: Door) -> Result<u32, Refused> {
        if value >= 1 {
            return Ok(value);
        }
        Err(match door {
            Door::Manifest => Refused {
                message: format!("`limits.{}` must be at least 1", self.key()),
                help: "use a positive number, or remove it for the default".to_owned(),
            },
            Door::Flag => Refused {
                message: format!("`{}` must be at least 1", self.flag()),
                help: format!(
                    "use a positive number, or leave the flag out for `limits.{}` (default {})",
                    self.key(),
                    self.default_value()
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Limits, Options, build};

    #[test]
    fn a_flag_wins_over_its_key_and_is_checked_even_where_the_key_is_fine() {
        let yaml = "version: 1\nname: t\nlimits: { max_in_flight: 3, polls_per_second: 2 }\nsteps:\n  s:\n    action: create\n    with: { mv: sonic-v5, custom_mode: false, gpt_description_prompt: x }\n";
        let loaded =
            crate::manifest::load::load_str("t.yaml", yaml.to_owned(), std::path::Path::new("."))
                .unwrap();
        let with = |pace| Options {
            pace,
            ..Options::default()
        };
        let flags = PaceFlags {
            max_in_flight: Some(5),
            ..PaceFlags::default()
        };
        let plan = build(&loaded, &with(flags)).unwrap();
        let expected = Limits {
            max_in_flight: 5,
            submits_per_minute: 20,
            quick_calls_per_minute: 60,
            polls_per_second: 2,
        };
        assert_eq!(plan.limits, expected);
        let flags = PaceFlags {
            max_in_flight: Some(0),
            ..PaceFlags::default()
        };
        let diags = build(&loaded, &with(flags)).unwrap_err();
        let at: Vec<(&str, &str)> = diags
            .iter()
            .map(|d| (d.source.name.as_str(), d.message.as_str()))
            .collect();
        assert_eq!(
            at,
            [("--max-in-flight", "`--max-in-flight` must be at least 1")]
        );
    }

    #[test]
    fn both_doors_refuse_zero_and_take_anything_else() {
        for pace in [
            Pace::MaxInFlight,
            Pace::SubmitsPerMinute,
            Pace::QuickCallsPerMinute,
            Pace::PollsPerSecond,
        ] {
            for door in [Door::Manifest, Door::Flag] {
                assert_eq!(pace.check(1, door), Ok(1));
                assert_eq!(pace.check(u32::MAX, door), Ok(u32::MAX));
                let refused = pace.check(0, door).unwrap_err();
                assert!(
                    refused.message.ends_with("must be at least 1"),
                    "{refused:?}"
                );
            }
        }
        let refused = Pace::SubmitsPerMinute.check(0, Door::Flag).unwrap_err();
        assert_eq!(refused.message, "`--submits-per-minute` must be at least 1");
        assert_eq!(
            refused.help,
            "use a positive number, or leave the flag out for `limits.submits_per_minute` (default 20)"
        );
        let refused = Pace::QuickCallsPerMinute
            .check(0, Door::Manifest)
            .unwrap_err();
        assert_eq!(
            refused.message,
            "`limits.quick_calls_per_minute` must be at least 1"
        );
    }
}
