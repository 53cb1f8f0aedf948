//! `x-*` keys: room for the author's own notes and YAML anchors
//! (`x-common: &common {…}`), ignored wherever the manifest has fixed keys
//! (the top level, a step, `with`, `limits`, `retry`, an input, a model, …).
//!
//! Only mappings with fixed keys lose them: mappings whose keys the author
//! names (step ids, input and model names, price keys, matrix rows, literal
//! lists and values) are kept as written, so a step may still be called
//! `x-ray`.

use super::yaml::{Node, NodeKind};

/// Whether `key` is an extension key.
pub fn is_extension(key: &Node) -> bool {
    key.as_str().is_some_and(|k| k.starts_with("x-"))
}

/// What a mapping is, for deciding which of its keys are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The manifest itself.
    Root,
    /// A mapping of names the author chose, each value of shape `.0`.
    Named(Item),
    /// A step.
    Step,
    /// A block of fixed keys: `with`, `limits`, `retry`, `backoff`, `matrix`, an input, a model, …
    Block,
    /// A value: kept whole.
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Step,
    Block,
}

impl Shape {
    fn child(self, key: &str) -> Shape {
        match self {
            Shape::Root => match key {
                "steps" => Shape::Named(Item::Step),
                "inputs" | "models" => Shape::Named(Item::Block),
                "defaults" | "limits" | "retry" | "poll" | "matrix" | "artifacts" => Shape::Block,
                _ => Shape::Data,
            },
            Shape::Named(Item::Step) => Shape::Step,
            Shape::Named(Item::Block) => Shape::Block,
            Shape::Step => match key {
                "with" | "retry" | "poll" => Shape::Block,
                _ => Shape::Data,
            },
            Shape::Block => match key {
                "backoff" => Shape::Block,
                _ => Shape::Data,
            },
            Shape::Data => Shape::Data,
        }
    }

    fn has_fixed_keys(self) -> bool {
        matches!(self, Shape::Root | Shape::Step | Shape::Block)
    }
}

/// The manifest without its `x-*` keys.
pub fn strip(mut root: Node) -> Node {
    strip_in(&mut root, Shape::Root);
    root
}

fn strip_in(node: &mut Node, shape: Shape) {
    let NodeKind::Map(entries) = &mut node.kind else {
        return;
    };
    if shape.has_fixed_keys() {
        entries.retain(|(k, _)| !is_extension(k));
    }
    for (k, v) in entries.iter_mut() {
        let child = shape.child(k.as_str().unwrap_or(""));
        if child != Shape::Data {
            strip_in(v, child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml::parse;

    fn keys(node: &Node) -> Vec<&str> {
        node.entries()
            .unwrap()
            .iter()
            .filter_map(|(k, _)| k.as_str())
            .collect()
    }

    #[test]
    fn extension_keys_go_where_keys_are_fixed_and_stay_where_they_are_names() {
        let src = "x-top: &c {a: 1}\nversion: 1\nlimits: {x-why: cheap, max_credits: 9}\n\
                   retry: {backoff: {x-n: 1, factor: 2}}\n\
                   inputs: {x-named: {default: 1}, n: {default: {x-kept: 1}, x-doc: hi}}\n\
                   matrix: {key: id, x-m: 1, rows: [{id: a, x-col: 1}]}\n\
                   steps:\n  x-ray:\n    action: upload\n    x-note: n\n    with: {url: u, x-w: 1}\n    for_each: [{x-item: 1}]\n";
        let root = strip(parse(src).unwrap().root);
        assert_eq!(
            keys(&root),
            ["version", "limits", "retry", "inputs", "matrix", "steps"]
        );
        assert_eq!(keys(root.get("limits").unwrap()), ["max_credits"]);
        assert_eq!(keys(root.at(&["retry", "backoff"]).unwrap()), ["factor"]);
        assert_eq!(keys(root.get("inputs").unwrap()), ["x-named", "n"]);
        assert_eq!(keys(root.at(&["inputs", "n"]).unwrap()), ["default"]);
        assert_eq!(
            keys(root.at(&["inputs", "n", "default"]).unwrap()),
            ["x-kept"]
        );
        assert_eq!(keys(root.get("matrix").unwrap()), ["key", "rows"]);
        let rows = root.at(&["matrix", "rows"]).unwrap();
        let NodeKind::Seq(rows) = &rows.kind else {
            panic!()
        };
        assert_eq!(keys(&rows[0]), ["id", "x-col"]);
        let step = root.at(&["steps", "x-ray"]).unwrap();
        assert_eq!(keys(step), ["action", "with", "for_each"]);
        assert_eq!(keys(step.get("with").unwrap()), ["url"]);
    }
}
