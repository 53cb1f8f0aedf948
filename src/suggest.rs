//! The one did-you-mean helper, used for every kind of name: step ids,
//! output fields, actions, keys, models, matrix columns, price entries.

/// The closest candidate to `name`, if one is close enough to be a likely typo.
///
/// Closeness is Jaro-Winkler similarity (good at transpositions and shared
/// prefixes, the common typos in identifiers) with a single threshold, plus a
/// case-insensitive exact match, which always wins.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    const THRESHOLD: f64 = 0.8;
    let lower = name.to_lowercase();
    let mut best: Option<(&'a str, f64)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let score = if candidate.to_lowercase() == lower {
            2.0
        } else {
            strsim::jaro_winkler(name, candidate)
        };
        if score >= THRESHOLD && best.is_none_or(|(_, s)| score > s) {
            best = Some((candidate, score));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_close_names_only() {
        let names = ["upload", "jazz", "stems", "clip_id", "clips"];
        for (typo, want) in [
            ("uplaod", Some("upload")),
            ("stem", Some("stems")),
            ("clip_di", Some("clip_id")),
            ("JAZZ", Some("jazz")),
            ("zzzzzz", None),
            ("", None),
        ] {
            assert_eq!(did_you_mean(typo, names), want, "typo `{typo}`");
        }
    }
}
