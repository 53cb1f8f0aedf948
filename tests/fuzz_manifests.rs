//! Bounded fuzzing of manifests: generated YAML structure (nesting, anchors
//! and aliases, several documents, long lines, expressions in odd places)
//! through the loader and the planner. Whatever the input, they return
//! without a panic, and what they say is bounded in size: each diagnostic
//! renders to a few kilobytes, and there are not more of them than the input
//! has bytes.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sonicflow::diag::{self, Format};
use sonicflow::manifest::load;
use sonicflow::plan::{self, Options};

/// A YAML value to be written out in flow or block style.
#[derive(Debug, Clone)]
enum Y {
    Scalar(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
    Anchored(u8, Box<Y>),
    Alias(u8),
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_owned()),
        Just("-1".to_owned()),
        Just("2.5".to_owned()),
        Just("true".to_owned()),
        Just("perhaps".to_owned()),
        Just("~".to_owned()),
        Just("0s".to_owned()),
        Just("15m".to_owned()),
        Just("sonic-v5".to_owned()),
        Just("upload".to_owned()),
        Just("create".to_owned()),
        Just("wav".to_owned()),
        Just("\"${{ steps.a.outputs.clip_id }}\"".to_owned()),
        Just("\"${{ steps.a.outputs.clips }}\"".to_owned()),
        Just("\"${{ item.clip_id }}\"".to_owned()),
        Just("\"${{ matrix.idea }}\"".to_owned()),
        Just("\"${{ inputs.source }}\"".to_owned()),
        Just("\"${{ env.HOME }}\"".to_owned()),
        Just("\"${{ env.SONICFLOW_FUZZ_UNSET }}\"".to_owned()),
        Just("\"${{ steps. }}\"".to_owned()),
        Just("\"${{\"".to_owned()),
        Just("\"https://example.com/a.mp3\"".to_owned()),
        (1usize..10_000).prop_map(|n| format!("\"{}\"", "x".repeat(n))),
        "[a-z_]{1,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("version".to_owned()),
        Just("name".to_owned()),
        Just("steps".to_owned()),
        Just("action".to_owned()),
        Just("with".to_owned()),
        Just("needs".to_owned()),
        Just("for_each".to_owned()),
        Just("inputs".to_owned()),
        Just("default".to_owned()),
        Just("matrix".to_owned()),
        Just("rows".to_owned()),
        Just("key".to_owned()),
        Just("limits".to_owned()),
        Just("retry".to_owned()),
        Just("poll".to_owned()),
        Just("backoff".to_owned()),
        Just("initial".to_owned()),
        Just("max".to_owned()),
        Just("interval".to_owned()),
        Just("timeout".to_owned()),
        Just("defaults".to_owned()),
        Just("clip".to_owned()),
        Just("url".to_owned()),
        Just("mv".to_owned()),
        Just("custom_mode".to_owned()),
        Just("prompt".to_owned()),
        Just("make_instrumental".to_owned()),
        Just("continue_at".to_owned()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        "[a-z_]{1,8}",
    ]
}

fn value(depth: u32) -> impl Strategy<Value = Y> {
    let leaf = prop_oneof![
        4 => scalar().prop_map(Y::Scalar),
        1 => (0u8..4).prop_map(Y::Alias),
    ];
    leaf.prop_recursive(depth, 256, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Y::Seq),
            prop::collection::vec((key(), inner.clone()), 0..6).prop_map(Y::Map),
            ((0u8..4), inner).prop_map(|(a, y)| Y::Anchored(a, Box::new(y))),
        ]
    })
}

fn flow(y: &Y, out: &mut String) {
    match y {
        Y::Scalar(s) => out.push_str(s),
        Y::Alias(a) => out.push_str(&format!("*a{a}")),
        Y::Anchored(a, inner) => {
            out.push_str(&format!("&a{a} "));
            flow(inner, out);
        }
        Y::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                flow(item, out);
            }
            out.push(']');
        }
        Y::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": ");
                flow(v, out);
            }
            out.push('}');
        }
    }
}

/// Block style for mappings, flow style below a random level.
fn block(y: &Y, indent: usize, out: &mut String) {
    match y {
        Y::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&" ".repeat(indent));
                out.push_str(k);
                out.push(':');
                match v {
                    Y::Map(e) if !e.is_empty() => {
                        out.push('\n');
                        block(v, indent + 2, out);
                    }
                    _ => {
                        out.push(' ');
                        flow(v, out);
                        out.push('\n');
                    }
                }
            }
        }
        other => {
            flow(other, out);
            out.push('\n');
        }
    }
}

/// A document shaped like a manifest, with random parts.
fn manifest() -> impl Strategy<Value = String> {
    let step = (
        prop::sample::select(vec![
            "upload",
            "create",
            "cover",
            "wav",
            "stems_basic",
            "mashup",
            "extend",
            "bogus",
        ]),
        value(4),
        prop::option::of(value(2)),
    );
    (
        prop::collection::vec(("[a-c]", step), 0..5),
        prop::collection::vec((key(), value(5)), 0..4),
        prop::bool::ANY,
    )
        .prop_map(|(steps, extra, use_block)| {
            let mut text = String::from("version: 1\nname: fuzz\n");
            let head = Y::Map(extra);
            let mut steps_map = Vec::new();
            for (id, (action, with, for_each)) in steps {
                let mut entries = vec![
                    ("action".to_owned(), Y::Scalar(action.to_owned())),
                    ("with".to_owned(), with),
                ];
                if let Some(f) = for_each {
                    entries.push(("for_each".to_owned(), f));
                }
                steps_map.push((id, Y::Map(entries)));
            }
            let body = Y::Map(vec![("steps".to_owned(), Y::Map(steps_map))]);
            for part in [head, body] {
                if use_block {
                    block(&part, 0, &mut text);
                } else if let Y::Map(entries) = part {
                    for (k, v) in entries {
                        text.push_str(&k);
                        text.push_str(": ");
                        flow(&v, &mut text);
                        text.push('\n');
                    }
                }
            }
            text
        })
}

/// Nested aliases: `copies` of the previous anchor at each of `levels`.
fn alias_bomb() -> impl Strategy<Value = String> {
    (1usize..12, 1usize..14).prop_map(|(copies, levels)| {
        let mut text = "version: 1\nname: bomb\na0: &a0 [x]\n".to_owned();
        for i in 1..=levels {
            let refs = vec![format!("*a{}", i - 1); copies].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text.push_str("steps: {}\n");
        text
    })
}

/// Blocks or flow collections nested `levels` deep.
fn deep() -> impl Strategy<Value = String> {
    (1usize..400, prop::bool::ANY).prop_map(|(levels, flow)| {
        if flow {
            format!(
                "version: 1\nname: deep\nx: {}{}\nsteps: {{}}\n",
                "[".repeat(levels),
                "]".repeat(levels)
            )
        } else {
            let mut text = "version: 1\nname: deep\nsteps: {}\nx:\n".to_owned();
            for i in 0..levels {
                text.push_str(&" ".repeat(i + 1));
                text.push_str("k:\n");
            }
            text
        }
    })
}

fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => manifest(),
        1 => alias_bomb(),
        1 => deep(),
        1 => (manifest(), manifest()).prop_map(|(a, b)| format!("{a}---\n{b}")),
        1 => value(8).prop_map(|y| {
            let mut text = String::new();
            block(&y, 0, &mut text);
            text
        }),
    ]
}

/// Loads and plans `text` as `validate` and `plan` do, and checks that what
/// they say is bounded.
fn check(text: &str) -> Result<(), TestCaseError> {
    for require_inputs in [false, true] {
        let diagnostics =
            match load::load_str("fuzz.yaml", text.to_owned(), Path::new("tests/fixtures")) {
                Ok(loaded) => {
                    let options = Options {
                        require_inputs,
                        ..Options::default()
                    };
                    match plan::build(&loaded, &options) {
                        Ok(plan) => plan.warnings,
                        Err(d) => d,
                    }
                }
                Err(d) => d,
            };
        prop_assert!(
            diagnostics.len() <= text.len() + 16,
            "{} diagnostics",
            diagnostics.len()
        );
        for d in &diagnostics {
            let rendered = diag::render(std::slice::from_ref(d), Format::Human, false);
            prop_assert!(
                rendered.len() <= 8_000,
                "{} bytes:\n{rendered}",
                rendered.len()
            );
            let json = diag::render(std::slice::from_ref(d), Format::Json, false);
            prop_assert!(json.len() <= 4_000, "{} bytes:\n{json}", json.len());
        }
    }
    Ok(())
}

#[test]
fn generated_manifests_never_panic_and_say_a_bounded_amount() {
    let config = Config {
        cases: 160,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed: CI runs the same cases every time; change it to explore.
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    runner.run(&any_input(), |text| check(&text)).unwrap();
}

#[test]
fn the_worst_shapes_are_refused_quickly_with_a_position() {
    let bomb = {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_owned();
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text
    };
    let deep_block: String = (0..10_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let deep_flow = format!("x: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    for text in [bomb, deep_block, deep_flow] {
        let d = load::load_str("fuzz.yaml", text.clone(), Path::new(".")).unwrap_err();
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].span.line >= 1);
        check(&text).unwrap();
    }
}
