//! Dependency order over `base` and `depends`: topological, stable, cycles named.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, Jail, JailName};

/// Why jails cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("jail {jail} {via} {missing}, but the config has no jail {missing}; declare it or remove the reference")]
    UnknownDependency {
        jail: JailName,
        /// `"depends on"` or `"is cloned from (base)"`.
        via: &'static str,
        missing: JailName,
    },
    #[error("jails depend on each other in a cycle (each needs the next): {}; break it by removing one `depends` or `base`", render_cycle(.0))]
    Cycle(Vec<JailName>),
    #[error("there is no jail {0} in the config")]
    UnknownJail(JailName),
}

fn render_cycle(cycle: &[JailName]) -> String {
    let mut names: Vec<&str> = cycle.iter().map(|j| j.as_str()).collect();
    if let Some(first) = names.first().copied() {
        names.push(first);
    }
    names.join(" -> ")
}

/// What `jail` needs before it: its `base`, then its `depends`, without repeats.
pub fn dependencies(jail: &Jail) -> impl Iterator<Item = (&'static str, &JailName)> {
    let base = jail.base.iter().map(|b| ("is cloned from (base)", b));
    let deps = jail.depends.iter().map(|d| ("depends on", d));
    base.chain(deps)
}

/// Every jail of `config`, dependencies first. Among jails free to go, the one declared
/// first goes first, so the order only changes when the config does.
pub fn dependency_order(config: &Config) -> Result<Vec<&Jail>, OrderError> {
    let index: BTreeMap<&JailName, usize> = config
        .jails
        .iter()
        .enumerate()
        .map(|(i, j)| (&j.name, i))
        .collect();
    let n = config.jails.len();
    // edges[d] lists the jails waiting for d; waiting[j] counts j's unmet dependencies.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting = vec![0usize; n];
    for (i, jail) in config.jails.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for (via, dep) in dependencies(jail) {
            let &d = index
                .get(dep)
                .ok_or_else(|| OrderError::UnknownDependency {
                    jail: jail.name.clone(),
                    via,
                    missing: dep.clone(),
                })?;
            if seen.insert(d) {
                edges[d].push(i);
                waiting[i] += 1;
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(&config.jails[i]);
        for &next in &edges[i] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.insert(next);
            }
        }
    }
    if order.len() < n {
        return Err(OrderError::Cycle(find_cycle(config, &index, &waiting)));
    }
    Ok(order)
}

/// A cycle among the jails Kahn's algorithm could not place (`waiting > 0`): walk
/// unmet dependencies from the first such jail until a jail repeats.
fn find_cycle(
    config: &Config,
    index: &BTreeMap<&JailName, usize>,
    waiting: &[usize],
) -> Vec<JailName> {
    let stuck = |i: usize| waiting[i] > 0;
    let start = (0..waiting.len())
        .find(|&i| stuck(i))
        .expect("a stuck jail");
    let mut path: Vec<usize> = vec![start];
    let mut at = start;
    loop {
        let next = dependencies(&config.jails[at])
            .map(|(_, d)| index[d])
            .find(|&d| stuck(d))
            .expect("a stuck jail waits for another stuck jail");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            // Each jail of `path` needs the next one.
            return path[pos..]
                .iter()
                .map(|&i| config.jails[i].name.clone())
                .collect();
        }
        path.push(next);
        at = next;
    }
}

/// The named jails plus everything they depend on, transitively.
pub fn with_dependencies(
    config: &Config,
    names: &[JailName],
) -> Result<BTreeSet<JailName>, OrderError> {
    let mut scope = BTreeSet::new();
    let mut todo: Vec<&JailName> = names.iter().collect();
    while let Some(name) = todo.pop() {
        let jail = config
            .jail(name.as_str())
            .ok_or_else(|| OrderError::UnknownJail(name.clone()))?;
        if scope.insert(name.clone()) {
            todo.extend(dependencies(jail).map(|(_, d)| d));
        }
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{config, jail, JailExt};

    fn names(order: &[&Jail]) -> Vec<String> {
        order.iter().map(|j| j.name.to_string()).collect()
    }

    #[test]
    fn dependencies_first_declaration_order_otherwise() {
        let cfg = config(vec![
            jail("web").depends(&["db", "cache"]),
            jail("db"),
            jail("worker").base("web"),
            jail("cache"),
        ]);
        assert_eq!(
            names(&dependency_order(&cfg).unwrap()),
            ["db", "cache", "web", "worker"]
        );
    }

    #[test]
    fn cycles_are_named() {
        let cfg = config(vec![
            jail("a").depends(&["b"]),
            jail("b").depends(&["c"]),
            jail("c").base("a"),
            jail("d"),
        ]);
        let err = dependency_order(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jails depend on each other in a cycle (each needs the next): a -> b -> c -> a; \
             break it by removing one `depends` or `base`"
        );
        let selfish = config(vec![jail("a").depends(&["a"])]);
        assert_eq!(
            dependency_order(&selfish).unwrap_err(),
            OrderError::Cycle(vec![JailName::new("a").unwrap()])
        );
    }

    #[test]
    fn unknown_dependency_is_named() {
        let cfg = config(vec![jail("web").depends(&["db"])]);
        assert_eq!(
            dependency_order(&cfg).unwrap_err().to_string(),
            "jail web depends on db, but the config has no jail db; declare it or remove the reference"
        );
    }

    #[test]
    fn closure_follows_base_and_depends() {
        let cfg = config(vec![
            jail("web").depends(&["db"]),
            jail("db").base("tmpl"),
            jail("tmpl"),
            jail("other"),
        ]);
        let scope = with_dependencies(&cfg, &[JailName::new("web").unwrap()]).unwrap();
        let got: Vec<&str> = scope.iter().map(|j| j.as_str()).collect();
        assert_eq!(got, ["db", "tmpl", "web"]);
        assert!(matches!(
            with_dependencies(&cfg, &[JailName::new("nope").unwrap()]),
            Err(OrderError::UnknownJail(_))
        ));
    }
}
