//! Properties of the deploy order over random dependency graphs, checked against the
//! loader: acyclic files load and deploy dependencies first; cyclic files are refused.

use std::fmt::Write as _;
use std::path::Path;

use jrun_core::config::{self, dependency_order, ErrorKind};
use proptest::prelude::*;

/// A file of `n` jails; jail `i` depends on the jails of `deps[i]` (by index).
fn file(deps: &[Vec<usize>]) -> String {
    let mut s = String::new();
    for (i, d) in deps.iter().enumerate() {
        let names: Vec<String> = d.iter().map(|j| format!("\"j{j}\"")).collect();
        let _ = writeln!(s, "jail \"j{i}\" {{ depends [{}] }}", names.join(", "));
    }
    s
}

/// Whether the graph has a cycle, by Kahn's algorithm (an independent oracle).
fn has_cycle(deps: &[Vec<usize>]) -> bool {
    let n = deps.len();
    let mut pending: Vec<usize> = deps
        .iter()
        .map(|d| {
            let mut d = d.clone();
            d.sort_unstable();
            d.dedup();
            d.len()
        })
        .collect();
    let mut done = vec![false; n];
    let mut progress = true;
    while progress {
        progress = false;
        for i in 0..n {
            if !done[i] && pending[i] == 0 {
                done[i] = true;
                progress = true;
                for (j, d) in deps.iter().enumerate() {
                    let mut d = d.clone();
                    d.sort_unstable();
                    d.dedup();
                    if d.contains(&i) {
                        pending[j] -= 1;
                    }
                }
            }
        }
    }
    done.iter().any(|d| !d)
}

fn graph() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..9).prop_flat_map(|n| prop::collection::vec(prop::collection::vec(0..n, 0..4), n))
}

proptest! {
    #[test]
    fn order_respects_every_dependency(deps in graph()) {
        let src = file(&deps);
        let loaded = config::load_str(Path::new("/tmp/order.ucl"), &src, 2222);
        match loaded {
            Ok(l) => {
                prop_assert!(!has_cycle(&deps));
                let order: Vec<String> =
                    dependency_order(&l.config).into_iter().map(String::from).collect();
                prop_assert_eq!(order.len(), deps.len());
                let pos = |j: usize| order.iter().position(|n| *n == format!("j{j}")).unwrap();
                for (i, d) in deps.iter().enumerate() {
                    for &j in d {
                        prop_assert!(pos(j) < pos(i), "j{} must come before j{}", j, i);
                    }
                }
            }
            Err(e) => {
                prop_assert!(has_cycle(&deps), "{}", e.render_plain(100));
                prop_assert!(e.items().iter().all(|i| i.kind == ErrorKind::Cycle));
                for item in e.items() {
                    // "dependency cycle: j1 -> j2 -> j1": closed, and every step an edge.
                    let names: Vec<usize> = item.message["dependency cycle: ".len()..]
                        .split(" -> ")
                        .map(|n| n[1..].parse().unwrap())
                        .collect();
                    prop_assert_eq!(names.first(), names.last());
                    for w in names.windows(2) {
                        prop_assert!(deps[w[0]].contains(&w[1]));
                    }
                }
            }
        }
    }
}
