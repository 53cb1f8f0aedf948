//! The runtime instance graph: which step instances exist, what each waits
//! for, and what references resolve to.
//!
//! Instances are created lazily. A step without fan-out gets one instance per
//! matrix row at the start. A step with `for_each` is expanded once the list
//! it iterates over is known (its source instance succeeded); a step that
//! references a fanned-out step gets one instance per instance of it.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use crate::engine::InstanceId;
use crate::expr::{Context, Reference, Segment};
use crate::manifest::spec::OnMissing;
use crate::plan::condition::{self, Truth};
use crate::plan::names::{self, Naming};
use crate::plan::resolve::{self, FieldValue, Scope};
use crate::plan::{Plan, PlanStep};

/// Where an instance stands, as the instances that depend on it see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Standing {
    /// Not finished (waiting, or on its way).
    Pending,
    /// Finished with these outputs.
    Succeeded(serde_json::Value),
    Failed,
    /// Will not run, for this reason.
    Skipped(String),
    /// Will not run because its condition, or that of something it needs,
    /// is false: not a failure, and fan-ins leave it out.
    Unmet(String),
}

/// One step instance at run time.
#[derive(Debug, Clone)]
struct Inst {
    id: InstanceId,
    standing: Standing,
    /// The `for_each` element this instance runs for.
    item: Option<serde_json::Value>,
    /// Stands for a fan-out that never happened: no call is made for it.
    placeholder: bool,
}

/// A `for_each` waiting for its list: step `step` in `row`, under `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expansion {
    row: usize,
    step: usize,
    path: Vec<usize>,
}

/// Whether an instance can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Readiness {
    Ready,
    Wait,
    /// A dependency failed or was skipped; the reason names it.
    Blocked(String),
    /// A dependency was skipped by a condition; the reason names it.
    Unmet(String),
}

pub(crate) struct Graph<'p> {
    plan: &'p Plan,
    insts: Vec<Inst>,
    index: HashMap<(usize, usize, Vec<usize>), usize>,
    /// The instances of each matrix row, in creation order: what a look at
    /// one row's instances walks instead of every instance of the graph.
    by_row: Vec<Vec<usize>>,
    /// `for_each` contexts waiting for their list, per matrix row.
    pending: Vec<Vec<Expansion>>,
    /// For each step, the steps whose inherited fan-out ends with it.
    children: Vec<Vec<usize>>,
    step_by_id: HashMap<&'p str, usize>,
    /// The names of the elements of each expanded `for_each`, by (row, step, path of its context).
    labels: HashMap<(usize, usize, Vec<usize>), Vec<String>>,
    /// Per step, the expected time from its submit to the end of the
    /// longest chain of steps that waits on it (see [`remaining_paths`]).
    remaining: Vec<Duration>,
}

/// For each step, its own expected latency plus that of the longest chain
/// of steps depending on it: how long the run still needs after the step
/// is sent, at best. The critical-path rule of list scheduling sends the
/// ready work with the longest such path first, so that long chains start
/// early and the run does not end waiting on one that started late.
fn remaining_paths(plan: &Plan) -> Vec<Duration> {
    let mut remaining = vec![Duration::ZERO; plan.steps.len()];
    // A step's dependencies come before it, so its dependents are all later.
    for s in (0..plan.steps.len()).rev() {
        let after = (s + 1..plan.steps.len())
            .filter(|&d| plan.steps[d].deps.contains(&s))
            .map(|d| remaining[d])
            .max()
            .unwrap_or_default();
        remaining[s] = crate::prices::typical_latency(plan.steps[s].operation) + after;
    }
    remaining
}

/// The fan-out a step inherits from what it references (its axis without itself).
fn inherited(plan: &Plan, s: usize) -> &[usize] {
    let axis = &plan.steps[s].axis;
    match axis.last() {
        Some(&last) if last == s => &axis[..axis.len() - 1],
        _ => axis,
    }
}

impl<'p> Graph<'p> {
    /// The graph with every instance that exists before anything ran.
    pub fn new(plan: &'p Plan) -> (Graph<'p>, Vec<usize>) {
        let mut children = vec![Vec::new(); plan.steps.len()];
        for s in 0..plan.steps.len() {
            if let Some(&parent) = inherited(plan, s).last() {
                children[parent].push(s);
            }
        }
        let step_by_id = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut graph = Graph {
            plan,
            insts: Vec::new(),
            index: HashMap::new(),
            by_row: vec![Vec::new(); plan.instances.len()],
            pending: vec![Vec::new(); plan.instances.len()],
            children,
            step_by_id,
            labels: HashMap::new(),
            remaining: remaining_paths(plan),
        };
        let mut created = Vec::new();
        for row in 0..plan.instances.len() {
            for s in 0..plan.steps.len() {
                if inherited(plan, s).is_empty() && (row == 0 || !plan.steps[s].per_pipeline) {
                    graph.create_context(row, s, Vec::new(), &mut created);
                }
            }
        }
        (graph, created)
    }

    /// The expected time from sending instance `idx` to the end of the
    /// longest chain of work waiting on it.
    pub fn remaining(&self, idx: usize) -> Duration {
        self.remaining[self.insts[idx].id.step]
    }

    pub fn step(&self, idx: usize) -> &'p PlanStep {
        &self.plan.steps[self.insts[idx].id.step]
    }

    /// The matrix key naming step `s`'s instance in `row`: none for a step
    /// that runs once per pipeline.
    fn row_key(&self, s: usize, row: usize) -> Option<String> {
        if self.plan.steps[s].per_pipeline {
            return None;
        }
        self.plan.instances[row].key.clone()
    }

    /// How many instances exist so far.
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    pub fn id(&self, idx: usize) -> &InstanceId {
        &self.insts[idx].id
    }

    pub fn standing(&self, idx: usize) -> &Standing {
        &self.insts[idx].standing
    }

    /// Every instance's id and standing, in creation order.
    pub fn instances(&self) -> impl Iterator<Item = (&InstanceId, &Standing)> {
        self.insts.iter().map(|i| (&i.id, &i.standing))
    }

    /// The instances of step `s` in the matrix rows `rows`, row by row and
    /// in creation order within a row.
    fn of_step(&self, rows: Range<usize>, s: usize) -> impl Iterator<Item = (usize, &Inst)> {
        self.by_row
            .get(rows)
            .into_iter()
            .flatten()
            .flatten()
            .map(|&i| (i, &self.insts[i]))
            .filter(move |(_, inst)| inst.id.step == s)
    }

    /// Whether every instance of step `s` in `row` has succeeded.
    pub fn all_succeeded(&self, row: usize, s: usize) -> bool {
        self.of_step(row..row + 1, s)
            .all(|(_, i)| matches!(i.standing, Standing::Succeeded(_)))
    }

    /// The instance finished with `outputs`; what reads them may now run.
    pub fn succeed(&mut self, idx: usize, outputs: serde_json::Value) {
        self.insts[idx].standing = Standing::Succeeded(outputs);
    }

    /// The instance failed; what needs it is blocked.
    pub fn fail(&mut self, idx: usize) {
        self.insts[idx].standing = Standing::Failed;
    }

    /// The instance will not run; what needs it is blocked.
    pub fn skip(&mut self, idx: usize, reason: impl Into<String>) {
        self.insts[idx].standing = Standing::Skipped(reason.into());
    }

    /// The instance will not run because of a condition; what needs it is
    /// skipped (condition) too.
    pub fn unmet(&mut self, idx: usize, reason: impl Into<String>) {
        self.insts[idx].standing = Standing::Unmet(reason.into());
    }

    /// Whether instance `idx`'s condition holds, from what is known now
    /// (the same function decides it at plan time).
    pub fn condition(&self, idx: usize) -> Truth {
        let step = self.insts[idx].id.step;
        condition::holds(
            self.plan.steps[step].condition.as_ref(),
            &self.scope_of(idx),
        )
    }

    fn create_context(&mut self, row: usize, s: usize, path: Vec<usize>, created: &mut Vec<usize>) {
        if self.plan.steps[s].for_each.is_some() {
            self.pending[row].push(Expansion { row, step: s, path });
        } else {
            self.create(row, s, path, None, Standing::Pending, created);
        }
    }

    fn create(
        &mut self,
        row: usize,
        s: usize,
        path: Vec<usize>,
        item: Option<serde_json::Value>,
        standing: Standing,
        created: &mut Vec<usize>,
    ) -> usize {
        let idx = self.insts.len();
        let id = InstanceId {
            row,
            row_key: self.row_key(s, row),
            step: s,
            step_id: self.plan.steps[s].id.clone(),
            names: self.names(row, s, &path, None),
            path: path.clone(),
        };
        let pending = standing == Standing::Pending;
        self.insts.push(Inst {
            id,
            standing,
            item,
            placeholder: !pending,
        });
        self.index.insert((row, s, path.clone()), idx);
        if let Some(r) = self.by_row.get_mut(row) {
            r.push(idx);
        }
        created.push(idx);
        if pending {
            for t in self.children[s].clone() {
                self.create_context(row, t, path.clone(), created);
            }
        }
        idx
    }

    /// Expands every `for_each` of matrix row `row` whose list is now known.
    /// Returns the new instances.
    pub fn expand(&mut self, row: usize) -> Vec<usize> {
        let mut created = Vec::new();
        let mut still = Vec::new();
        let Some(pending) = self.pending.get_mut(row) else {
            return created;
        };
        for e in std::mem::take(pending) {
            let plan = self.plan;
            let Some(for_each) = plan.steps[e.step].for_each.as_ref() else {
                continue;
            };
            match self.blocked_by(e.row, e.step, &e.path, for_each) {
                Readiness::Wait => still.push(e),
                Readiness::Blocked(reason) => {
                    let standing = Standing::Skipped(reason);
                    self.skip_context(e.row, e.step, e.path, &standing, &mut created)
                }
                Readiness::Unmet(reason) => {
                    let standing = Standing::Unmet(reason);
                    self.skip_context(e.row, e.step, e.path, &standing, &mut created)
                }
                Readiness::Ready => {
                    let scope = RunScope {
                        graph: self,
                        row: e.row,
                        every_row: plan.steps[e.step].per_pipeline,
                        path: &e.path,
                        item: None,
                        overlay: None,
                    };
                    match resolve::resolve(for_each, &scope) {
                        Some(serde_json::Value::Array(items)) => {
                            let labels = names::labels(&items, Naming::of(&plan.steps[e.step]));
                            self.labels.insert((e.row, e.step, e.path.clone()), labels);
                            for (i, item) in items.into_iter().enumerate() {
                                let mut path = e.path.clone();
                                path.push(i);
                                self.create(
                                    e.row,
                                    e.step,
                                    path,
                                    Some(item),
                                    Standing::Pending,
                                    &mut created,
                                );
                            }
                        }
                        other => {
                            let found =
                                other.map_or_else(|| "nothing".to_owned(), |v| describe(&v));
                            let reason = format!(
                                "`for_each` of `{}` did not give a list (got {found})",
                                plan.steps[e.step].id
                            );
                            let standing = Standing::Skipped(reason);
                            self.skip_context(e.row, e.step, e.path, &standing, &mut created);
                        }
                    }
                }
            }
        }
        // Expanding may have created contexts of nested fan-outs; keep them too.
        still.append(&mut self.pending[row]);
        self.pending[row] = still;
        created
    }

    /// Marks a context that will never run: a placeholder for the step and
    /// its fan-out children, standing as `standing` (skipped or unmet).
    fn skip_context(
        &mut self,
        row: usize,
        s: usize,
        path: Vec<usize>,
        standing: &Standing,
        created: &mut Vec<usize>,
    ) {
        if self.index.contains_key(&(row, s, path.clone())) {
            return;
        }
        self.create(row, s, path.clone(), None, standing.clone(), created);
        for t in self.children[s].clone() {
            self.skip_context(row, t, path.clone(), standing, created);
        }
    }

    /// Whether the steps `value` references (in this row and fan-out position) have succeeded.
    fn blocked_by(&self, row: usize, s: usize, path: &[usize], value: &FieldValue) -> Readiness {
        for r in value.references() {
            if r.context != Context::Steps {
                continue;
            }
            let Some(&d) = r.field(0).and_then(|id| self.step_by_id.get(id)) else {
                continue;
            };
            match self.dep_readiness(row, s, path, d) {
                Readiness::Ready => {}
                other => return other,
            }
        }
        Readiness::Ready
    }

    /// Whether instance `idx` may run now. A condition found false as soon
    /// as what it reads is known skips the instance without waiting for the
    /// rest (as the plan does for one that reads only inputs and the matrix).
    pub fn readiness(&self, idx: usize) -> Readiness {
        let inst = &self.insts[idx];
        let step = &self.plan.steps[inst.id.step];
        if let Some(c) = &step.condition
            && self.blocked_by(inst.id.row, inst.id.step, &inst.id.path, c) == Readiness::Ready
            && self.condition(idx) == Truth::False
        {
            return Readiness::Unmet(condition::false_reason(c));
        }
        for &d in &step.deps {
            match self.dep_readiness(inst.id.row, inst.id.step, &inst.id.path, d) {
                Readiness::Ready => {}
                other => return other,
            }
        }
        Readiness::Ready
    }

    fn dep_readiness(&self, row: usize, s: usize, path: &[usize], d: usize) -> Readiness {
        let step = &self.plan.steps[s];
        if step.fan_ins.contains(&d) {
            return self.collected(self.rows_read(s, row), d, step.on_missing);
        }
        let row = self.plan.home_row(d, row);
        let dep_axis = &self.plan.steps[d].axis;
        if self.plan.steps[s].axis.starts_with(dep_axis) && dep_axis.len() <= path.len() {
            let key = (row, d, path[..dep_axis.len()].to_vec());
            let found = self.index.get(&key).or_else(|| {
                // A fan-out that never happened leaves a placeholder at its context.
                let short = dep_axis.len().checked_sub(1)?;
                self.index.get(&(row, d, path[..short].to_vec()))
            });
            return match found.map(|&i| &self.insts[i]) {
                Some(i) => status_readiness(i),
                None => Readiness::Wait,
            };
        }
        self.settled(row, d)
    }

    /// The instances whose outputs instance `idx` reads: for each step it
    /// references, the instance on the same fan-out path, or every instance
    /// of that step in the row when it is not on the path.
    pub fn inputs_of(&self, idx: usize) -> Vec<usize> {
        let id = &self.insts[idx].id;
        let step = &self.plan.steps[id.step];
        let mut out = Vec::new();
        for &d in &step.data_deps {
            let dep_axis = &self.plan.steps[d].axis;
            let rows = if step.fan_ins.contains(&d) {
                self.rows_read(id.step, id.row)
            } else {
                let home = self.plan.home_row(d, id.row);
                home..home + 1
            };
            if step.axis.starts_with(dep_axis) && dep_axis.len() <= id.path.len() {
                let key = (rows.start, d, id.path[..dep_axis.len()].to_vec());
                out.extend(self.index.get(&key).copied());
            } else {
                out.extend(self.of_step(rows, d).map(|(i, _)| i));
            }
        }
        out
    }

    /// Whether a fan-in over step `d` in `row` may read its list: once every
    /// instance is settled (fan-outs not expanded yet included); one that
    /// failed or was skipped blocks it unless `on_missing` leaves it out.
    /// Instances skipped by a condition are simply not in the list.
    fn collected(&self, rows: Range<usize>, d: usize, on_missing: OnMissing) -> Readiness {
        let mut result = Readiness::Ready;
        for row in rows {
            match self.settled(row, d) {
                Readiness::Wait => return Readiness::Wait,
                Readiness::Blocked(reason) if on_missing == OnMissing::Fail => {
                    result = Readiness::Blocked(reason);
                }
                _ => {}
            }
        }
        result
    }

    /// The matrix rows step `s` reads from when it stands in `row`: every
    /// row for a step that runs once per pipeline.
    fn rows_read(&self, s: usize, row: usize) -> Range<usize> {
        if self.plan.steps[s].per_pipeline {
            0..self.plan.instances.len()
        } else {
            row..row + 1
        }
    }

    /// Step `d`'s instances in `rows` that succeeded, with their outputs,
    /// in row then fan-out order: the list a fan-in reads. `overlay` stands
    /// for one instance's outputs as if it had them.
    fn collect(
        &self,
        rows: Range<usize>,
        d: usize,
        overlay: Option<(usize, &serde_json::Value)>,
    ) -> Vec<(usize, serde_json::Value)> {
        let mut found: Vec<(usize, serde_json::Value)> = self
            .of_step(rows, d)
            .filter(|(_, i)| !i.placeholder)
            .filter_map(|(idx, i)| match (&i.standing, overlay) {
                (_, Some((o, outputs))) if o == idx => Some((idx, outputs.clone())),
                (Standing::Succeeded(outputs), _) => Some((idx, outputs.clone())),
                _ => None,
            })
            .collect();
        found.sort_by_key(|(idx, _)| (self.insts[*idx].id.row, self.insts[*idx].id.path.clone()));
        found
    }

    /// Every instance of step `d` in `row` (a `needs` on a fanned-out step waits for all of them).
    fn settled(&self, row: usize, d: usize) -> Readiness {
        if self.pending[row].iter().any(|e| e.step == d) {
            return Readiness::Wait;
        }
        if let Some(&parent) = inherited(self.plan, d).last()
            && self.settled(row, parent) == Readiness::Wait
        {
            return Readiness::Wait;
        }
        // Instances skipped by a condition are left out; if nothing else is
        // left, what waits for them is skipped (condition) too.
        let mut result = Readiness::Ready;
        let mut unmet = None;
        let mut any_met = false;
        for (_, inst) in self.of_step(row..row + 1, d) {
            match status_readiness(inst) {
                Readiness::Wait => return Readiness::Wait,
                Readiness::Blocked(r) => {
                    any_met = true;
                    result = Readiness::Blocked(r);
                }
                Readiness::Unmet(r) => unmet = unmet.or(Some(r)),
                Readiness::Ready => any_met = true,
            }
        }
        match unmet {
            Some(reason) if !any_met => Readiness::Unmet(reason),
            _ => result,
        }
    }

    /// The step's `with` block resolved for instance `idx`; `Err` names what could not be resolved.
    pub fn resolve_fields(
        &self,
        idx: usize,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        self.fields_in(self.insts[idx].id.step, &self.scope_of(idx))
    }

    /// What references resolve to as instance `idx` sees them now.
    fn scope_of(&self, idx: usize) -> RunScope<'_, 'p> {
        let inst = &self.insts[idx];
        RunScope {
            graph: self,
            row: inst.id.row,
            every_row: self.plan.steps[inst.id.step].per_pipeline,
            path: &inst.id.path,
            item: inst.item.as_ref(),
            overlay: None,
        }
    }

    /// The requests the instances reading instance `idx`'s outputs would
    /// make if it succeeded with `outputs`: those that exist, and those a
    /// `for_each` over its outputs would create. Only those whose every
    /// other input is known now are given, as (instance, fields).
    pub fn dependents_if(
        &self,
        idx: usize,
        outputs: &serde_json::Value,
    ) -> Vec<(InstanceId, serde_json::Map<String, serde_json::Value>)> {
        let row = self.insts[idx].id.row;
        let overlay = Some((idx, outputs));
        let mut out = Vec::new();
        for &j in self.by_row.get(row).into_iter().flatten() {
            let inst = &self.insts[j];
            if inst.standing != Standing::Pending || !self.inputs_of(j).contains(&idx) {
                continue;
            }
            let scope = RunScope {
                graph: self,
                row,
                every_row: self.plan.steps[inst.id.step].per_pipeline,
                path: &inst.id.path,
                item: inst.item.as_ref(),
                overlay,
            };
            if let Ok(fields) = self.fields_in(inst.id.step, &scope) {
                out.push((inst.id.clone(), fields));
            }
        }
        for e in self.pending.get(row).into_iter().flatten() {
            let Some(for_each) = self.plan.steps[e.step].for_each.as_ref() else {
                continue;
            };
            if !self.sources(e, for_each).contains(&idx) {
                continue;
            }
            let list = RunScope {
                graph: self,
                row,
                every_row: self.plan.steps[e.step].per_pipeline,
                path: &e.path,
                item: None,
                overlay,
            };
            let Some(serde_json::Value::Array(items)) = resolve::resolve(for_each, &list) else {
                continue;
            };
            let labels = names::labels(&items, Naming::of(&self.plan.steps[e.step]));
            for (i, item) in items.iter().enumerate() {
                let mut path = e.path.clone();
                path.push(i);
                let scope = RunScope {
                    graph: self,
                    row,
                    every_row: self.plan.steps[e.step].per_pipeline,
                    path: &path,
                    item: Some(item),
                    overlay,
                };
                if let Ok(fields) = self.fields_in(e.step, &scope) {
                    let id = InstanceId {
                        row,
                        row_key: self.row_key(e.step, row),
                        step: e.step,
                        step_id: self.plan.steps[e.step].id.clone(),
                        names: self.names(row, e.step, &path, Some(&labels)),
                        path: path.clone(),
                    };
                    out.push((id, fields));
                }
            }
        }
        out
    }

    /// The names along `path` of an instance of step `s` in `row`: each
    /// level's from the list its fan-out was expanded from (the last from
    /// `last`, when that list is only supposed), else its index.
    fn names(&self, row: usize, s: usize, path: &[usize], last: Option<&[String]>) -> Vec<String> {
        let axis = &self.plan.steps[s].axis;
        let named = path.iter().enumerate().map(|(level, &i)| {
            let labels = match (level + 1 == path.len(), last) {
                (true, Some(last)) => Some(last),
                _ => axis
                    .get(level)
                    .and_then(|&a| self.labels.get(&(row, a, path[..level].to_vec())))
                    .map(Vec::as_slice),
            };
            labels
                .and_then(|l| l.get(i).cloned())
                .unwrap_or_else(|| i.to_string())
        });
        names::for_id(path, named.collect())
    }

    /// Step `s`'s `with` block resolved in `scope`.
    fn fields_in(
        &self,
        s: usize,
        scope: &RunScope<'_, '_>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let mut out = serde_json::Map::new();
        for (name, field) in &self.plan.steps[s].fields {
            match resolve::resolve(field, scope) {
                Some(v) => {
                    out.insert(name.clone(), v);
                }
                None => {
                    return Err(format!(
                        "`{name}` could not be resolved: {}",
                        resolve::why_missing(field, scope)
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The calls each (matrix row, step) makes, row-major: the instances
    /// that exist when every fan-out the step runs under is expanded in that
    /// row, `None` while one still waits for its list.
    pub fn calls_known(&self) -> Vec<Option<u64>> {
        let n_steps = self.plan.steps.len();
        let mut calls: Vec<Option<u64>> = vec![Some(0); self.plan.instances.len() * n_steps];
        for inst in self
            .insts
            .iter()
            .filter(|i| !i.placeholder && !matches!(i.standing, Standing::Unmet(_)))
        {
            if let Some(Some(n)) = calls.get_mut(inst.id.row * n_steps + inst.id.step) {
                *n += 1;
            }
        }
        for (row, pending) in self.pending.iter().enumerate() {
            for (s, step) in self.plan.steps.iter().enumerate() {
                if pending.iter().any(|e| step.axis.contains(&e.step)) {
                    calls[row * n_steps + s] = None;
                }
            }
        }
        calls
    }

    /// Steps with a fan-out still waiting for its list, in any row.
    pub fn pending_steps(&self) -> Vec<usize> {
        let mut steps: Vec<usize> = self.pending.iter().flatten().map(|e| e.step).collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// Gives up on the fan-outs not yet expanded of steps that may not be
    /// paid for, whose lists come from an instance for which `fresh` is
    /// true (it will be paid for anew, so nothing earlier can match what
    /// the fan-out would send): each becomes a skipped placeholder, with its
    /// fan-out children. Returns the placeholders.
    pub fn abandon_fresh_reuse_only(
        &mut self,
        reason: &str,
        fresh: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut created = Vec::new();
        for row in 0..self.pending.len() {
            for e in std::mem::take(&mut self.pending[row]) {
                let step = &self.plan.steps[e.step];
                let doomed = !step.scope.may_submit()
                    && step
                        .for_each
                        .as_ref()
                        .is_some_and(|f| self.sources(&e, f).into_iter().any(&fresh));
                if doomed {
                    let standing = Standing::Skipped(reason.to_owned());
                    self.skip_context(e.row, e.step, e.path, &standing, &mut created);
                } else {
                    self.pending[row].push(e);
                }
            }
        }
        created
    }

    /// The instances whose outputs a fan-out's list is read from.
    fn sources(&self, e: &Expansion, list: &FieldValue) -> Vec<usize> {
        let mut out = Vec::new();
        for r in list.references() {
            if r.context != Context::Steps {
                continue;
            }
            let Some(&d) = r.field(0).and_then(|id| self.step_by_id.get(id)) else {
                continue;
            };
            let len = self.plan.steps[d].axis.len();
            match e.path.get(..len) {
                Some(prefix) => out.extend(self.index.get(&(e.row, d, prefix.to_vec())).copied()),
                None => out.extend(self.of_step(e.row..e.row + 1, d).map(|(i, _)| i)),
            }
        }
        out
    }

    /// Gives up on fan-outs not yet expanded (the run is stopping): each
    /// becomes a skipped placeholder. Returns the placeholders.
    pub fn abandon_pending(&mut self, reason: &str) -> Vec<usize> {
        let mut created = Vec::new();
        for row in 0..self.pending.len() {
            for e in std::mem::take(&mut self.pending[row]) {
                let standing = Standing::Skipped(reason.to_owned());
                self.skip_context(e.row, e.step, e.path, &standing, &mut created);
            }
        }
        created
    }
}

fn status_readiness(inst: &Inst) -> Readiness {
    match inst.standing {
        Standing::Succeeded(_) => Readiness::Ready,
        Standing::Failed => Readiness::Blocked(format!("`{}` failed", inst.id)),
        Standing::Skipped(_) => Readiness::Blocked(format!("`{}` was skipped", inst.id)),
        Standing::Unmet(_) => Readiness::Unmet(condition::dependent_reason(&inst.id.to_string())),
        Standing::Pending => Readiness::Wait,
    }
}

fn describe(v: &serde_json::Value) -> String {
    let text = v.to_string();
    if text.len() > 60 {
        format!(
            "{}…",
            &text[..text.char_indices().nth(60).map_or(text.len(), |(i, _)| i)]
        )
    } else {
        text
    }
}

/// References seen from one instance: its row, its fan-out position, its
/// item, and, for a what-if, one instance's outputs as if it had them.
struct RunScope<'g, 'p> {
    graph: &'g Graph<'p>,
    row: usize,
    /// The reader runs once per pipeline: its fan-ins read every row.
    every_row: bool,
    path: &'g [usize],
    item: Option<&'g serde_json::Value>,
    overlay: Option<(usize, &'g serde_json::Value)>,
}

impl Scope for RunScope<'_, '_> {
    fn root(&self, r: &Reference) -> Option<(serde_json::Value, usize)> {
        let plan = self.graph.plan;
        match r.context {
            Context::Steps => {
                let d = *self.graph.step_by_id.get(r.field(0)?)?;
                let rows = if self.every_row {
                    0..plan.instances.len()
                } else {
                    self.row..self.row + 1
                };
                if matches!(r.path.get(2).map(|l| &l.segment), Some(Segment::Each)) {
                    let list = self.graph.collect(rows, d, self.overlay);
                    let outputs = list.into_iter().map(|(_, v)| v).collect();
                    return Some((serde_json::Value::Array(outputs), 2));
                }
                if r.field(1) == Some("instances") {
                    let list = self.graph.collect(rows, d, self.overlay);
                    let instances = list
                        .into_iter()
                        .map(|(idx, outputs)| {
                            let inst = &self.graph.insts[idx];
                            let row = plan.instances[inst.id.row].key.clone();
                            serde_json::json!({"item": inst.item, "outputs": outputs, "row": row})
                        })
                        .collect();
                    return Some((serde_json::Value::Array(instances), 2));
                }
                let len = plan.steps[d].axis.len();
                let key = (
                    plan.home_row(d, self.row),
                    d,
                    self.path.get(..len)?.to_vec(),
                );
                let idx = *self.graph.index.get(&key)?;
                if let Some((at, outputs)) = self.overlay
                    && at == idx
                {
                    return Some((outputs.clone(), 2));
                }
                match &self.graph.insts[idx].standing {
                    Standing::Succeeded(outputs) => Some((outputs.clone(), 2)),
                    _ => None,
                }
            }
            Context::Inputs => Some((plan.inputs.get(r.field(0)?)?.clone(), 1)),
            Context::Matrix => Some((
                plan.instances
                    .get(self.row)?
                    .matrix
                    .get(r.field(0)?)?
                    .clone(),
                1,
            )),
            Context::Item => Some((self.item?.clone(), 0)),
            Context::Env => Some((crate::expr::env_value(r.field(0)?)?.into(), 1)),
        }
    }
}
