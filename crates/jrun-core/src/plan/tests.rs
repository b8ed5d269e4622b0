//! Planner scenarios: what each kind of change plans, and why.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use jrun_mesh::{DnsLabel, PairCode, YggAddress};

use super::testing::{config, jail, name, JailExt};
use super::*;
use crate::config::{Base, BaseForward, Exec, Forward, Jail, Mount, Proto};
use crate::net::{DnsName, RecordData};
use crate::state::{MeshPeer, PairDirection, RemoteJail};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 17, 89, last)
}

fn fwd(n: &str, host: u16, to: u16) -> Forward {
    Forward {
        name: n.into(),
        proto: Proto::Tcp,
        host,
        jail: to,
    }
}

fn exec(n: &str, cmd: &str) -> Exec {
    Exec {
        name: n.into(),
        cmd: cmd.into(),
        dir: None,
        env: Default::default(),
        healthcheck: None,
        user: None,
    }
}

fn with(mut j: Jail, f: impl FnOnce(&mut Jail)) -> Jail {
    f(&mut j);
    j
}

fn stack() -> Config {
    config(vec![
        with(jail("web").depends(&["db"]), |j| {
            j.forwards.push(fwd("http", 8080, 80));
            j.execs.push(exec("app", "./serve"));
        }),
        jail("db"),
    ])
}

fn plan_of(cfg: &Config, state: &State) -> Plan {
    plan(cfg, state, &Probe::default(), &Options::default()).unwrap()
}

/// The state after `cfg` was fully deployed.
fn deployed(cfg: &Config) -> State {
    let mut state = State::default();
    plan_of(cfg, &state).apply_to(&mut state);
    state
}

fn ops(p: &Plan, jail: &str) -> Vec<(Op, Reason)> {
    p.jail(jail)
        .unwrap()
        .actions
        .iter()
        .map(|a| (a.op.clone(), a.reason.clone()))
        .collect()
}

#[test]
fn first_deploy_creates_in_order() {
    let p = plan_of(&stack(), &State::default());
    let order: Vec<&str> = p.jails.iter().map(|j| j.jail.name.as_str()).collect();
    assert_eq!(order, ["db", "web"]);
    assert_eq!(ops(&p, "db"), [(Op::Create, Reason::NewJail)]);
    // db comes first in dependency order, but addresses follow the file.
    assert_eq!(p.jail("web").unwrap().ip, ip(10));
    assert_eq!(p.jail("db").unwrap().ip, ip(11));
    assert_eq!(p.forwards.added.len(), 1);
    assert_eq!(p.vm_firewall.redirects[0].jail_ip, ip(10));
    assert!(p.dns_changed);
    assert_eq!(p.dns.local().count(), 2);
    assert_eq!(p.summary().create, 2);
}

#[test]
fn unchanged_stack_plans_nothing() {
    let cfg = stack();
    let p = plan_of(&cfg, &deployed(&cfg));
    assert!(p.is_empty());
    assert_eq!(p.jails.len(), 2, "unchanged jails still carry their wiring");
    assert_eq!(
        p.render_text(),
        "Nothing to do: 2 jails already match the config.\n"
    );
}

#[test]
fn a_forward_added_is_one_action() {
    let cfg = stack();
    let state = deployed(&cfg);
    let mut cfg2 = cfg.clone();
    cfg2.jails[0].forwards.push(fwd("admin", 9090, 81));
    let p = plan_of(&cfg2, &state);
    let added = p.forwards.added.clone();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].host_port, 9090);
    assert_eq!(
        ops(&p, "web"),
        [(
            Op::AddForward(added[0].clone()),
            Reason::ForwardAdded {
                name: "admin".into()
            }
        )]
    );
    assert!(ops(&p, "db").is_empty());
    assert!(!p.dns_changed);
}

#[test]
fn changed_forward_and_exec() {
    let cfg = stack();
    let state = deployed(&cfg);
    let mut cfg2 = cfg.clone();
    cfg2.jails[0].forwards[0].jail = 8000;
    cfg2.jails[0].execs[0].cmd = "./serve --fast".into();
    let p = plan_of(&cfg2, &state);
    let reasons: Vec<String> = p
        .jail("web")
        .unwrap()
        .actions
        .iter()
        .map(|a| a.reason.to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "forward \"http\" changed",
            "forward \"http\" changed",
            "exec \"app\" changed"
        ]
    );
    assert!(matches!(ops(&p, "web")[0].0, Op::RemoveForward(_)));
    assert!(matches!(ops(&p, "web")[2].0, Op::RestartExec(_)));
    assert_eq!(p.forwards.removed.len(), 1);
    assert_eq!(p.forwards.added.len(), 1);
}

#[test]
fn a_jail_dropped_from_the_config_is_removed() {
    let cfg = stack();
    let state = deployed(&cfg);
    let cfg2 = config(vec![with(jail("web"), |j| {
        j.forwards.push(fwd("http", 8080, 80));
        j.execs.push(exec("app", "./serve"));
    })]);
    let p = plan_of(&cfg2, &state);
    assert_eq!(
        p.removals,
        [JailRemoval {
            name: name("db"),
            ip: ip(11),
            reason: Reason::NotInConfig
        }]
    );
    assert_eq!(ops(&p, "web"), [(Op::Record, Reason::DependsChanged)]);
    assert!(!p.dns.0.iter().any(|r| r.name == DnsName::Local(name("db"))));
    assert!(p.dns_changed);
}

#[test]
fn a_renamed_jail_is_removed_and_created_at_a_new_address() {
    let cfg = stack();
    let state = deployed(&cfg);
    let mut cfg2 = cfg.clone();
    cfg2.jails[1].name = name("postgres");
    cfg2.jails[0].depends = vec![name("postgres")];
    let p = plan_of(&cfg2, &state);
    assert_eq!(p.removals.len(), 1);
    assert_eq!(p.removals[0].name, name("db"));
    assert_eq!(ops(&p, "postgres"), [(Op::Create, Reason::NewJail)]);
    // db's address is still held until it is gone.
    assert_eq!(p.jail("postgres").unwrap().ip, ip(12));
}

#[test]
fn a_moved_static_ip_recreates_the_jail() {
    let cfg = config(vec![jail("db").ip(ip(20))]);
    let state = deployed(&cfg);
    let cfg2 = config(vec![jail("db").ip(ip(30))]);
    let p = plan_of(&cfg2, &state);
    assert_eq!(
        ops(&p, "db"),
        [(
            Op::Recreate,
            Reason::IpChanged {
                from: ip(20),
                to: ip(30)
            }
        )]
    );
    // Dropping the static keeps the address it has.
    let p = plan_of(&config(vec![jail("db")]), &state);
    assert_eq!(p.jail("db").unwrap().ip, ip(20));
    assert!(p.is_empty());
}

#[test]
fn incomplete_and_provision_redeploy() {
    let cfg = stack();
    let mut state = deployed(&cfg);
    state.jails.get_mut(&name("db")).unwrap().deployed = false;
    let p = plan_of(&cfg, &state);
    assert_eq!(
        ops(&p, "db"),
        [(Op::Recreate, Reason::IncompleteDeployment)]
    );
    assert!(ops(&p, "web").is_empty());
    let options = Options {
        provision: true,
        ..Options::default()
    };
    let p = plan(&cfg, &deployed(&cfg), &Probe::default(), &options).unwrap();
    assert!(p.jails.iter().all(|j| j.actions
        == [Action {
            op: Op::Recreate,
            reason: Reason::Provision
        }]));
}

#[test]
fn begin_then_failure_is_retried_at_the_same_address() {
    let cfg = stack();
    let mut state = State::default();
    let p = plan_of(&cfg, &state);
    // db deployed; web started but failed.
    state.begin_jail(&p.jails[0]);
    state.mark_deployed(&p.jails[0]);
    state.begin_jail(&p.jails[1]);
    let again = plan_of(&cfg, &state);
    assert!(ops(&again, "db").is_empty());
    assert_eq!(
        ops(&again, "web"),
        [(Op::Recreate, Reason::IncompleteDeployment)]
    );
    assert_eq!(again.jail("web").unwrap().ip, p.jail("web").unwrap().ip);
}

#[test]
fn only_named_jails_and_their_dependencies() {
    let cfg = config(vec![
        jail("web").depends(&["db"]),
        jail("db"),
        jail("other"),
    ]);
    let mut state = deployed(&config(vec![jail("gone")]));
    let options = Options {
        only: vec![name("web")],
        ..Options::default()
    };
    let p = plan(&cfg, &state, &Probe::default(), &options).unwrap();
    let names: Vec<&str> = p.jails.iter().map(|j| j.jail.name.as_str()).collect();
    assert_eq!(names, ["db", "web"]);
    assert!(p.removals.is_empty(), "a partial up removes nothing");
    // The untouched jail keeps its DNS name.
    assert!(p
        .dns
        .0
        .iter()
        .any(|r| r.name == DnsName::Local(name("gone"))));
    p.apply_to(&mut state);
    assert!(plan(&cfg, &state, &Probe::default(), &options)
        .unwrap()
        .is_empty());
}

fn paired(state: &mut State) -> YggAddress {
    let code: PairCode = "81-zephyr-night-climb".parse().unwrap();
    let addr: YggAddress = "200:848a:604f:bb7e:4384:65db:8db6:6895".parse().unwrap();
    state.peers.insert(
        code.clone(),
        MeshPeer {
            code,
            direction: PairDirection::Created,
            paired_at: 1_700_000_000,
            jails: vec![RemoteJail {
                name: DnsLabel::new("cache").unwrap(),
                ygg_address: addr,
            }],
            shared: None,
        },
    );
    addr
}

#[test]
fn peer_records_survive_every_kind_of_change() {
    let cfg = stack();
    let mut state = deployed(&cfg);
    let addr = paired(&mut state);
    let peer = |p: &Plan| p.dns.peers().cloned().collect::<Vec<_>>();
    // A jail removed, one added: the AAAA record stays.
    let cfg2 = config(vec![jail("web"), jail("new")]);
    let p = plan_of(&cfg2, &state);
    assert_eq!(peer(&p).len(), 1);
    assert_eq!(peer(&p)[0].data, RecordData::Aaaa(addr));
    assert_eq!(
        peer(&p)[0].name.to_string(),
        "cache.81-zephyr-night-climb.jrun"
    );
    // Every jail's firewall accepts exactly the paired addresses.
    for j in &p.jails {
        assert_eq!(
            j.firewall.mesh_peers.iter().copied().collect::<Vec<_>>(),
            [addr]
        );
    }
    // Everything removed: still there.
    assert_eq!(peer(&plan_of(&config(vec![]), &state)).len(), 1);
}

#[test]
fn forward_conflicts_are_refused_before_anything() {
    let cfg = config(vec![with(jail("web"), |j| {
        j.forwards.push(fwd("ssh", 2222, 22))
    })]);
    let err = plan(
        &cfg,
        &State::default(),
        &Probe::default(),
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PlanError::Ports(_)));
    assert!(err.to_string().contains("the VM's SSH port"));
}

#[test]
fn base_changes_are_vm_actions() {
    let mut cfg = stack();
    cfg.base = Some(Base {
        setup: Vec::new(),
        mounts: Vec::new(),
        forwards: vec![BaseForward {
            name: "ui".into(),
            proto: Proto::Tcp,
            host: 9000,
            target: 9000,
        }],
    });
    let p = plan_of(&cfg, &State::default());
    assert_eq!(p.vm.actions.len(), 1);
    assert!(matches!(p.vm.actions[0].op, VmOp::AddForward(_)));
    let state = deployed(&cfg);
    assert!(plan_of(&cfg, &state).is_empty());
    let mut cfg2 = cfg.clone();
    cfg2.base
        .as_mut()
        .unwrap()
        .mounts
        .push(crate::config::BaseMount {
            name: "src".into(),
            host: PathBuf::from("/home/u/src"),
            target: PathBuf::from("/src"),
        });
    let p = plan_of(&cfg2, &state);
    assert_eq!(
        p.vm.actions[0].reason,
        Reason::ShareAdded { name: "src".into() }
    );
    assert_eq!(p.summary().vm_actions, 1);
}

#[test]
fn mounts_and_reordering() {
    let m = |n: &str| Mount {
        name: n.into(),
        host: PathBuf::from(format!("/h/{n}")),
        jail: PathBuf::from(format!("/j/{n}")),
    };
    let cfg = config(vec![with(jail("web"), |j| {
        j.mounts = vec![m("a"), m("b")];
    })]);
    let state = deployed(&cfg);
    let swapped = config(vec![with(jail("web"), |j| j.mounts = vec![m("b"), m("a")])]);
    assert_eq!(
        ops(&plan_of(&swapped, &state), "web"),
        [(Op::Record, Reason::OrderChanged)]
    );
    let fewer = config(vec![with(jail("web"), |j| j.mounts = vec![m("b")])]);
    assert_eq!(
        ops(&plan_of(&fewer, &state), "web"),
        [(
            Op::RemoveMount(m("a")),
            Reason::MountRemoved { name: "a".into() }
        )]
    );
}

#[test]
fn a_partial_run_cannot_displace_a_jail_it_leaves_alone() {
    let state = deployed(&config(vec![jail("a"), jail("b")]));
    let a_ip = state.jails[&name("a")].ip;
    let cfg = config(vec![jail("a"), jail("b").ip(a_ip)]);
    let options = Options {
        only: vec![name("b")],
        ..Options::default()
    };
    let err = plan(&cfg, &state, &Probe::default(), &options).unwrap_err();
    assert_eq!(
        err,
        PlanError::HeldByUntouched {
            jail: name("b"),
            ip: a_ip,
            holder: name("a")
        }
    );
    // The full run moves a.
    let p = plan_of(&cfg, &state);
    assert!(matches!(ops(&p, "a")[0].1, Reason::IpTaken { .. }));
}

#[test]
fn removals_take_dependents_first() {
    let state = deployed(&config(vec![
        jail("db"),
        jail("web").depends(&["db"]),
        jail("app").base("web"),
    ]));
    let p = plan_of(&config(vec![]), &state);
    let order: Vec<&str> = p.removals.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["app", "web", "db"]);
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert!(after.jails.is_empty());
    assert!(after.vm.unwrap().redirects.is_empty());
}

// --- Several config files, one instance ---

fn file_a() -> PathBuf {
    PathBuf::from("/work/a.ucl")
}

fn file_b() -> PathBuf {
    PathBuf::from("/work/b.ucl")
}

fn of_file(cfg: Config, file: PathBuf) -> (Config, Options) {
    let cfg = Config {
        path: file.clone(),
        ..cfg
    };
    let options = Options {
        file: Some(file),
        ..Options::default()
    };
    (cfg, options)
}

/// `a.ucl` holds web (tcp/8080) and db; `b.ucl` holds cache (tcp/6379). Both deployed.
fn two_files() -> (Config, Options, Config, Options, State) {
    let (a, a_opts) = of_file(stack(), file_a());
    let (b, b_opts) = of_file(
        config(vec![with(jail("cache"), |j| {
            j.forwards.push(fwd("redis", 6379, 6379));
        })]),
        file_b(),
    );
    let mut state = State::default();
    for (cfg, opts) in [(&a, &a_opts), (&b, &b_opts)] {
        plan(cfg, &state, &Probe::default(), opts)
            .unwrap()
            .apply_to(&mut state);
    }
    (a, a_opts, b, b_opts, state)
}

#[test]
fn each_jail_records_the_file_that_deployed_it() {
    let (_, _, _, _, state) = two_files();
    let files: Vec<_> = state
        .jails
        .values()
        .map(|j| (j.name.as_str(), j.file.clone().unwrap()))
        .collect();
    assert_eq!(
        files,
        [("cache", file_b()), ("db", file_a()), ("web", file_a())]
    );
}

#[test]
fn up_of_one_file_leaves_the_other_files_jails_alone() {
    let (a, a_opts, _, _, state) = two_files();
    let p = plan(&a, &state, &Probe::default(), &a_opts).unwrap();
    assert!(p.is_empty(), "{p:?}");
    assert!(p.removals.is_empty());
    assert_eq!(
        p.untouched,
        [Untouched {
            name: name("cache"),
            file: Some(file_b()),
        }]
    );
    // The VM keeps the other file's forward and DNS name.
    assert!(p
        .vm_firewall
        .redirects
        .iter()
        .any(|r| r.jail == name("cache") && r.host_port == 6379));
    assert!(p
        .dns
        .local()
        .any(|r| r.name == DnsName::Local(name("cache"))));
    let text = p.render_text();
    assert!(
        text.contains("untouched: cache (from /work/b.ucl)"),
        "{text}"
    );
}

#[test]
fn a_file_removes_only_the_jails_it_deployed_and_no_longer_lists() {
    let (a, a_opts, _, _, state) = two_files();
    // a.ucl drops db (and web's dependency on it).
    let a = Config {
        jails: vec![with(jail("web"), |j| {
            j.forwards.push(fwd("http", 8080, 80));
            j.execs.push(exec("app", "./serve"));
        })],
        ..a
    };
    let p = plan(&a, &state, &Probe::default(), &a_opts).unwrap();
    let removed: Vec<_> = p.removals.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(removed, ["db"]);
    let untouched: Vec<_> = p.untouched.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(untouched, ["cache"]);
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert!(after.jails.contains_key(&name("cache")));
    assert!(!after.jails.contains_key(&name("db")));
    // The whole-state plan (`down`, `start`) still removes whatever it is told to.
    let mut whole = state.as_config("/state.json");
    whole.jails.retain(|j| j.name.as_str() != "cache");
    let p = plan_of(&whole, &state);
    let removed: Vec<_> = p.removals.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(removed, ["cache"]);
    assert!(p.jails.iter().all(|j| j.actions.is_empty()), "{p:?}");
    // ...and each jail keeps its own file.
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert_eq!(after.jails[&name("web")].file, Some(file_a()));
}

#[test]
fn a_jail_name_in_two_live_files_is_refused() {
    let (_, _, _, _, state) = two_files();
    let (b2, b2_opts) = of_file(config(vec![jail("db")]), file_b());
    let err = plan(&b2, &state, &Probe::default(), &b2_opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jail db was deployed from /work/a.ucl, and a jail belongs to one config file; \
         rename it in /work/b.ucl, or drop it from the other file and run \
         `jrun up /work/a.ucl` (or `jrun down db`) first"
    );
    // Named on its own too.
    let only = Options {
        only: vec![name("db")],
        ..b2_opts.clone()
    };
    assert!(matches!(
        plan(&b2, &state, &Probe::default(), &only),
        Err(PlanError::OtherFile { .. })
    ));
    // Once a.ucl is gone (renamed, deleted), b.ucl takes db over, keeping its address.
    let probe = Probe {
        missing_files: [file_a()].into(),
        ..Probe::default()
    };
    let p = plan(&b2, &state, &probe, &b2_opts).unwrap();
    let db = p.jail("db").unwrap();
    assert_eq!(db.ip, state.jails[&name("db")].ip);
    assert_eq!(
        db.actions,
        [Action {
            op: Op::Record,
            reason: Reason::Adopted {
                from: Some(file_a())
            },
        }]
    );
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert_eq!(after.jails[&name("db")].file, Some(file_b()));
    // web (still recorded from the missing a.ucl) is left alone, not removed.
    assert!(p.untouched.iter().any(|u| u.name == name("web")));
}

#[test]
fn jails_with_no_recorded_file_are_adopted_by_a_file_that_lists_them_and_removed_by_none() {
    // As an older jrun (or a conversion) recorded them: no file.
    let legacy = deployed(&stack());
    assert!(legacy.jails.values().all(|j| j.file.is_none()));
    let (only_db, opts) = of_file(config(vec![jail("db")]), file_a());
    let p = plan(&only_db, &legacy, &Probe::default(), &opts).unwrap();
    assert!(p.removals.is_empty(), "{p:?}");
    assert_eq!(
        p.jail("db").unwrap().actions,
        [Action {
            op: Op::Record,
            reason: Reason::Adopted { from: None },
        }]
    );
    assert_eq!(
        p.untouched,
        [Untouched {
            name: name("web"),
            file: None
        }]
    );
    let text = p.render_text();
    assert!(
        text.contains("untouched: web (no config file recorded)"),
        "{text}"
    );
    assert!(
        text.contains("no config file recorded for it; this file takes it over"),
        "{text}"
    );
    let mut after = legacy.clone();
    p.apply_to(&mut after);
    let p = plan(&only_db, &after, &Probe::default(), &opts).unwrap();
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn forwards_and_static_addresses_are_checked_against_the_other_files_jails() {
    let (_, _, _, _, state) = two_files();
    let (c, c_opts) = of_file(
        config(vec![with(jail("other"), |j| {
            j.forwards.push(fwd("redis", 6379, 6379));
        })]),
        PathBuf::from("/work/c.ucl"),
    );
    let err = plan(&c, &state, &Probe::default(), &c_opts).unwrap_err();
    assert!(matches!(err, PlanError::Ports(_)), "{err}");
    let cache_ip = state.jails[&name("cache")].ip;
    let (c, c_opts) = of_file(
        config(vec![jail("other").ip(cache_ip)]),
        PathBuf::from("/work/c.ucl"),
    );
    let err = plan(&c, &state, &Probe::default(), &c_opts).unwrap_err();
    assert!(matches!(err, PlanError::HeldByUntouched { .. }), "{err}");
}

#[test]
fn a_file_without_a_base_block_leaves_another_files_base() {
    let (a, a_opts, b, b_opts, state) = two_files();
    let base = Base {
        forwards: vec![BaseForward {
            name: "web".into(),
            proto: Proto::Tcp,
            host: 9000,
            target: 80,
        }],
        ..Base::default()
    };
    let a = Config {
        base: Some(base.clone()),
        ..a
    };
    let mut state = state;
    plan(&a, &state, &Probe::default(), &a_opts)
        .unwrap()
        .apply_to(&mut state);
    assert_eq!(state.base_file, Some(file_a()));
    // b.ucl has no base block: the base stays, and the plan says whose it is.
    let p = plan(&b, &state, &Probe::default(), &b_opts).unwrap();
    assert!(p.vm.actions.is_empty(), "{p:?}");
    assert_eq!(p.base.as_ref(), Some(&base));
    assert!(p
        .render_text()
        .contains("untouched: base (from /work/a.ucl)"));
    // A base forward's port is still taken for b's jails.
    let (b9, _) = of_file(
        config(vec![with(jail("cache"), |j| {
            j.forwards.push(fwd("redis", 9000, 6379));
        })]),
        file_b(),
    );
    assert!(matches!(
        plan(&b9, &state, &Probe::default(), &b_opts),
        Err(PlanError::Ports(_))
    ));
    // a.ucl dropping its base block removes its base forward.
    let a_nobase = Config { base: None, ..a };
    let p = plan(&a_nobase, &state, &Probe::default(), &a_opts).unwrap();
    assert!(matches!(
        p.vm.actions.as_slice(),
        [VmAction {
            op: VmOp::RemoveForward(_),
            ..
        }]
    ));
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert_eq!((after.base, after.base_file), (None, None));
}

#[test]
fn jails_converted_from_jailrun_are_created_only_by_up_of_their_file() {
    let mut state = deployed(&stack());
    for j in state.jails.values_mut() {
        j.deployed = false;
        j.from_jailrun = true;
    }
    // The whole state (`start`, `down` of another jail, pairing): left as recorded.
    let p = plan_of(&state.as_config("/state.json"), &state);
    assert!(p.jails.is_empty(), "{p:?}");
    assert_eq!(p.untouched.len(), 2);
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert_eq!(after.jails, state.jails);
    // `down web` removes its record.
    let mut without_web = state.as_config("/state.json");
    without_web.jails.retain(|j| j.name.as_str() != "web");
    let p = plan_of(&without_web, &state);
    let removed: Vec<_> = p.removals.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(removed, ["web"]);
    // `up` of a file listing them creates them again, at their recorded addresses.
    let (a, a_opts) = of_file(stack(), file_a());
    let p = plan(&a, &state, &Probe::default(), &a_opts).unwrap();
    for j in &p.jails {
        assert_eq!(j.ip, state.jails[j.name()].ip);
        assert_eq!(
            j.actions,
            [Action {
                op: Op::Recreate,
                reason: Reason::FromJailrun
            }]
        );
    }
    let mut after = state.clone();
    p.apply_to(&mut after);
    assert!(after
        .jails
        .values()
        .all(|j| j.deployed && !j.from_jailrun && j.file == Some(file_a())));
}

/// Issue 15 item 3: each jail's firewall admits the pairings that share it, on the ports
/// of its `mesh { allow }`; changing `allow` reloads that jail's firewall and nothing else.
#[test]
fn jail_firewalls_follow_shares_and_mesh_allow() {
    let cfg = stack();
    let mut state = deployed(&cfg);
    let addr = paired(&mut state);
    let code: PairCode = "81-zephyr-night-climb".parse().unwrap();
    state.peers.get_mut(&code).unwrap().shared = Some([name("web")].into());
    let fw = |p: &Plan, j: &str| {
        p.jails
            .iter()
            .find(|jp| jp.jail.name.as_str() == j)
            .unwrap()
            .firewall
            .clone()
    };
    let p = plan_of(&cfg, &state);
    assert!(p.is_empty(), "{p:?}");
    assert_eq!(fw(&p, "web").mesh_peers, [addr].into());
    assert!(fw(&p, "db").mesh_peers.is_empty());
    assert_eq!(fw(&p, "web").mesh_allow, None);

    let mut cfg2 = cfg.clone();
    let ports: std::collections::BTreeSet<crate::config::MeshPort> =
        ["8000".parse().unwrap(), "53/udp".parse().unwrap()].into();
    cfg2.jails
        .iter_mut()
        .find(|j| j.name.as_str() == "web")
        .unwrap()
        .mesh_allow = Some(ports.clone());
    let p = plan_of(&cfg2, &state);
    assert_eq!(fw(&p, "web").mesh_allow, Some(ports.clone()));
    assert_eq!(fw(&p, "web").allowed_ports(Proto::Tcp), Some(vec![8000]));
    assert_eq!(fw(&p, "web").allowed_ports(Proto::Udp), Some(vec![53]));
    for jp in &p.jails {
        let ops: Vec<&Op> = jp.actions.iter().map(|a| &a.op).collect();
        if jp.jail.name.as_str() == "web" {
            assert_eq!(ops, [&Op::SetFirewall], "{:?}", jp.actions);
            assert_eq!(jp.actions[0].reason, Reason::MeshAllowChanged);
        } else {
            assert!(ops.is_empty(), "{jp:?}");
        }
    }
    p.apply_to(&mut state);
    assert_eq!(state.jails[&name("web")].mesh_allow, Some(ports));
    assert!(plan_of(&cfg2, &state).is_empty());
}
