//! A realistic stack for renderer tests: three jails (one cloned), forwards, mounts,
//! execs with env and healthchecks, setup steps, and two pairings.
#![allow(dead_code)]

pub mod guest;
pub mod http;
pub mod sandbox;
pub mod standin;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use jrun_core::config::{
    BaseForward, BaseMount, Exec, ExecUser, Healthcheck, JailName, Mount, Proto, SetupKind,
    SetupSource, SetupStep,
};
use jrun_core::net::{
    DnsName, DnsRecord, DnsRecords, JailFirewall, RecordData, Redirect, VmFirewall,
};
use jrun_mesh::Identity;
use jrun_mesh::{PairCode, YggAddress};
use jrun_vm::render::{SetupSources, StepFiles};
use jrun_vm::spec::{GuestJail, GuestSpec, MeshSpec, Release, YggVersion};

pub fn name(s: &str) -> JailName {
    JailName::new(s).unwrap()
}

pub fn ygg(s: &str) -> YggAddress {
    s.parse().unwrap()
}

pub const PEER_A: &str = "200:848a:604f:bb7e:4384:65db:8db6:6895";
pub const PEER_B: &str = "201:1e4a:7c50:30c7:7b2c:4e1f:9d3a:11aa";
pub const PEER_C: &str = "202:9b3c:1d2e:88ff:1234:abcd:ef01:2345";

pub fn stack(version: YggVersion) -> GuestSpec {
    let ip = |last| Ipv4Addr::new(10, 17, 89, last);
    let code_a: PairCode = "81-zephyr-night-climb".parse().unwrap();
    let code_b: PairCode = "7-amber-river-stone".parse().unwrap();
    let peers: BTreeSet<YggAddress> = [PEER_A, PEER_B, PEER_C].iter().map(|a| ygg(a)).collect();

    let mut records = BTreeSet::new();
    for (j, last) in [("postgres", 50), ("web", 10), ("worker", 11)] {
        records.insert(DnsRecord {
            name: DnsName::Local(name(j)),
            data: RecordData::A(ip(last)),
        });
    }
    records.insert(DnsRecord {
        name: DnsName::Peer {
            jail: name("api"),
            code: code_a.clone(),
        },
        data: RecordData::Aaaa(ygg(PEER_A)),
    });
    records.insert(DnsRecord {
        name: DnsName::Peer {
            jail: name("cache"),
            code: code_a,
        },
        data: RecordData::Aaaa(ygg(PEER_B)),
    });
    records.insert(DnsRecord {
        name: DnsName::Peer {
            jail: name("db"),
            code: code_b,
        },
        data: RecordData::Aaaa(ygg(PEER_C)),
    });

    let jail = |n: &str, last, base: Option<&str>| GuestJail {
        name: name(n),
        ip: ip(last),
        release: None,
        base: base.map(name),
        depends: vec![],
        mounts: vec![],
        execs: vec![],
        setup: vec![],
        firewall: JailFirewall {
            jail: name(n),
            mesh_peers: peers.clone(),
            mesh_allow: None,
        },
        recreate: false,
        forwarded_tcp_ports: vec![],
    };
    let mut postgres = jail("postgres", 50, None);
    // Peers reach only postgres's port and a DNS port (`mesh { allow }`).
    postgres.firewall.mesh_allow = Some(
        ["5432/tcp", "53/udp", "5433"]
            .into_iter()
            .map(|p| p.parse().unwrap())
            .collect(),
    );
    postgres.release = Some("14.3-RELEASE".parse().unwrap());
    postgres.setup.push(SetupStep {
        name: "install".into(),
        kind: SetupKind::Shell,
        source: SetupSource::File("/home/u/stack/postgres.sh".into()),
        vars: BTreeMap::from([("PG_VERSION".into(), "17".into())]),
    });
    postgres.execs.push(Exec {
        name: "postgres".into(),
        cmd: "su -m postgres -c 'postgres -D /var/db/postgres/data17'".into(),
        dir: None,
        env: BTreeMap::new(),
        healthcheck: None,
        user: None,
    });
    let mut web = jail("web", 10, None);
    web.mounts.push(Mount {
        name: "src".into(),
        host: "/home/u/stack/web".into(),
        jail: "/srv/app".into(),
    });
    web.execs.push(Exec {
        name: "server".into(),
        cmd: "python3.11 -m http.server 8080".into(),
        dir: Some("/srv/app".into()),
        env: BTreeMap::from([(
            "DATABASE_URL".into(),
            "postgres://postgres.local.jrun/app".into(),
        )]),
        healthcheck: Some(Healthcheck {
            test: "fetch -qo /dev/null http://127.0.0.1:8080/".into(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            retries: 3,
        }),
        user: Some(ExecUser::new("www").unwrap()),
    });
    web.setup.push(SetupStep {
        name: "nginx".into(),
        kind: SetupKind::Ansible,
        source: SetupSource::Url("hub://nginx/rolling".into()),
        vars: BTreeMap::from([("NGINX_LISTEN_PORT".to_string(), "8080".to_string())]),
    });
    let mut worker = jail("worker", 11, Some("web"));
    worker.depends = vec![name("postgres"), name("web")];
    // Rebuilt by this run (e.g. its base changed): its root is made again.
    worker.recreate = true;
    postgres.forwarded_tcp_ports = vec![5432];
    web.forwarded_tcp_ports = vec![8080];

    let redirects = vec![
        Redirect {
            proto: Proto::Tcp,
            host_port: 5432,
            jail: name("postgres"),
            jail_ip: ip(50),
            jail_port: 5432,
        },
        Redirect {
            proto: Proto::Tcp,
            host_port: 8080,
            jail: name("web"),
            jail_ip: ip(10),
            jail_port: 8080,
        },
        Redirect {
            proto: Proto::Udp,
            host_port: 9125,
            jail: name("worker"),
            jail_ip: ip(11),
            jail_port: 8125,
        },
    ];
    let jail_keys = [("postgres", 3u8), ("web", 4), ("worker", 5)]
        .into_iter()
        .map(|(n, k)| (name(n), Identity::from_seed(&[k; 32])))
        .collect();
    GuestSpec {
        release: Release::from_version("15.0").unwrap(),
        upstream_dns: vec!["10.0.2.3".parse().unwrap()],
        vm_firewall: VmFirewall {
            ssh_port: 2222,
            redirects,
        },
        base_forwards: vec![BaseForward {
            name: "metrics".into(),
            proto: Proto::Tcp,
            host: 9100,
            target: 9100,
        }],
        base_mounts: vec![BaseMount {
            name: "cache".into(),
            host: "/home/u/.cache/jrun".into(),
            target: "/var/cache/shared".into(),
        }],
        base_setup: vec![SetupStep {
            name: "tools".into(),
            kind: SetupKind::Shell,
            source: SetupSource::File("/home/u/stack/base.sh".into()),
            vars: BTreeMap::new(),
        }],
        dns: DnsRecords(records),
        jails: vec![postgres, web, worker],
        removed: vec![name("oldjail")],
        mesh: Some(MeshSpec {
            version,
            relay_peer: Some("tls://relay.jail.run:443".parse().unwrap()),
            vm_key: Identity::from_seed(&[2; 32]),
            jail_keys,
        }),
        provision: false,
        ready_timeout_secs: Some(60),
        bsd_mirror: "https://download.freebsd.org".into(),
    }
}

pub fn sources() -> SetupSources {
    let script = |entry: &str, text: &str| StepFiles {
        entry: entry.into(),
        files: BTreeMap::from([(entry.to_string(), text.to_string())]),
    };
    SetupSources::from([
        (
            "hub://nginx/rolling".to_string(),
            StepFiles {
                entry: "playbook.yml".into(),
                files: BTreeMap::from([
                    (
                        "playbook.yml".to_string(),
                        "- name: Nginx\n  hosts: localhost\n  tasks:\n    - ansible.builtin.template: {src: nginx.conf.j2, dest: /usr/local/etc/nginx/nginx.conf}\n".to_string(),
                    ),
                    (
                        "templates/nginx.conf.j2".to_string(),
                        "server { listen {{ NGINX_LISTEN_PORT }}; }\n".to_string(),
                    ),
                ]),
            },
        ),
        (
            "/home/u/stack/base.sh".to_string(),
            script("base.sh", "#!/bin/sh\npkg install -y git\n"),
        ),
        (
            "/home/u/stack/postgres.sh".to_string(),
            script(
                "postgres.sh",
                "#!/bin/sh\nset -e\npkg install -y \"postgresql${PG_VERSION}-server\"\necho 'it'\"'\"'s done'\n",
            ),
        ),
    ])
}
