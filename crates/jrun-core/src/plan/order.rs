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

/// Every jail of `config`, dependencies first: each jail in file order, with the jails
/// it needs pulled in just before it — the same order as
/// [`crate::config::dependency_order`], but refusing cycles and unknown names.
pub fn dependency_order(config: &Config) -> Result<Vec<&Jail>, OrderError> {
    let index: BTreeMap<&JailName, usize> = config
        .jails
        .iter()
        .enumerate()
        .map(|(i, j)| (&j.name, i))
        .collect();
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(config.jails.len());
    for jail in &config.jails {
        let mut d = Vec::new();
        for (via, dep) in dependencies(jail) {
            let &i = index
                .get(dep)
                .ok_or_else(|| OrderError::UnknownDependency {
                    jail: jail.name.clone(),
                    via,
                    missing: dep.clone(),
                })?;
            d.push(i);
        }
        d.sort_unstable();
        d.dedup();
        deps.push(d);
    }
    let mut walk = Walk {
        deps: &deps,
        mark: vec![Mark::New; deps.len()],
        stack: Vec::new(),
        out: Vec::with_capacity(deps.len()),
    };
    for i in 0..deps.len() {
        if let Err(cycle) = walk.visit(i) {
            return Err(OrderError::Cycle(
                cycle
                    .into_iter()
                    .map(|i| config.jails[i].name.clone())
                    .collect(),
            ));
        }
    }
    Ok(walk.out.into_iter().map(|i| &config.jails[i]).collect())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    New,
    Open,
    Done,
}

/// A depth-first walk over "needs" edges; post-order puts dependencies first.
struct Walk<'a> {
    deps: &'a [Vec<usize>],
    mark: Vec<Mark>,
    stack: Vec<usize>,
    out: Vec<usize>,
}

impl Walk<'_> {
    /// Places `i` after everything it needs, or returns the cycle found (each jail
    /// needs the next; it starts at the one declared first).
    fn visit(&mut self, i: usize) -> Result<(), Vec<usize>> {
        match self.mark[i] {
            Mark::Done => return Ok(()),
            Mark::Open => {
                let at = self.stack.iter().rposition(|&s| s == i).unwrap_or(0);
                let mut cycle = self.stack[at..].to_vec();
                let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
                cycle.rotate_left(first);
                return Err(cycle);
            }
            Mark::New => {}
        }
        self.mark[i] = Mark::Open;
        self.stack.push(i);
        for k in 0..self.deps[i].len() {
            self.visit(self.deps[i][k])?;
        }
        self.stack.pop();
        self.mark[i] = Mark::Done;
        self.out.push(i);
        Ok(())
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

/// `items` (each standing for a jail, dependencies first, as a plan lists them) by
/// dependency level, each level in the order given: a jail's level is one more than the
/// highest level among `items` of the jails it needs (its `base` and `depends`), so the
/// jails of one level need none of each other and can be deployed side by side.
pub fn levels<T>(items: &[T], jail: impl Fn(&T) -> &Jail) -> Vec<Vec<&T>> {
    let mut level_of: BTreeMap<&JailName, usize> = BTreeMap::new();
    let mut levels: Vec<Vec<&T>> = Vec::new();
    for item in items {
        let j = jail(item);
        let level = dependencies(j)
            .filter_map(|(_, dep)| level_of.get(dep).map(|l| l + 1))
            .max()
            .unwrap_or(0);
        level_of.insert(&j.name, level);
        if levels.len() <= level {
            levels.resize_with(level + 1, Vec::new);
        }
        levels[level].push(item);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testing::{config, jail, JailExt};

    fn names(order: &[&Jail]) -> Vec<String> {
        order.iter().map(|j| j.name.to_string()).collect()
    }

    #[test]
    fn levels_put_a_jail_one_above_the_highest_it_needs() {
        // db and cache need nothing; web needs db; api is cloned from web and needs cache;
        // lone needs nothing (level 0 although it comes last).
        let jails = vec![
            jail("db"),
            jail("cache"),
            jail("web").depends(&["db"]),
            jail("api").base("web").depends(&["cache"]),
            jail("lone"),
        ];
        let got: Vec<Vec<String>> = levels(&jails, |j| j)
            .iter()
            .map(|level| names(level))
            .collect();
        assert_eq!(got, [vec!["db", "cache", "lone"], vec!["web"], vec!["api"]]);
        assert!(levels(&[] as &[Jail], |j| j).is_empty());
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
        // Pulled in just before the jail that needs them, like `jrun validate` shows.
        let cfg = config(vec![
            jail("web").depends(&["db"]),
            jail("cache"),
            jail("db"),
        ]);
        let order = dependency_order(&cfg).unwrap();
        assert_eq!(names(&order), ["db", "web", "cache"]);
        let theirs: Vec<String> = crate::config::dependency_order(&cfg)
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names(&order), theirs);
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
