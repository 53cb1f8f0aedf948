//! Safe local names from remote text: a clip id, a title, a matrix key or
//! an instance name becomes a path component that cannot climb out of, or hide in, the
//! output folder.
//!
//! Rules: only `[A-Za-z0-9._-]` survive (anything else becomes `_`), no
//! leading dot (so never `.`, `..` or a hidden file), at most
//! [`COMPONENT_MAX`] characters, never empty.

use std::path::Path;

/// Longest component kept; leaves room for an extension and `.part`.
pub(crate) const COMPONENT_MAX: usize = 96;

/// One path component.
pub(crate) fn component(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(COMPONENT_MAX)
        .collect();
    let dots = out.len() - out.trim_start_matches('.').len();
    out.replace_range(..dots, &"_".repeat(dots));
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Whether `rel`, a file path as results and journals record it, names a
/// file inside its folder: relative, made of plain components only (no
/// `..`, no root, no drive), never empty.
pub(crate) fn stays_inside(rel: &str) -> bool {
    let path = Path::new(rel);
    !rel.is_empty()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// `relative` with `/` separators, as recorded in results.
pub(crate) fn slash_path(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    #[test]
    fn hostile_names_stay_single_plain_components() {
        assert_eq!(component("../../etc/passwd"), "___.._etc_passwd");
        assert_eq!(component(".."), "__");
        assert_eq!(component(""), "_");
        assert_eq!(component(".hidden"), "_hidden");
        assert_eq!(component("ok-id_1.mp3"), "ok-id_1.mp3");
    }

    #[test]
    fn recorded_paths_that_climb_out_are_told_apart() {
        for inside in ["a.mp3", "row/song/a.mp3", "row/./a.mp3"] {
            assert!(stays_inside(inside), "{inside}");
        }
        for outside in ["", "../a", "row/../../a", "/etc/passwd", "."] {
            assert!(!stays_inside(outside), "{outside}");
        }
    }

    proptest! {
        #[test]
        fn any_text_becomes_one_safe_component(raw in any::<String>()) {
            let c = component(&raw);
            prop_assert!(!c.is_empty() && c.len() <= COMPONENT_MAX);
            prop_assert!(!c.starts_with('.'));
            prop_assert!(c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')));
            let parts: Vec<_> = Path::new(&c).components().collect();
            prop_assert_eq!(parts.len(), 1);
            prop_assert!(matches!(parts[0], Component::Normal(_)));
        }
    }
}
