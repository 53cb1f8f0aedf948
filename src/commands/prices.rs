//! `sonicflow prices`: the price table in use, and `prices learn`, which
//! makes a newer table from what runs were seen to be charged.
//!
//! A learnt table is dated today and takes, for each operation a run saw
//! charged, the price it was charged; every other operation keeps its price
//! from the table the runs used. An operation seen charged two different
//! amounts is reported on stderr, naming both and where they were seen, and
//! the table takes the **higher**: a plan priced from it never promises
//! less than the service was seen to take. Prices the learnt table changes
//! are kept under `earlier`, dated as the table they came from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::observe::attribute;
use crate::exit;
use crate::journal::RunLog;
use crate::plan::Options;
use crate::prices::{EarlierRead, OPERATIONS, PriceTable};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PricesArgs {
    #[command(subcommand)]
    pub command: Option<PricesCommand>,
    /// A pipeline manifest: show the table its plan uses, its `prices:` overrides applied.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A price table (YAML) to show instead of the built-in one.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    #[command(flatten)]
    pub format: crate::format::FormatArgs<crate::format::HumanOrJson>,
}

#[derive(Debug, clap::Subcommand)]
pub enum PricesCommand {
    /// Print a price table, dated today, made from the charges the runs in RUN_DIR… were seen to pay.
    Learn(LearnArgs),
}

#[derive(Debug, clap::Args)]
pub struct LearnArgs {
    /// Run folders (each holding a `journal.jsonl`).
    #[arg(value_name = "RUN_DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// Write the table to FILE (atomically) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(args: &PricesArgs) -> u8 {
    match &args.command {
        Some(PricesCommand::Learn(learn)) => run_learn(learn),
        None => show(args),
    }
}

fn show(args: &PricesArgs) -> u8 {
    let table = match super::plan::price_table(args.prices.as_ref()) {
        Ok(t) => t,
        Err(d) => {
            super::print_diagnostics(&d, crate::diag::Format::Human);
            return exit::INVALID;
        }
    };
    let table = match &args.file {
        None => table,
        Some(file) => {
            let options = Options {
                prices: table,
                ..Options::default()
            };
            match super::load_and_plan(file, &options) {
                Ok((_, plan)) => plan.prices,
                Err(d) => {
                    super::print_diagnostics(&d, crate::diag::Format::Human);
                    return exit::INVALID;
                }
            }
        }
    };
    let today = super::today();
    let shown = Shown {
        name: &table.name,
        date: &table.date,
        source: &table.source,
        version: table.version(),
        age_days: table.age(&today).map(|a| a.days),
        stale: table.age(&today).is_some_and(|a| a.stale),
        age: table.age_lines(&today),
        overridden: &table.overridden,
        prices: OPERATIONS
            .iter()
            .filter_map(|op| Some((*op, table.price(op)?)))
            .collect(),
        earlier: &table.earlier,
    };
    crate::format::print(args.format.get(), &shown, |_| render(&table, &today));
    exit::SUCCESS
}

/// `sonicflow prices --json`: the table, its age and where it came from.
#[derive(Debug, Serialize)]
struct Shown<'a> {
    name: &'a str,
    date: &'a str,
    source: &'a str,
    /// What a plan from it records as its price table (as in `plan --json`).
    version: String,
    /// Days from the table's date to today; `stale` past the age that warns.
    age_days: Option<i64>,
    stale: bool,
    /// What the human form says of the table's age, a line each.
    age: Vec<String>,
    overridden: &'a [String],
    /// Credits per operation.
    prices: BTreeMap<&'static str, u64>,
    earlier: &'a [EarlierRead],
}

/// The table as `sonicflow prices` prints it.
pub fn render(table: &PriceTable, today: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "price table: {}", table.name);
    let _ = writeln!(out, "date: {}", table.date);
    let _ = writeln!(out, "source: {}", table.source);
    for line in table.age_lines(today) {
        let _ = writeln!(out, "{line}");
    }
    if !table.overridden.is_empty() {
        let _ = writeln!(out, "overridden: {}", table.overridden.join(", "));
    }
    let width = OPERATIONS.iter().map(|o| o.len()).max().unwrap_or(0);
    let _ = writeln!(out, "\n{:<width$}  credits", "operation");
    for op in OPERATIONS {
        if let Some(credits) = table.price(op) {
            let _ = writeln!(out, "{op:<width$}  {credits:>7}");
        }
    }
    for read in &table.earlier {
        let _ = writeln!(out, "\nearlier: {} ({})", read.date, read.source);
        for (op, credits) in &read.prices {
            let now = table
                .price(op)
                .map_or_else(String::new, |p| format!("  (now {p})"));
            let _ = writeln!(out, "{op:<width$}  {credits:>7}{now}");
        }
    }
    out
}

/// A price table in the `--prices` format.
#[derive(Debug, Serialize)]
struct TableFile<'a> {
    name: &'a str,
    date: &'a str,
    source: &'a str,
    prices: &'a BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "<[EarlierRead]>::is_empty")]
    earlier: &'a [EarlierRead],
}

/// What the runs taught, before it is written.
#[derive(Debug)]
pub struct Learnt {
    pub table: PriceTable,
    /// One line per operation seen charged different amounts.
    pub conflicts: Vec<String>,
    /// Notes about the runs read (a run with no table recorded, tables that differ).
    pub notes: Vec<String>,
}

/// Learns a table dated `today` from the runs in `dirs`.
pub fn learn(dirs: &[PathBuf], today: &str) -> Result<Learnt, String> {
    // operation → amount → where it was seen (`run: instance`).
    let mut seen: BTreeMap<String, BTreeMap<u64, Vec<String>>> = BTreeMap::new();
    let mut base: Option<(String, PriceTable)> = None;
    let mut notes = Vec::new();
    let mut names = Vec::new();
    for dir in dirs {
        let log = RunLog::read(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let run = log.header.id.clone();
        names.push(run.clone());
        let table = match &log.header.price_table {
            Some(t) => (**t).clone(),
            None => {
                notes.push(format!(
                    "note: run `{run}` did not record its price table; the built-in one stands in for it"
                ));
                PriceTable::builtin()
            }
        };
        // The newest run's table is the one kept for what nobody observed.
        match &base {
            Some((started, t)) if *started > log.header.started_at => {
                if t.version() != table.version() {
                    notes.push(format!(
                        "note: run `{run}` used table {}, not {}; unobserved operations keep the newest run's",
                        table.version(),
                        t.version()
                    ));
                }
            }
            Some((_, t)) if t.version() != table.version() => {
                notes.push(format!(
                    "note: the runs used different tables ({} and {}); unobserved operations keep the newest run's",
                    t.version(),
                    table.version()
                ));
                base = Some((log.header.started_at.clone(), table));
            }
            _ => base = Some((log.header.started_at.clone(), table)),
        }
        let obs = attribute(&log.observed);
        for (op, charges) in &obs.operations {
            for (amount, insts) in &charges.charged_to {
                let places = seen
                    .entry(op.clone())
                    .or_default()
                    .entry(*amount)
                    .or_default();
                places.extend(insts.iter().map(|i| format!("{run}: {i}")));
            }
        }
    }
    let Some((_, base)) = base else {
        return Err("no run folder given".to_owned());
    };
    if seen.is_empty() {
        return Err(format!(
            "no charge was observed in {}: runs made with `--no-observe-charges`, or whose balance reads all failed, cannot teach prices",
            dirs.iter()
                .map(|d| format!("`{}`", d.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut prices = base.prices.clone();
    let mut changed = BTreeMap::new();
    let mut conflicts = Vec::new();
    for (op, amounts) in &seen {
        let Some((&highest, _)) = amounts.iter().next_back() else {
            continue;
        };
        if amounts.len() > 1 {
            let all: Vec<String> = amounts
                .iter()
                .map(|(a, places)| format!("{a} ({})", shorten(places)))
                .collect();
            conflicts.push(format!(
                "{op} was charged different amounts: {}; the table takes {highest}, the highest, and averages nothing",
                all.join(" and ")
            ));
        }
        if let Some(old) = prices.insert(op.clone(), highest)
            && old != highest
        {
            changed.insert(op.clone(), old);
        }
    }
    let kept = OPERATIONS.len() - seen.len();
    let source = format!(
        "charges observed by run(s) {}; the {kept} operations not observed keep their prices from table {}",
        names.join(", "),
        base.version()
    );
    let mut earlier = Vec::new();
    if !changed.is_empty() {
        earlier.push(EarlierRead {
            date: base.date.clone(),
            source: format!("table {} ({})", base.name, base.source),
            prices: changed,
        });
    }
    earlier.extend(base.earlier.iter().cloned());
    let table = PriceTable {
        name: "learnt".to_owned(),
        date: today.to_owned(),
        source,
        overridden: Vec::new(),
        prices,
        earlier,
    };
    Ok(Learnt {
        table,
        conflicts,
        notes,
    })
}

/// At most three places, then how many more.
fn shorten(places: &[String]) -> String {
    let mut text = places
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if places.len() > 3 {
        let _ = write!(text, " and {} more", places.len() - 3);
    }
    text
}

/// The table as YAML, in the `--prices` format.
pub fn to_yaml(table: &PriceTable) -> Result<String, String> {
    let file = TableFile {
        name: &table.name,
        date: &table.date,
        source: &table.source,
        prices: &table.prices,
        earlier: &table.earlier,
    };
    let text = serde_yaml::to_string(&file).map_err(|e| format!("cannot write the table: {e}"))?;
    // What is written must read back as the same table.
    match PriceTable::from_yaml(&text, "the learnt table") {
        Ok(back) if back == *table => Ok(text),
        Ok(_) => Err("the learnt table does not read back the same".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn run_learn(args: &LearnArgs) -> u8 {
    let learnt = match learn(&args.runs, &super::today()) {
        Ok(l) => l,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    for line in learnt.notes.iter().chain(&learnt.conflicts) {
        crate::errln!("{line}");
    }
    let text = match to_yaml(&learnt.table) {
        Ok(t) => t,
        Err(e) => {
            crate::errln!("error: {e}");
            return exit::INVALID;
        }
    };
    match &args.output {
        None => crate::out!("{text}"),
        Some(path) => {
            if let Err(e) = crate::report::write_atomically(path, text.as_bytes()) {
                crate::errln!(
                    "error: cannot write `{}`: {e}; check that its folder exists and is writable",
                    path.display()
                );
                return exit::INVALID;
            }
            crate::errln!("wrote {}", path.display());
        }
    }
    exit::SUCCESS
}
