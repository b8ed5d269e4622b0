//! `jrun status --tree`: the jails drawn under what they depend on (`base`, `depends`),
//! with their mounts, services and mesh address as leaves when asked for. A jail that
//! depends on several is drawn in full under the first and named under the others.

use std::collections::{BTreeMap, BTreeSet};

use super::{Columns, JailRow, ServiceRow};

pub(super) fn render(jails: &[JailRow], services: &[ServiceRow], cols: &Columns) -> String {
    if jails.is_empty() {
        return "no jails (`jrun up <config>` deploys them)\n".into();
    }
    let names: BTreeSet<&str> = jails.iter().map(|j| j.name.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&JailRow>> = BTreeMap::new();
    let mut roots = Vec::new();
    for j in jails {
        let parents: Vec<&str> = j
            .depends
            .iter()
            .map(String::as_str)
            .filter(|d| names.contains(d) && *d != j.name)
            .collect();
        if parents.is_empty() {
            roots.push(j);
        }
        for p in parents {
            children.entry(p).or_default().push(j);
        }
    }
    let mut t = Tree {
        out: "jails\n".to_string(),
        children,
        services,
        cols,
        drawn: BTreeSet::new(),
    };
    let n = roots.len();
    for (i, j) in roots.into_iter().enumerate() {
        t.node(j, "", i + 1 == n);
    }
    t.out
}

struct Tree<'a> {
    out: String,
    children: BTreeMap<&'a str, Vec<&'a JailRow>>,
    services: &'a [ServiceRow],
    cols: &'a Columns,
    drawn: BTreeSet<String>,
}

impl<'a> Tree<'a> {
    fn node(&mut self, j: &'a JailRow, prefix: &str, last: bool) {
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        if !self.drawn.insert(j.name.clone()) {
            self.out
                .push_str(&format!("{prefix}{branch}{} (drawn above)\n", j.name));
            return;
        }
        let fwd = if j.forwards.is_empty() {
            String::new()
        } else {
            format!("  {}", j.forwards.join(","))
        };
        self.out.push_str(&format!(
            "{prefix}{branch}{}  {}  {}{fwd}\n",
            j.name, j.state, j.ip
        ));
        let child_prefix = format!("{prefix}{indent}");
        let mut leaves: Vec<String> = Vec::new();
        if self.cols.mesh {
            leaves.push(format!("mesh {}", j.mesh_address.as_deref().unwrap_or("-")));
        }
        if self.cols.mounts {
            leaves.extend(j.mounts.iter().map(|m| format!("mount {m}")));
        }
        if self.cols.services {
            leaves.extend(
                self.services
                    .iter()
                    .filter(|s| s.status.jail == j.name)
                    .map(|s| {
                        format!(
                            "service {}  {}{}",
                            s.status.name,
                            s.status.state,
                            s.status
                                .pid
                                .map_or_else(String::new, |p| format!("  pid {p}"))
                        )
                    }),
            );
        }
        let kids = self
            .children
            .get(j.name.as_str())
            .cloned()
            .unwrap_or_default();
        let total = leaves.len() + kids.len();
        for (i, leaf) in leaves.iter().enumerate() {
            let b = if i + 1 == total { "└─ " } else { "├─ " };
            self.out.push_str(&format!("{child_prefix}{b}{leaf}\n"));
        }
        let n = kids.len();
        for (i, k) in kids.into_iter().enumerate() {
            self.node(k, &child_prefix, i + 1 == n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(name: &str, depends: &[&str]) -> JailRow {
        JailRow {
            name: name.into(),
            state: "up",
            ip: "10.17.89.10".parse().unwrap(),
            forwards: vec![],
            mounts: vec![],
            depends: depends.iter().map(|d| d.to_string()).collect(),
            file: None,
            mesh_address: None,
        }
    }

    #[test]
    fn jails_hang_under_what_they_depend_on() {
        let mut web = jail("web", &["postgres", "redis"]);
        web.forwards = vec!["tcp/8080→80".into()];
        web.mounts = vec!["/srv/site→/www".into()];
        let jails = [
            jail("postgres", &[]),
            jail("redis", &[]),
            web,
            jail("worker", &["web"]),
        ];
        let cols = Columns {
            mesh: false,
            mounts: true,
            services: false,
        };
        assert_eq!(
            render(&jails, &[], &cols),
            "jails
├── postgres  up  10.17.89.10
│   └── web  up  10.17.89.10  tcp/8080→80
│       ├─ mount /srv/site→/www
│       └── worker  up  10.17.89.10
└── redis  up  10.17.89.10
    └── web (drawn above)
"
        );
    }
}
