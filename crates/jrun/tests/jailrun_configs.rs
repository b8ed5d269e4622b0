//! Jailrun's users bring their configs: every `*.ucl` of Jailrun's repository and every
//! config in its docs (tests/fixtures/jailrun) validates, plans and renders on the vm
//! runtime, with `hub://` and GitHub playbooks fetched from a local copy of the hub
//! (`JRUN_GITHUB_RAW`), checked against their `jrun.manifest` and cached for offline use.

mod local_env;
mod static_http;

use std::path::{Path, PathBuf};
use std::process::Output;

use static_http::StaticServer;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/jailrun")
}

fn jrun(cwd: &Path, home: &Path, raw: &str, args: &[&str]) -> Output {
    local_env::jrun()
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env("JRUN_HOME", home.join("jrun"))
        .env("JRUN_RUNTIME", "vm")
        .env("JRUN_GITHUB_RAW", raw)
        .output()
        .unwrap()
}

/// The output with miette's wrapped lines joined, so a message can be searched whole.
fn text(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr)
        .replace("\n  │ ", " ")
        .replace("\n  │", " ");
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{stderr}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
    )
}

fn ucl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            ucl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "ucl") {
            out.push(p);
        }
    }
}

/// The docs' "Full example" names a base jail and dependencies it never declares.
const REAL_MISTAKES: &[&str] = &["README-4.ucl", "reference-jail-config-1.ucl"];

#[test]
fn every_jailrun_config_validates_plans_and_renders() {
    let hub = StaticServer::serve(&fixtures().join("hub"));
    let mut configs = Vec::new();
    for (folder, cwd) in [("repo", "repo"), ("docs", "docs")] {
        let mut found = Vec::new();
        ucl_files(&fixtures().join(folder), &mut found);
        found.sort();
        // As Jailrun's users run them: from the repository's root (its examples name
        // playbooks from there), and the docs' snippets from their own folder.
        configs.extend(found.into_iter().map(|f| (f, fixtures().join(cwd))));
    }
    assert_eq!(configs.len(), 17 + 19, "every repo config and docs snippet");

    let mut failures = Vec::new();
    let mut rendered_ansible = 0;
    for (cfg, cwd) in &configs {
        let name = cfg.file_name().unwrap().to_str().unwrap();
        let home = tempfile::tempdir().unwrap();
        let cfg_s = cfg.to_str().unwrap();
        let out_dir = home.path().join("review");
        let validate = jrun(cwd, home.path(), &hub.base, &["validate", cfg_s]);
        if REAL_MISTAKES.contains(&name) {
            let t = text(&validate);
            assert!(
                !validate.status.success() && t.contains("base-jail"),
                "{name}: {t}"
            );
            continue;
        }
        let plan = jrun(cwd, home.path(), &hub.base, &["plan", cfg_s]);
        let render = jrun(
            cwd,
            home.path(),
            &hub.base,
            &["render", cfg_s, "--out", out_dir.to_str().unwrap()],
        );
        for (what, o) in [
            ("validate", &validate),
            ("plan", &plan),
            ("render", &render),
        ] {
            if !o.status.success() {
                failures.push(format!("{name}: {what}: {}", text(o)));
            }
        }
        if !render.status.success() {
            continue;
        }
        let script = out_dir.join("provision.sh");
        let sh = std::process::Command::new("sh")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(sh.status.success(), "{name}: {}", text(&sh));
        let script = std::fs::read_to_string(&script).unwrap();
        let has_ansible = std::fs::read_to_string(cfg).unwrap().contains("ansible");
        if has_ansible {
            assert!(
                script.contains("exec ansible-playbook -i localhost, -c local"),
                "{name}"
            );
            rendered_ansible += 1;
        }
        // Jails get what Jailrun's jails have (services run `python3.13`).
        if script.contains("jail ") && script.contains("jail -f") {
            assert!(script.contains("python313"), "{name}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        rendered_ansible >= 25,
        "{rendered_ansible} configs rendered ansible steps"
    );
    // Every playbook came from the local hub, manifest first.
    let hits = hub.hits();
    assert!(hits
        .iter()
        .any(|h| h == "/hyphatech/jailrun-hub/main/playbooks/nginx/rolling/jrun.manifest"));
    assert!(hits
        .iter()
        .any(|h| h == "/hyphatech/jailrun-hub/main/playbooks/xfce/rolling/playbook.yml"));
}

/// A hub copy holding only nginx/rolling, to tamper with.
fn nginx_hub(root: &Path) -> PathBuf {
    let rel = "hyphatech/jailrun-hub/main/playbooks/nginx/rolling";
    let from = fixtures().join("hub").join(rel);
    let to = root.join(rel);
    std::fs::create_dir_all(to.join("templates")).unwrap();
    for f in [
        "README.md",
        "playbook.yml",
        "jrun.manifest",
        "templates/nginx.conf.j2",
        "templates/welcome.html.j2",
    ] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    to
}

fn nginx_config(dir: &Path, url: &str) -> PathBuf {
    let cfg = dir.join("web.ucl");
    std::fs::write(
        &cfg,
        format!(
            "jail \"web\" {{\n  setup {{\n    nginx {{ type = \"ansible\"; url = \"{url}\"; vars {{ NGINX_LISTEN_PORT = \"8080\"; }} }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    cfg
}

fn cached_dirs(home: &Path) -> Vec<String> {
    std::fs::read_dir(home.join("jrun/playbooks"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hub_playbooks_are_checked_then_cached_and_a_second_run_works_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_root = tmp.path().join("hub");
    nginx_hub(&hub_root);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let cfg = nginx_config(tmp.path(), "hub://nginx/rolling");
    let cfg_s = cfg.to_str().unwrap();
    let render = |raw: &str, out: &str| {
        jrun(
            tmp.path(),
            &home,
            raw,
            &[
                "render",
                cfg_s,
                "--out",
                tmp.path().join(out).to_str().unwrap(),
            ],
        )
    };

    // First run: the manifest, then every file it lists, each checked.
    let server = StaticServer::serve(&hub_root);
    let first = render(&server.base, "r1");
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("fetching 4 files"),
        "{}",
        text(&first)
    );
    let base = "/hyphatech/jailrun-hub/main/playbooks/nginx/rolling";
    assert_eq!(server.hits()[0], format!("{base}/jrun.manifest"));
    assert_eq!(server.hits().len(), 5, "{:?}", server.hits());
    let cache = cached_dirs(&home);
    assert_eq!(cache.len(), 1, "{cache:?}");
    assert!(cache[0].starts_with("jailrun-hub_main_"));
    let script = std::fs::read_to_string(tmp.path().join("r1/provision.sh")).unwrap();
    assert!(script.contains("/var/jrun/setup/0/templates/nginx.conf.j2"));
    assert!(script.contains("\"NGINX_LISTEN_PORT\":\"8080\""));

    // Second run: the manifest is asked for again, the files are not.
    server.clear_hits();
    let second = render(&server.base, "r2");
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(server.hits(), [format!("{base}/jrun.manifest")]);
    assert!(text(&second).contains("cached copy is current"));

    // Offline: the checked copy is used, and the user is told.
    drop(server);
    let offline = render(local_env::NOWHERE, "r3");
    assert!(offline.status.success(), "{}", text(&offline));
    assert!(
        text(&offline).contains("using the copy cached in"),
        "{}",
        text(&offline)
    );
    assert_eq!(
        std::fs::read(tmp.path().join("r1/provision.sh")).unwrap(),
        std::fs::read(tmp.path().join("r3/provision.sh")).unwrap()
    );

    // The same file named by its GitHub blob URL shares the cache.
    let blob = nginx_config(
        tmp.path(),
        "https://github.com/hyphatech/jailrun-hub/blob/main/playbooks/nginx/rolling/playbook.yml",
    );
    let o = jrun(
        tmp.path(),
        &home,
        local_env::NOWHERE,
        &["render", blob.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(cached_dirs(&home).len(), 1);
}

#[test]
fn a_file_that_does_not_match_its_manifest_is_refused_and_nothing_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let hub_root = tmp.path().join("hub");
    let dir = nginx_hub(&hub_root);
    std::fs::write(dir.join("templates/welcome.html.j2"), "<h1>tampered</h1>\n").unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let server = StaticServer::serve(&hub_root);
    let cfg = nginx_config(tmp.path(), "hub://nginx/rolling");
    let o = jrun(
        tmp.path(),
        &home,
        &server.base,
        &["render", cfg.to_str().unwrap()],
    );
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("welcome.html.j2 does not match jrun.manifest"),
        "{t}"
    );
    assert!(t.contains("nothing was kept"), "{t}");
    assert!(cached_dirs(&home).is_empty(), "{:?}", cached_dirs(&home));

    // A file the manifest does not list is never run.
    let unlisted = nginx_config(
        tmp.path(),
        "https://github.com/hyphatech/jailrun-hub/blob/main/playbooks/nginx/rolling/other.yml",
    );
    let o = jrun(
        tmp.path(),
        &home,
        &server.base,
        &["render", unlisted.to_str().unwrap()],
    );
    let t = text(&o);
    assert!(!o.status.success() && t.contains("is not listed"), "{t}");

    // Nothing cached and nothing reachable: a clear error.
    drop(server);
    let o = jrun(
        tmp.path(),
        &home,
        local_env::NOWHERE,
        &["render", cfg.to_str().unwrap()],
    );
    let t = text(&o);
    assert!(
        !o.status.success() && t.contains("no copy of it is cached yet"),
        "{t}"
    );
}
