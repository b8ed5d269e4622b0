//! The order jails are deployed in: each after the jails it depends on (`depends`) and
//! the jail it is cloned from (`base`); otherwise in file order.

use super::model::{Config, JailName};

/// The jails of `config`, each after everything it depends on.
///
/// Stable: a jail comes as early as its dependencies allow, in file order, with the jails it
/// needs pulled in just before it (so `web depends [db]; db; cache` gives `db, web, cache`).
/// A config from [`load`](super::load) has no cycles; in a hand-built one the edge that
/// would close a cycle is ignored, and names of jails outside the config are skipped.
pub fn dependency_order(config: &Config) -> Vec<JailName> {
    let graph = Graph::of(config);
    let mut state = vec![Mark::New; graph.deps.len()];
    let mut out = Vec::with_capacity(graph.deps.len());
    for i in 0..graph.deps.len() {
        visit(&graph, i, &mut state, &mut out);
    }
    out.into_iter()
        .map(|i| config.jails[i].name.clone())
        .collect()
}

/// Every dependency cycle, each as the jail indexes along it with the first repeated at
/// the end (`[a, b, a]`), each cycle reported once.
pub(crate) fn find_cycles(config: &Config) -> Vec<Vec<usize>> {
    let graph = Graph::of(config);
    let mut state = vec![Mark::New; graph.deps.len()];
    let mut stack = Vec::new();
    let mut found: Vec<Vec<usize>> = Vec::new();
    for i in 0..graph.deps.len() {
        cycles_from(&graph, i, &mut state, &mut stack, &mut found);
    }
    found
}

/// Edges by jail index, each list in file order.
struct Graph {
    deps: Vec<Vec<usize>>,
}

impl Graph {
    fn of(config: &Config) -> Self {
        let index = |name: &JailName| config.jails.iter().position(|j| &j.name == name);
        let deps = config
            .jails
            .iter()
            .map(|j| {
                let mut d: Vec<usize> = j
                    .base
                    .iter()
                    .chain(j.depends.iter())
                    .filter_map(index)
                    .collect();
                d.sort_unstable();
                d.dedup();
                d
            })
            .collect();
        Graph { deps }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    Open,
    Done,
}

fn visit(g: &Graph, i: usize, state: &mut [Mark], out: &mut Vec<usize>) {
    if state[i] != Mark::New {
        return;
    }
    state[i] = Mark::Open;
    for &d in &g.deps[i] {
        visit(g, d, state, out);
    }
    state[i] = Mark::Done;
    out.push(i);
}

fn cycles_from(
    g: &Graph,
    i: usize,
    state: &mut [Mark],
    stack: &mut Vec<usize>,
    found: &mut Vec<Vec<usize>>,
) {
    match state[i] {
        Mark::Done => return,
        Mark::Open => {
            let start = stack.iter().rposition(|&s| s == i).unwrap_or(0);
            let mut cycle: Vec<usize> = stack[start..].to_vec();
            // One cycle may be entered from different jails; report it once, starting at
            // the jail that comes first in the file.
            let min = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
            cycle.rotate_left(min);
            cycle.push(cycle[0]);
            if !found.contains(&cycle) {
                found.push(cycle);
            }
            return;
        }
        Mark::New => {}
    }
    state[i] = Mark::Open;
    stack.push(i);
    for &d in &g.deps[i] {
        cycles_from(g, d, state, stack, found);
    }
    stack.pop();
    state[i] = Mark::Done;
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::Jail;

    fn jail(name: &str, base: Option<&str>, depends: &[&str]) -> Jail {
        Jail {
            name: JailName::new(name).unwrap(),
            release: None,
            ip: None,
            base: base.map(|b| JailName::new(b).unwrap()),
            depends: depends.iter().map(|d| JailName::new(*d).unwrap()).collect(),
            mounts: vec![],
            forwards: vec![],
            execs: vec![],
            setup: vec![],
            mesh_allow: None,
        }
    }

    fn config(jails: Vec<Jail>) -> Config {
        Config {
            path: PathBuf::from("/x.ucl"),
            base: None,
            jails,
        }
    }

    fn names(v: Vec<JailName>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn independents_keep_file_order() {
        let c = config(vec![
            jail("c", None, &[]),
            jail("a", None, &[]),
            jail("b", None, &[]),
        ]);
        assert_eq!(names(dependency_order(&c)), ["c", "a", "b"]);
    }

    #[test]
    fn dependencies_come_first() {
        let c = config(vec![
            jail("web", Some("python"), &["db", "cache"]),
            jail("db", None, &[]),
            jail("cache", None, &["db"]),
            jail("python", None, &[]),
            jail("tools", None, &[]),
        ]);
        assert_eq!(
            names(dependency_order(&c)),
            ["db", "cache", "python", "web", "tools"]
        );
    }

    #[test]
    fn finds_each_cycle_once() {
        let c = config(vec![
            jail("a", None, &["b"]),
            jail("b", None, &["a"]),
            jail("c", Some("c"), &[]),
            jail("d", None, &["e"]),
            jail("e", None, &["f"]),
            jail("f", Some("d"), &[]),
        ]);
        assert_eq!(
            find_cycles(&c),
            [vec![0, 1, 0], vec![2, 2], vec![3, 4, 5, 3]]
        );
        // The order still lists every jail once.
        assert_eq!(dependency_order(&c).len(), 6);
    }

    #[test]
    fn acyclic_configs_have_no_cycles() {
        let c = config(vec![jail("a", None, &["b"]), jail("b", None, &[])]);
        assert!(find_cycles(&c).is_empty());
    }
}
