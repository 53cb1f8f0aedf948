//! `sonicflow graph`: the pipeline's DAG as Mermaid (which GitHub renders)
//! or Graphviz DOT. Each node is a step with its action and credits, priced
//! as `plan` prices it; the matrix is a box around the steps it repeats,
//! and an edge into a `for_each` step is dashed (one instance per element).

use std::fmt::Write as _;
use std::path::PathBuf;

use super::plan::{PlanRow, StepCost, count_text, per_step, price_table, rows};
use crate::diag::Format;
use crate::exit;
use crate::expr::Context;
use crate::plan::{Options, Plan};

/// Row keys named in the matrix box's title; the rest are counted.
const MATRIX_KEYS_SHOWN: usize = 5;

#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// The pipeline manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The graph language.
    #[arg(long, value_enum, default_value = "mermaid")]
    pub format: GraphFormat,
    /// Override an input: `--input name=value` (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE", value_parser = super::parse_input)]
    pub inputs: Vec<(String, String)>,
    /// Read the matrix rows from this CSV or JSONL file instead of the manifest's `matrix.file` or `matrix.rows`.
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// A price table (YAML) to use instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid `flowchart` (put it in a ```mermaid block on GitHub).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
}

pub fn run(args: &GraphArgs) -> u8 {
    let planned = price_table(args.prices.as_ref()).and_then(|prices| {
        let options = Options {
            inputs: args.inputs.clone(),
            prices,
            matrix: args.matrix.clone(),
            ..Options::default()
        };
        super::load_and_plan(&args.file, &options)
    });
    let plan = match planned {
        Ok((_, plan)) => {
            if !plan.warnings.is_empty() {
                super::print_diagnostics(&plan.warnings, Format::Human);
            }
            plan
        }
        Err(d) => {
            super::print_diagnostics(&d, Format::Human);
            return exit::INVALID;
        }
    };
    let graph = Graph::of(&plan);
    match args.format {
        GraphFormat::Mermaid => crate::out!("{}", graph.mermaid()),
        GraphFormat::Dot => crate::out!("{}", graph.dot()),
    }
    exit::SUCCESS
}

/// How an edge joins two steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Waits for it (reads its outputs, or `needs` it).
    Needs,
    /// Runs once per element of a list it outputs (`for_each`).
    FanOut,
    /// Reads all its instances as one list (`outputs[*]`).
    FanIn,
}

struct Node {
    /// A graph id safe in both languages: `s<position>_<step id>`.
    id: String,
    label: Vec<String>,
    /// Inside the matrix box (runs once per row).
    per_row: bool,
}

struct Graph {
    name: String,
    /// `matrix: 3 rows by id` when there is a matrix.
    matrix: Option<String>,
    nodes: Vec<Node>,
    edges: Vec<(usize, usize, Edge)>,
}

impl Graph {
    fn of(plan: &Plan) -> Graph {
        let rows: Vec<PlanRow<'_>> = rows(plan, &[]);
        let costs = per_step(plan, &rows);
        let with_matrix = plan.instances.iter().any(|i| i.key.is_some());
        let matrix = with_matrix.then(|| {
            let n = plan.instances.len();
            let mut keys: Vec<&str> = plan
                .instances
                .iter()
                .take(MATRIX_KEYS_SHOWN)
                .filter_map(|i| i.key.as_deref())
                .collect();
            if n > MATRIX_KEYS_SHOWN {
                keys.push("…");
            }
            format!(
                "matrix: {n} row{} ({})",
                if n == 1 { "" } else { "s" },
                keys.join(", ")
            )
        });
        let nodes = costs
            .iter()
            .map(|c| Node {
                id: node_id(c.step, c.id),
                label: label(plan, c, with_matrix),
                per_row: with_matrix && !plan.steps[c.step].per_pipeline,
            })
            .collect();
        Graph {
            name: plan.name.clone(),
            matrix,
            nodes,
            edges: edges(plan),
        }
    }

    fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        let node = |out: &mut String, n: &Node, indent: &str| {
            let text: Vec<String> = n.label.iter().map(|l| mermaid_text(l)).collect();
            let _ = writeln!(out, "{indent}{}[\"{}\"]", n.id, text.join("<br/>"));
        };
        if let Some(matrix) = &self.matrix {
            let _ = writeln!(out, "  subgraph matrix[\"{}\"]", mermaid_text(matrix));
            for n in self.nodes.iter().filter(|n| n.per_row) {
                node(&mut out, n, "    ");
            }
            out.push_str("  end\n");
        }
        for n in self.nodes.iter().filter(|n| !n.per_row) {
            node(&mut out, n, "  ");
        }
        for &(from, to, kind) in &self.edges {
            let arrow = match kind {
                Edge::Needs => "-->",
                Edge::FanOut => "-. for_each .->",
                Edge::FanIn => "== all ==>",
            };
            let _ = writeln!(
                out,
                "  {} {arrow} {}",
                self.nodes[from].id, self.nodes[to].id
            );
        }
        out
    }

    fn dot(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", dot_text(&self.name));
        out.push_str("  rankdir=LR;\n  node [shape=box];\n");
        let node = |out: &mut String, n: &Node, indent: &str| {
            let text: Vec<String> = n.label.iter().map(|l| dot_text(l)).collect();
            let _ = writeln!(out, "{indent}{} [label=\"{}\"];", n.id, text.join("\\n"));
        };
        if let Some(matrix) = &self.matrix {
            out.push_str("  subgraph cluster_matrix {\n");
            let _ = writeln!(
                out,
                "    label=\"{}\";\n    style=dashed;",
                dot_text(matrix)
            );
            for n in self.nodes.iter().filter(|n| n.per_row) {
                node(&mut out, n, "    ");
            }
            out.push_str("  }\n");
        }
        for n in self.nodes.iter().filter(|n| !n.per_row) {
            node(&mut out, n, "  ");
        }
        for &(from, to, kind) in &self.edges {
            let style = match kind {
                Edge::Needs => "",
                Edge::FanOut => " [style=dashed, label=\"for_each\"]",
                Edge::FanIn => " [style=bold, label=\"all\"]",
            };
            let _ = writeln!(
                out,
                "  {} -> {}{style};",
                self.nodes[from].id, self.nodes[to].id
            );
        }
        out.push_str("}\n");
        out
    }
}

/// `s0_song`: the position keeps ids apart, the step id keeps them readable;
/// anything but ASCII letters and digits becomes `_`.
fn node_id(position: usize, step: &str) -> String {
    let clean: String = step
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("s{position}_{clean}")
}

/// The node's lines: step id, action, price each, count, credits in all.
fn label(plan: &Plan, c: &StepCost<'_>, with_matrix: bool) -> Vec<String> {
    let step = &plan.steps[c.step];
    // The operation only where it says more than the action's name.
    let does = if c.action == c.operation {
        c.action.to_owned()
    } else {
        format!("{} · {}", c.action, c.operation)
    };
    let mut lines = vec![c.id.to_owned(), does];
    lines.push(format!("{} each", crate::format::credits(c.unit_credits)));
    let per_instance = step.calls_in(0);
    let repeat = count_text(
        per_instance.value(),
        per_instance.is_expected(),
        per_instance.is_at_most(),
    );
    match (step.for_each.is_some(), with_matrix && !step.per_pipeline) {
        (true, true) => lines.push(format!("for_each: ×{repeat} per row")),
        (true, false) => lines.push(format!("for_each: ×{repeat}")),
        (false, true) => lines.push("×1 per row".to_owned()),
        (false, false) if step.per_pipeline && with_matrix => {
            lines.push("once per pipeline".to_owned());
        }
        (false, false) => {}
    }
    let calls = count_text(c.calls, c.expected, c.at_most);
    lines.push(format!(
        "{} in all ({calls} call{})",
        crate::format::credits(c.credits),
        if c.calls == 1 { "" } else { "s" }
    ));
    lines
}

/// Every dependency as an edge, dependencies first, in plan order.
fn edges(plan: &Plan) -> Vec<(usize, usize, Edge)> {
    let mut out = Vec::new();
    for (to, step) in plan.steps.iter().enumerate() {
        let fanned: Vec<&str> = step.for_each.as_ref().map_or_else(Vec::new, |f| {
            f.references()
                .into_iter()
                .filter(|r| r.context == Context::Steps)
                .filter_map(|r| r.field(0))
                .collect()
        });
        for &from in &step.deps {
            let kind = if step.fan_ins.contains(&from) {
                Edge::FanIn
            } else if fanned.contains(&plan.steps[from].id.as_str()) {
                Edge::FanOut
            } else {
                Edge::Needs
            };
            out.push((from, to, kind));
        }
    }
    out
}

/// Text inside a quoted Mermaid label: quotes and angle brackets as entities.
fn mermaid_text(text: &str) -> String {
    text.replace('&', "#38;")
        .replace('"', "#quot;")
        .replace('<', "#60;")
        .replace('>', "#62;")
        .replace(['\n', '\r'], " ")
}

/// Text inside a quoted DOT string.
fn dot_text(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_quotes_and_brackets_out_of_the_syntax() {
        assert_eq!(
            mermaid_text(r#"a "b" <c> & d"#),
            "a #quot;b#quot; #60;c#62; #38; d"
        );
        assert_eq!(dot_text("a \"b\" \\ c\nd"), "a \\\"b\\\" \\\\ c d");
    }

    #[test]
    fn node_ids_are_letters_digits_and_underscores_kept_apart_by_position() {
        assert_eq!(node_id(0, "end"), "s0_end");
        assert_eq!(node_id(3, "my-wav.2"), "s3_my_wav_2");
        assert_ne!(node_id(1, "a-b"), node_id(2, "a_b"));
    }

    #[test]
    fn a_fan_out_a_fan_in_and_a_plain_dependency_are_told_apart() {
        let plan = crate::plan::from_yaml(
            "version: 1\nname: t\ndefaults: { mv: sonic-v5 }\nsteps:\n  song:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: x }\n  covered:\n    action: cover\n    for_each: ${{ steps.song.outputs.clips }}\n    with: { clip: '${{ item.clip_id }}', custom_mode: false, gpt_description_prompt: y }\n  tempo:\n    action: bpm\n    with: { clip: '${{ steps.song.outputs.clip_id }}' }\n  joined:\n    action: mashup\n    with:\n      custom_mode: false\n      gpt_description_prompt: z\n      clips:\n        - ${{ flatten(steps.covered.outputs[*].clips)[0].clip_id }}\n        - ${{ flatten(steps.covered.outputs[*].clips)[1].clip_id }}\n",
        );
        let id = |name: &str| plan.steps.iter().position(|s| s.id == name);
        let kinds: Vec<(Option<usize>, Option<usize>, Edge)> = edges(&plan)
            .into_iter()
            .map(|(from, to, kind)| (Some(from), Some(to), kind))
            .collect();
        assert!(
            kinds.contains(&(id("song"), id("covered"), Edge::FanOut)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(id("song"), id("tempo"), Edge::Needs)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(id("covered"), id("joined"), Edge::FanIn)),
            "{kinds:?}"
        );
    }
}
