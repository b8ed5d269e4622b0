//! Every failing fixture of `tests/fixtures/invalid/`: which rules fire, and the exact
//! report a user sees (golden files under `snapshots/`).

use std::path::{Path, PathBuf};

use jrun_core::config::{self, ConfigErrors, ErrorKind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn errors(name: &str) -> ConfigErrors {
    let path = root().join("tests/fixtures/invalid").join(name);
    match config::load(&path, 2222) {
        Ok(c) => panic!("{name} should fail, loaded {c:?}"),
        Err(e) => e,
    }
}

fn kinds(e: &ConfigErrors) -> Vec<ErrorKind> {
    e.items().iter().map(|i| i.kind).collect()
}

/// The report as a terminal-independent text, with the checkout's path taken out. Rendered
/// wide enough that no line wraps, so where the checkout lives cannot move a line break.
fn rendered(e: &ConfigErrors) -> String {
    let root = root().display().to_string();
    e.render_plain(1000).replace(&root, "<repo>")
}

macro_rules! golden {
    ($test:ident, $file:literal, [$($kind:ident),* $(,)?]) => {
        #[test]
        fn $test() {
            let e = errors($file);
            assert_eq!(kinds(&e), [$(ErrorKind::$kind),*], "{}", rendered(&e));
            insta::assert_snapshot!(stringify!($test), rendered(&e));
        }
    };
}

golden!(bad_jail_name, "bad-jail-name.ucl", [BadJailName]);
golden!(duplicate_jail, "duplicate-jail.ucl", [WrongType, Duplicate]);
golden!(duplicate_forward, "duplicate-forward.ucl", [Duplicate]);
golden!(ip_outside_subnet, "ip-outside-subnet.ucl", [BadValue]);
golden!(mesh_allow, "mesh-allow.ucl", [BadValue, BadValue, BadValue]);
golden!(ip_reserved, "ip-reserved.ucl", [BadValue]);
golden!(ip_not_an_address, "ip-not-an-address.ucl", [BadValue]);
golden!(duplicate_ip, "duplicate-ip.ucl", [DuplicateIp]);
golden!(
    port_out_of_range,
    "port-out-of-range.ucl",
    [BadValue, BadValue]
);
golden!(
    port_conflict,
    "port-conflict.ucl",
    [PortConflict, PortConflict]
);
golden!(ssh_port, "ssh-port.ucl", [PortConflict]);
golden!(bad_proto, "bad-proto.ucl", [BadValue]);
golden!(
    unknown_depends,
    "unknown-depends.ucl",
    [UnknownJail, UnknownJail]
);
golden!(unknown_base, "unknown-base.ucl", [UnknownJail]);
golden!(cycle, "cycle.ucl", [Cycle, Cycle]);
golden!(
    unknown_key,
    "unknown-key.ucl",
    [UnknownKey, MissingKey, UnknownKey, UnknownKey]
);
golden!(
    wrong_type,
    "wrong-type.ucl",
    [WrongType, WrongType, WrongType]
);
golden!(given_twice, "given-twice.ucl", [WrongType]);
golden!(
    missing_keys,
    "missing-keys.ucl",
    [MissingKey, MissingKey, MissingKey, MissingKey]
);
golden!(
    mount_paths,
    "mount-paths.ucl",
    [BadValue, BadValue, BadValue, MissingPath, Duplicate]
);
golden!(
    healthcheck,
    "healthcheck.ucl",
    [MissingKey, BadValue, BadValue, BadValue]
);
golden!(huge_duration, "huge-duration.ucl", [BadValue, BadValue]);
golden!(
    setup,
    "setup.ucl",
    [BadValue, MissingKey, BadValue, BadValue, BadValue, BadValue]
);
golden!(
    bad_values,
    "bad-values.ucl",
    [BadValue, BadValue, BadValue, BadValue, BadValue]
);
golden!(
    item_names,
    "item-names.ucl",
    [BadValue, BadValue, BadValue, BadValue, BadValue, BadValue, BadValue, BadValue, BadValue]
);
golden!(syntax, "syntax.ucl", [Syntax]);
golden!(
    many_errors,
    "many-errors.ucl",
    [BadValue, UnknownKey, UnknownJail, PortConflict, WrongType]
);

#[test]
fn every_invalid_fixture_has_a_golden_test() {
    let src = include_str!("config_errors.rs");
    let dir = root().join("tests/fixtures/invalid");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(src.contains(&format!("\"{name}\"")), "no test for {name}");
    }
}

#[test]
fn each_error_has_file_line_column_cause_and_hint() {
    let e = errors("many-errors.ucl");
    for item in e.items() {
        assert!(item
            .file
            .ends_with("tests/fixtures/invalid/many-errors.ucl"));
        assert!(item.line > 1 && item.column > 1, "{item:?}");
        assert!(!item.message.contains('\n'), "{item:?}");
        assert!(item.help.is_some(), "{item:?}");
    }
    let lines = e.short_lines();
    assert!(lines[0].ends_with("many-errors.ucl:3:8: jail `web`: `ip` 10.17.90.5 is outside the jail subnet 10.17.89.0/24"), "{lines:?}");
}
