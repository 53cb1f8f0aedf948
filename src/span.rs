//! Where in a source text: byte ranges with the line and column a person
//! reads. The YAML tree, the matrix reader, the plan and the diagnostics
//! renderer all speak of positions in these terms. A leaf: it imports no
//! module of the crate, so `diag` can use it without reaching up into
//! `manifest`.

/// A byte range in one source text, with the 1-based line and column of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub col: u32,
}

impl Span {
    /// A span covering `len` bytes from `offset`, with its line and column computed from `src`.
    pub fn locate(src: &str, offset: usize, len: usize) -> Span {
        let offset = offset.min(src.len());
        let before = &src[..floor_char_boundary(src, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        let end = floor_char_boundary(src, (offset + len).min(src.len()));
        Span {
            start: offset,
            end: end.max(offset),
            line: line as u32,
            col: col as u32,
        }
    }

    /// A sub-span of `self` at byte `offset` within it, `len` bytes long, clamped to `self`.
    /// Used to point into a string scalar, e.g. at one reference inside `${{ … }}`.
    pub fn within(&self, src: &str, offset: usize, len: usize) -> Span {
        let start = (self.start + offset).min(self.end.max(self.start));
        let len = len.min(self.end.saturating_sub(start)).max(1);
        Span::locate(src, start, len)
    }
}

/// Start offsets of every line of a text, for turning byte offsets into
/// line and column without rescanning the text each time.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// In ASCII text a column is a byte count, found without rescanning the
    /// line: one long line with many values stays linear to read.
    ascii: bool,
}

impl LineIndex {
    pub fn new(src: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex {
            starts,
            ascii: src.is_ascii(),
        }
    }

    /// Like `Span::locate`, in time logarithmic in the text's length.
    pub fn span(&self, src: &str, offset: usize, len: usize) -> Span {
        let offset = floor_char_boundary(src, offset.min(src.len()));
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let line_start = self.starts[line - 1];
        let col = if self.ascii {
            offset - line_start + 1
        } else {
            src[line_start..offset].chars().count() + 1
        };
        let end = floor_char_boundary(src, (offset + len).min(src.len()));
        Span {
            start: offset,
            end: end.max(offset),
            line: line as u32,
            col: col as u32,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_columns_agree_with_locate_in_ascii_and_not() {
        for src in ["ab: cd\nef: [g, h]\n", "é: ç\nà: [ü, ö]\n"] {
            let index = LineIndex::new(src);
            for (offset, _) in src.char_indices() {
                assert_eq!(
                    index.span(src, offset, 1),
                    Span::locate(src, offset, 1),
                    "{src:?} at {offset}"
                );
            }
        }
    }
}
