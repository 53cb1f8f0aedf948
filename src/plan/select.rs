//! `--select` / `--exclude`: which steps and matrix rows a plan or run covers.
//!
//! A selector names a step id or a matrix key; `step:ID` and `key:KEY` say
//! which when a name is both. Selected steps pull in the steps they depend
//! on (reused or run as needed); excluded steps are never paid for, so a
//! selected step that needs one can only use an earlier run's result.

use std::collections::BTreeSet;

use super::{Plan, Scope};
use crate::journal::Shard;

/// What the selectors of one command line picked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub select: Vec<String>,
    pub exclude: Vec<String>,
    /// `--shard K/N`: only the matrix rows whose key falls to shard K.
    pub shard: Option<Shard>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.select.is_empty() && self.exclude.is_empty() && self.shard.is_none()
    }
}

/// Keeps the matrix rows of `shard`. A step run once per pipeline reads
/// every row, which no shard has: such a pipeline is not split.
fn keep_shard(plan: &mut Plan, shard: Shard) -> Result<(), String> {
    if let Some(step) = plan.steps.iter().find(|s| s.per_pipeline) {
        return Err(format!(
            "`--shard {shard}`: step `{}` of `{}` runs once per pipeline (`per: pipeline`) and so belongs to no single shard; run the pipeline without `--shard`, or move that step to a pipeline of its own run after the shards",
            step.id, plan.name
        ));
    }
    if plan.instances.iter().any(|i| i.key.is_none()) {
        return Err(format!(
            "`--shard {shard}` splits matrix rows, and `{}` has no matrix; run it without `--shard`",
            plan.name
        ));
    }
    // A shard may get no row (fewer rows than shards, or the hash put
    // none there): it runs nothing and succeeds, so a CI matrix stays green.
    plan.instances
        .retain(|i| i.key.as_deref().is_some_and(|k| shard.owns(k)));
    Ok(())
}

enum Target {
    Step(usize),
    Row(String),
}

fn target(plan: &Plan, raw: &str, flag: &str) -> Result<Target, String> {
    let (kind, name) = match raw.split_once(':') {
        Some(("step", n)) => (Some("step"), n),
        Some(("key", n)) => (Some("key"), n),
        _ => (None, raw),
    };
    let step = plan.steps.iter().position(|s| s.id == name);
    let row = plan
        .instances
        .iter()
        .any(|i| i.key.as_deref() == Some(name));
    match (kind, step, row) {
        (Some("step") | None, Some(s), false) | (Some("step"), Some(s), true) => {
            Ok(Target::Step(s))
        }
        (Some("key") | None, None, true) | (Some("key"), Some(_), true) => {
            Ok(Target::Row(name.to_owned()))
        }
        (None, Some(_), true) => Err(format!(
            "`{flag} {raw}` names both a step and a matrix key; write `{flag} step:{raw}` or `{flag} key:{raw}`"
        )),
        _ => {
            let mut names: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            names.extend(plan.instances.iter().filter_map(|i| i.key.as_deref()));
            let hint = crate::suggest::did_you_mean(name, names.iter().copied())
                .map(|n| format!("did you mean `{n}`? "))
                .unwrap_or_default();
            Err(format!(
                "`{flag} {raw}` names no step and no matrix key of `{}`; {hint}steps: {}",
                plan.name,
                plan.steps
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// Narrows `plan` to the selection: drops unselected matrix rows (and
/// those of other shards) and sets each step's scope. Errors name the
/// selector that matched nothing. `plan` and `run` both narrow here, so they
/// cover the same rows.
pub fn apply(plan: &mut Plan, selection: &Selection) -> Result<(), String> {
    if !(selection.select.is_empty() && selection.exclude.is_empty()) {
        narrow(plan, selection)?;
    }
    if let Some(shard) = selection.shard {
        keep_shard(plan, shard)?;
    }
    Ok(())
}

/// `--select` / `--exclude`.
fn narrow(plan: &mut Plan, selection: &Selection) -> Result<(), String> {
    let split =
        |list: &[String], flag: &str| -> Result<(BTreeSet<usize>, BTreeSet<String>), String> {
            let mut steps = BTreeSet::new();
            let mut rows = BTreeSet::new();
            for raw in list.iter().flat_map(|l| l.split(',')).map(str::trim) {
                if raw.is_empty() {
                    continue;
                }
                match target(plan, raw, flag)? {
                    Target::Step(s) => {
                        steps.insert(s);
                    }
                    Target::Row(k) => {
                        rows.insert(k);
                    }
                }
            }
            Ok((steps, rows))
        };
    let (sel_steps, sel_rows) = split(&selection.select, "--select")?;
    let (ex_steps, ex_rows) = split(&selection.exclude, "--exclude")?;
    plan.instances.retain(|i| {
        let key = i.key.as_deref().unwrap_or_default();
        (sel_rows.is_empty() || sel_rows.contains(key)) && !ex_rows.contains(key)
    });
    if plan.instances.is_empty() {
        return Err("the selection leaves no matrix row to run".to_owned());
    }
    let n = plan.steps.len();
    let chosen: Vec<bool> = (0..n)
        .map(|s| (sel_steps.is_empty() || sel_steps.contains(&s)) && !ex_steps.contains(&s))
        .collect();
    // Steps come dependencies first, so one backward pass settles every
    // step after all the steps that need it. A step only reuse-only steps
    // need is reuse-only too: paying for it would give the reuse-only step
    // new inputs, which no earlier result can match.
    let mut paid_for = vec![false; n];
    let mut reused_for = vec![false; n];
    for s in (0..n).rev() {
        let scope = match (chosen[s], paid_for[s], reused_for[s], ex_steps.contains(&s)) {
            (true, ..) => Scope::Run,
            (false, false, false, _) => Scope::Out,
            (false, _, _, true) | (false, false, true, false) => Scope::ReuseOnly,
            (false, true, _, false) => Scope::Needed,
        };
        // A reuse-only step's `needs` (order only) do not change its request,
        // so they are run as before; what it reads is only reused.
        let step = &plan.steps[s];
        for &d in &step.deps {
            match scope {
                Scope::Run | Scope::Needed => paid_for[d] = true,
                Scope::ReuseOnly if step.data_deps.contains(&d) => reused_for[d] = true,
                Scope::ReuseOnly => paid_for[d] = true,
                Scope::Out => {}
            }
        }
        plan.steps[s].scope = scope;
    }
    if plan.steps.iter().all(|s| s.scope == Scope::Out) {
        return Err("the selection leaves no step to run".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn plan() -> Plan {
        let text = "version: 1\nname: t\nmatrix:\n  key: id\n  rows:\n    - { id: rain, p: a }\n    - { id: sun, p: b }\nsteps:\n  gen:\n    action: create\n    with: { custom_mode: false, gpt_description_prompt: \"${{ matrix.p }}\", mv: sonic-v4-5 }\n  wav:\n    action: wav\n    with: { clip: \"${{ steps.gen.outputs.clips[0].clip_id }}\" }\n  lyr:\n    action: lyrics\n    with: { description: \"${{ matrix.p }}\" }\n  ext:\n    action: extend\n    needs: [lyr]\n    with: { clip: \"${{ steps.gen.outputs.clips[0].clip_id }}\", continue_at: 30, custom_mode: false, gpt_description_prompt: more, mv: sonic-v4-5 }\n  cat:\n    action: concat\n    with: { clip: \"${{ steps.ext.outputs.clip_id }}\" }\n";
        crate::plan::from_yaml(text)
    }

    fn scopes(select: &[&str], exclude: &[&str]) -> Result<(Vec<Scope>, Vec<String>), String> {
        let mut p = plan();
        let sel = Selection {
            select: select.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            shard: None,
        };
        apply(&mut p, &sel)?;
        let rows = p.instances.iter().filter_map(|i| i.key.clone()).collect();
        Ok((p.steps.iter().map(|s| s.scope).collect(), rows))
    }

    #[test]
    fn selection_table() {
        use Scope::*;
        type Want<'a> = Result<(&'a [Scope], &'a [&'a str]), &'a str>;
        let cases: &[(&[&str], &[&str], Want)] = &[
            // Scopes of gen, wav, lyr, ext, cat (gen → wav, gen → ext → cat).
            (&[], &[], Ok((&[Run, Run, Run, Run, Run], &["rain", "sun"]))),
            (
                &["wav"],
                &[],
                Ok((&[Needed, Run, Out, Out, Out], &["rain", "sun"])),
            ),
            (
                &["wav"],
                &["gen"],
                Ok((&[ReuseOnly, Run, Out, Out, Out], &["rain", "sun"])),
            ),
            (&["sun"], &[], Ok((&[Run, Run, Run, Run, Run], &["sun"]))),
            (
                &["wav,rain"],
                &[],
                Ok((&[Needed, Run, Out, Out, Out], &["rain"])),
            ),
            (
                &[],
                &["lyr", "key:sun"],
                Ok((&[Run, Run, ReuseOnly, Run, Run], &["rain"])),
            ),
            (
                &["step:gen"],
                &[],
                Ok((&[Run, Out, Out, Out, Out], &["rain", "sun"])),
            ),
            (
                &["cat"],
                &[],
                Ok((&[Needed, Out, Needed, Needed, Run], &["rain", "sun"])),
            ),
            // What only an excluded step reads is reused or left alone,
            // never paid for; its `needs` (order only) still run.
            (
                &["cat"],
                &["ext"],
                Ok((&[ReuseOnly, Out, Needed, ReuseOnly, Run], &["rain", "sun"])),
            ),
            // Unless a step that runs needs it too.
            (
                &["cat", "wav"],
                &["ext"],
                Ok((&[Needed, Run, Needed, ReuseOnly, Run], &["rain", "sun"])),
            ),
            (&["wavs"], &[], Err("did you mean `wav`")),
            (&[], &["rain", "sun"], Err("no matrix row")),
            (&[], &["gen", "wav", "lyr", "ext", "cat"], Err("no step")),
        ];
        for (select, exclude, want) in cases {
            let got = scopes(select, exclude);
            match (want, &got) {
                (Ok((s, r)), Ok((gs, gr))) => {
                    assert_eq!(
                        (
                            s.to_vec(),
                            r.iter().map(|x| x.to_string()).collect::<Vec<_>>()
                        ),
                        (gs.clone(), gr.clone()),
                        "{select:?} {exclude:?}"
                    )
                }
                (Err(part), Err(msg)) => assert!(msg.contains(part), "{msg}"),
                _ => panic!("{select:?} {exclude:?}: {got:?}"),
            }
        }
    }

    fn rows_of(text: &str, shard: Shard) -> Result<Vec<String>, String> {
        let mut p = crate::plan::from_yaml(text);
        let sel = Selection {
            shard: Some(shard),
            ..Selection::default()
        };
        apply(&mut p, &sel)?;
        Ok(p.instances.iter().filter_map(|i| i.key.clone()).collect())
    }

    fn matrix_of(keys: &[&str]) -> String {
        let rows: String = keys
            .iter()
            .map(|k| format!("    - {{ id: {k}, p: {k} }}\n"))
            .collect();
        format!(
            "version: 1\nname: t\nmatrix:\n  key: id\n  rows:\n{rows}steps:\n  lyr:\n    action: lyrics\n    with: {{ description: \"${{{{ matrix.p }}}}\" }}\n"
        )
    }

    #[test]
    fn shards_cover_every_row_once_and_keep_their_rows_when_rows_are_added() {
        let keys: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let text = matrix_of(&refs);
        let shards: Vec<Vec<String>> = (1..=3)
            .map(|index| rows_of(&text, Shard { index, count: 3 }).unwrap())
            .collect();
        let mut all: Vec<String> = shards.concat();
        all.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(all, want, "every row in exactly one shard");
        // New rows, first and in the middle: the old rows stay where they were.
        let mut more = refs.clone();
        more.insert(0, "new0");
        more.insert(20, "new1");
        let text = matrix_of(&more);
        for (k, before) in shards.iter().enumerate() {
            let index = u32::try_from(k + 1).unwrap();
            let after = rows_of(&text, Shard { index, count: 3 }).unwrap();
            let kept: Vec<&String> = after.iter().filter(|r| !r.starts_with("new")).collect();
            assert_eq!(kept, before.iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_shard_needs_a_matrix_and_no_step_over_every_row() {
        let one = Shard { index: 1, count: 2 };
        let plain = "version: 1\nname: t\nsteps:\n  lyr:\n    action: lyrics\n    with: { description: x }\n";
        assert!(rows_of(plain, one).unwrap_err().contains("has no matrix"));
        let e = rows_of(&matrix_of(&["a"]), Shard { index: 1, count: 1 });
        assert_eq!(e, Ok(vec!["a".to_owned()]));
        let once = format!(
            "{}  all:\n    action: lyrics\n    per: pipeline\n    with: {{ description: y }}\n",
            matrix_of(&["a", "b"])
        );
        let e = rows_of(&once, one).unwrap_err();
        assert!(
            e.contains("step `all`") && e.contains("without `--shard`"),
            "{e}"
        );
    }
}
