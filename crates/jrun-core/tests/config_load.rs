//! Loading the realistic fixtures of `tests/fixtures/` into the typed model.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jrun_core::config::{
    self, dependency_order, ErrorKind, Proto, SetupKind, SetupSource, DEFAULT_RETRIES,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .canonicalize()
        .unwrap()
}

fn load(name: &str) -> config::Loaded {
    let path = fixtures().join(name);
    match config::load_with_warnings(&path, 2222) {
        Ok(l) => l,
        Err(e) => panic!("{name} should load:\n{}", e.render_plain(100)),
    }
}

fn order(c: &config::Config) -> Vec<String> {
    dependency_order(c).into_iter().map(String::from).collect()
}

#[test]
fn web_app_with_forward_mount_and_healthcheck() {
    let l = load("webapp.ucl");
    assert!(l.warnings.is_empty(), "{}", l.warnings.render_plain(100));
    let c = l.config;
    assert_eq!(c.path, fixtures().join("webapp.ucl"));
    assert_eq!(c.jails.len(), 1);
    let web = c.jail("web").unwrap();
    assert_eq!(web.ip, Some(Ipv4Addr::new(10, 17, 89, 20)));
    assert_eq!(web.forwards.len(), 1);
    let f = &web.forwards[0];
    assert_eq!(
        (f.name.as_str(), f.proto, f.host, f.jail),
        ("http", Proto::Tcp, 8080, 8080)
    );
    assert_eq!(web.mounts[0].host, fixtures().join("app"));
    assert_eq!(web.mounts[0].jail, PathBuf::from("/srv/app"));
    let e = &web.execs[0];
    assert_eq!(e.name, "server");
    assert_eq!(e.dir.as_deref(), Some("/srv/app"));
    assert_eq!(e.env["APP_ENV"], "development");
    // A number in `env` is taken as its text.
    assert_eq!(e.env["WORKERS"], "2");
    let h = e.healthcheck.as_ref().unwrap();
    assert_eq!(h.interval, Duration::from_secs(30));
    assert_eq!(h.timeout, Duration::from_secs(10));
    assert_eq!(h.retries, 5);
}

#[test]
fn three_jail_stack_with_base_and_depends() {
    let l = load("stack.ucl");
    assert!(l.warnings.is_empty(), "{}", l.warnings.render_plain(100));
    let c = l.config;
    assert_eq!(order(&c), ["python", "postgres", "api"]);
    let api = c.jail("api").unwrap();
    assert_eq!(api.base.as_ref().map(|b| b.as_str()), Some("python"));
    assert_eq!(api.depends.len(), 1);
    assert_eq!(api.forwards[1].proto, Proto::Udp);
    let h = api.execs[0].healthcheck.as_ref().unwrap();
    // An unquoted UCL time and a bare number of seconds; retries defaults.
    assert_eq!(h.interval, Duration::from_secs(15));
    assert_eq!(h.timeout, Duration::from_secs(5));
    assert_eq!(h.retries, DEFAULT_RETRIES);
    assert!(api.execs[1].healthcheck.is_none());
    // A setup step without `type` is an ansible playbook, as in the original.
    assert_eq!(api.setup[0].kind, SetupKind::Ansible);
    assert_eq!(
        api.setup[0].source,
        SetupSource::File(fixtures().join("playbooks/api.yml"))
    );
    let pg = c.jail("postgres").unwrap();
    assert_eq!(pg.release.as_deref(), Some("15.0-RELEASE"));
    assert_eq!(
        pg.setup[0].source,
        SetupSource::Url("hub://postgres/16".into())
    );
    assert_eq!(pg.setup[0].vars["POSTGRES_PASSWORD"], "secret");
}

#[test]
fn base_block() {
    let l = load("base.ucl");
    assert!(l.warnings.is_empty(), "{}", l.warnings.render_plain(100));
    let c = l.config;
    assert!(c.jails.is_empty());
    let base = c.base.unwrap();
    assert_eq!(base.setup.len(), 3);
    assert_eq!(base.setup[1].kind, SetupKind::Shell);
    assert_eq!(base.mounts[0].host, fixtures().join("data"));
    assert_eq!(base.mounts[0].target, PathBuf::from("/home/admin/data"));
    let f = &base.forwards[1];
    assert_eq!((f.proto, f.host, f.target), (Proto::Udp, 5353, 53));
}

#[test]
fn the_originals_full_example() {
    let c = load("full.ucl").config;
    assert_eq!(order(&c), ["base-jail", "redis", "postgres", "myapp"]);
    let app = c.jail("myapp").unwrap();
    assert_eq!(app.mounts[0].host, fixtures());
    assert_eq!(app.execs.len(), 2);
    assert_eq!(app.setup.len(), 3);
    assert_eq!(
        c.jail("postgres").unwrap().ip,
        Some(Ipv4Addr::new(10, 17, 89, 42))
    );
}

#[test]
fn the_ssh_port_is_a_parameter() {
    let path = fixtures().join("webapp.ucl");
    let err = config::load(&path, 8080).unwrap_err();
    assert_eq!(err.items().len(), 1);
    assert_eq!(err.items()[0].kind, ErrorKind::PortConflict);
    assert!(config::load(&path, 2300).is_ok());
}

#[test]
fn a_missing_file_names_the_file() {
    let err = config::load(Path::new("/nonexistent/jrun.ucl"), 2222).unwrap_err();
    assert_eq!(err.items()[0].kind, ErrorKind::Io);
    assert!(err.items()[0]
        .message
        .starts_with("cannot read /nonexistent/jrun.ucl:"));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let file = dir.path().join("sub/jrun.ucl");
    std::fs::write(
        &file,
        "jail \"w\" { mount { a { host = \"../src\"; jail = \"/a\"; } b { host = \"./x\"; jail = \"/b\"; } } }",
    )
    .unwrap();
    let l = config::load_with_warnings(&file, 2222).unwrap();
    let mounts = &l.config.jails[0].mounts;
    assert_eq!(mounts[0].host, dir.path().join("src"));
    assert_eq!(mounts[1].host, dir.path().join("sub/x"));
    // The missing folder is a warning, not an error.
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(l.warnings.items()[0].kind, ErrorKind::MissingPath);
}

#[test]
fn json_round_trip() {
    let c = load("stack.ucl").config;
    let json = serde_json::to_string(&c).unwrap();
    let back: config::Config = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

/// As Jailrun's configs and docs write them: quoted numbers, and a command broken over
/// lines inside one string (the line breaks reach the shell).
#[test]
fn jailrun_style_quoted_numbers_and_multi_line_commands() {
    let src = "jail \"web\" {\n  forward { http { host = \"8080\"; jail = \"80\"; } }\n  exec { s {\n    cmd = \"cd /srv &&\n      exec python3 -m http.server 80\";\n    healthcheck { test = \"fetch -qo /dev/null\n      http://127.0.0.1/\"; retries = \"5\"; }\n  } }\n}\n";
    let c = config::load_str(Path::new("j.ucl"), src, 2222)
        .unwrap()
        .config;
    let web = c.jail("web").unwrap();
    assert_eq!((web.forwards[0].host, web.forwards[0].jail), (8080, 80));
    assert_eq!(
        web.execs[0].cmd,
        "cd /srv &&\n      exec python3 -m http.server 80"
    );
    let h = web.execs[0].healthcheck.as_ref().unwrap();
    assert_eq!(h.retries, 5);
    assert!(h.test.contains('\n'));
    // A quoted value that is no number is still refused, naming what was expected.
    let bad = "jail \"web\" { forward { http { host = \"eighty\"; jail = 80; } } }\n";
    let e = config::load_str(Path::new("j.ucl"), bad, 2222).unwrap_err();
    assert!(
        e.render_plain(100).contains("a port number"),
        "{}",
        e.render_plain(100)
    );
}

/// `exec { s { user = … } }`: a user name or a numeric uid (a number or quoted), kept in
/// the model and in state (serde), and absent from state written before the key existed.
#[test]
fn exec_user_is_a_user_name_or_a_uid() {
    let ok = |user: &str| {
        let src = format!("jail \"web\" {{ exec {{ s {{ cmd = \"x\"; user = {user}; }} }} }}\n");
        config::load_str(Path::new("j.ucl"), &src, 2222)
            .map(|l| l.config.jail("web").unwrap().execs[0].user.clone())
    };
    for (src, want) in [
        ("\"www\"", "www"),
        ("\"_pkg\"", "_pkg"),
        ("\"app-user_2\"", "app-user_2"),
        ("65534", "65534"),
        ("\"1001\"", "1001"),
        ("0", "0"),
    ] {
        let u = ok(src).unwrap_or_else(|e| panic!("{src}: {}", e.render_plain(100)));
        assert_eq!(u.as_ref().map(|u| u.as_str()), Some(want));
    }
    assert_eq!(ok("65534").unwrap().unwrap().uid(), Some(65534));
    assert_eq!(ok("\"www\"").unwrap().unwrap().uid(), None);
    for bad in [
        "\"\"",
        "\"Www\"",
        "\"1www\"",
        "\"www;id\"",
        "\"www user\"",
        "\"-u\"",
        "\"../root\"",
        "\"abcdefghijklmnopqrstuvwxyzabcdefg\"",
        "4294967295",
        "-1",
        "\"root\\n\"",
        "[\"www\"]",
    ] {
        let e = ok(bad).expect_err(bad);
        let text = e.render_plain(200);
        assert!(text.contains("`user`"), "{bad}: {text}");
    }
    // Without the key: no user, and old state (no `user` field) reads back the same.
    let none = config::load_str(
        Path::new("j.ucl"),
        "jail \"web\" { exec { s { cmd = \"x\"; } } }\n",
        2222,
    )
    .unwrap()
    .config;
    let e = &none.jail("web").unwrap().execs[0];
    assert_eq!(e.user, None);
    let json = serde_json::to_value(e).unwrap();
    assert!(json.get("user").is_none(), "{json}");
    let back: config::Exec = serde_json::from_value(json).unwrap();
    assert_eq!(&back, e);
    // A user in state is checked when read back, as in the config.
    let mut with = serde_json::to_value(e).unwrap();
    with["user"] = "www".into();
    let back: config::Exec = serde_json::from_value(with.clone()).unwrap();
    assert_eq!(back.user.unwrap().as_str(), "www");
    with["user"] = "www;id".into();
    assert!(serde_json::from_value::<config::Exec>(with).is_err());
}

/// `mesh { allow = [...] }`: a bare number is tcp, `"<port>/<proto>"` names the protocol,
/// duplicates count once; no block (or no `allow`) means every port; an empty list no port.
#[test]
fn mesh_allow_narrows_the_ports_peers_reach() {
    let load = |body: &str| {
        let src = format!("jail \"web\" {{ {body} }}\n");
        config::load_str(Path::new("j.ucl"), &src, 2222)
            .map(|l| l.config.jail("web").unwrap().mesh_allow.clone())
    };
    let shown = |body: &str| -> Option<Vec<String>> {
        load(body)
            .unwrap_or_else(|e| panic!("{body}: {}", e.render_plain(200)))
            .map(|s| s.iter().map(|p| p.to_string()).collect())
    };
    assert_eq!(
        shown("mesh { allow = [80, \"5432/tcp\", \"53/udp\", \"80\", 80]; }"),
        Some(vec!["80/tcp".into(), "5432/tcp".into(), "53/udp".into()])
    );
    assert_eq!(
        shown("mesh { allow = 8000; }"),
        Some(vec!["8000/tcp".into()])
    );
    assert_eq!(shown("mesh { allow = []; }"), Some(vec![]));
    assert_eq!(shown("mesh { }"), None);
    assert_eq!(shown(""), None);
    for bad in [
        "0",
        "65536",
        "-1",
        "\"80/icmp\"",
        "\"http\"",
        "\"80/\"",
        "\"/tcp\"",
        "\"+80\"",
        "\"99999/udp\"",
        "true",
    ] {
        let e = load(&format!("mesh {{ allow = [{bad}]; }}")).expect_err(bad);
        let text = e.render_plain(200);
        assert!(text.contains("`allow`"), "{bad}: {text}");
    }
    let e = load("mesh { alow = [80]; }").unwrap_err();
    assert!(e.render_plain(200).contains("did you mean `allow`?"));
    // State and plans carry it as "<port>/<proto>" strings, checked again when read back.
    let ports = load("mesh { allow = [80, \"53/udp\"]; }").unwrap().unwrap();
    let json = serde_json::to_string(&ports).unwrap();
    assert_eq!(json, r#"["80/tcp","53/udp"]"#);
    assert_eq!(
        serde_json::from_str::<std::collections::BTreeSet<config::MeshPort>>(&json).unwrap(),
        ports
    );
    assert!(serde_json::from_str::<Vec<config::MeshPort>>(r#"["0/tcp"]"#).is_err());
    assert!(serde_json::from_str::<Vec<config::MeshPort>>(r#"["80/sctp"]"#).is_err());
}
