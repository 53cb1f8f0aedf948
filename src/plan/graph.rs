//! Ordering steps: a topological order that keeps file order among steps
//! that are ready together, and the cycles that prevent one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// `deps[i]` lists the steps step `i` waits for. Returns the execution order,
/// or the cycles found (each as a list of step indices, in dependency order,
/// starting from its lowest index).
pub fn order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let n = deps.len();
    let mut waiting: Vec<usize> = vec![0; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            waiting[i] += 1;
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if out.len() == n {
        Ok(out)
    } else {
        Err(cycles(deps, &waiting))
    }
}

/// Finds distinct cycles among the steps that never became ready.
fn cycles(deps: &[Vec<usize>], waiting: &[usize]) -> Vec<Vec<usize>> {
    let stuck = |i: usize| waiting[i] > 0;
    let mut in_reported = vec![false; deps.len()];
    let mut found = Vec::new();
    for start in 0..deps.len() {
        if !stuck(start) || in_reported[start] {
            continue;
        }
        // Follow stuck dependencies from `start` until a step repeats; every
        // stuck step has at least one stuck dependency, so this terminates in a cycle.
        let mut path = vec![start];
        let mut position = vec![usize::MAX; deps.len()];
        position[start] = 0;
        let mut current = start;
        let cycle = loop {
            let Some(&next) = deps[current].iter().filter(|&&d| stuck(d)).min() else {
                break None;
            };
            if position[next] != usize::MAX {
                break Some(path[position[next]..].to_vec());
            }
            position[next] = path.len();
            path.push(next);
            current = next;
        };
        if let Some(mut cycle) = cycle {
            if cycle.iter().any(|&i| in_reported[i]) {
                continue;
            }
            for &i in &cycle {
                in_reported[i] = true;
            }
            let lowest = cycle
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(p, _)| p);
            cycle.rotate_left(lowest);
            found.push(cycle);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_file_order_among_ready_steps() {
        // 0 <- 2, 1 independent, 3 <- 0
        let deps = vec![vec![], vec![], vec![0], vec![0]];
        assert_eq!(order(&deps), Ok(vec![0, 1, 2, 3]));
        let deps = vec![vec![2], vec![], vec![]];
        assert_eq!(order(&deps), Ok(vec![1, 2, 0]));
    }

    #[test]
    fn reports_each_cycle_with_its_path() {
        // 0 -> 1 -> 2 -> 0, and 3 -> 3, and 4 depends on the cycle only.
        let deps = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        assert_eq!(order(&deps), Err(vec![vec![0, 1, 2], vec![3]]));
    }

    proptest! {
        #[test]
        fn order_respects_every_edge_or_reports_a_real_cycle(
            edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30)
        ) {
            let n = 12;
            let mut deps = vec![Vec::new(); n];
            for (a, b) in edges { deps[a].push(b); }
            match order(&deps) {
                Ok(seq) => {
                    prop_assert_eq!(seq.len(), n);
                    let mut pos = vec![0; n];
                    for (p, &i) in seq.iter().enumerate() { pos[i] = p; }
                    for (i, ds) in deps.iter().enumerate() {
                        for &d in ds { prop_assert!(pos[d] < pos[i]); }
                    }
                }
                Err(cycles) => {
                    prop_assert!(!cycles.is_empty());
                    for c in cycles {
                        for k in 0..c.len() {
                            let (a, b) = (c[k], c[(k + 1) % c.len()]);
                            prop_assert!(deps[a].contains(&b), "{:?} is not a cycle", c);
                        }
                    }
                }
            }
        }
    }
}
