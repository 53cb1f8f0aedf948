//! `--select` / `--exclude`: which steps and matrix rows a plan or run covers.
//!
//! A selector names a step id or a matrix key; `step:ID` and `key:KEY` say
//! which when a name is both. Selected steps pull in the steps they depend
//! on (reused or run as needed); excluded steps are never paid for, so a
//! selected step that needs one can only use an earlier run's result.

use std::collections::BTreeSet;

use super::{Plan, Scope};

/// What the selectors of one command line picked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub select: Vec<String>,
    pub exclude: Vec<String>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.select.is_empty() && self.exclude.is_empty()
    }
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

/// Narrows `plan` to the selection: drops unselected matrix rows and sets
/// each step's scope. Errors name the selector that matched nothing.
pub fn apply(plan: &mut Plan, selection: &Selection) -> Result<(), String> {
    if selection.is_empty() {
        return Ok(());
    }
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
}
