//! Remote setup steps on the native runtime, end to end (root): a shell script and an
//! ansible playbook named by GitHub URLs are fetched from a local stand-in for GitHub's raw
//! host (`JRUN_GITHUB_RAW`), checked against their `jrun.manifest`, and run in the jail by
//! real `ansible-playbook -c local` (its template found beside the playbook). With the
//! server gone, `up --provision` runs them again from the cache.

mod local_env;
mod native_support;
mod static_http;

use std::path::Path;

use native_support::Instance;
use static_http::StaticServer;

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `acme/site@v1:setup/` holding a script, a playbook, its template and the manifest.
fn publish(raw_root: &Path) {
    let dir = raw_root.join("acme/site/v1/setup");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let files: [(&str, &str); 3] = [
        ("init.sh", "#!/bin/sh\nset -e\necho \"shell step in $PWD\" > \"$OUT/shell.txt\"\necho shell step done\n"),
        (
            "site.yml",
            "- name: Site\n  hosts: localhost\n  gather_facts: false\n  tasks:\n    - name: Greeting from a template\n      ansible.builtin.template:\n        src: greeting.j2\n        dest: \"{{ OUT }}/greeting.txt\"\n        mode: \"0644\"\n",
        ),
        ("templates/greeting.j2", "{{ GREETING }} ({{ inventory_hostname }})\n"),
    ];
    let mut manifest = String::new();
    for (rel, text) in files {
        std::fs::write(dir.join(rel), text).unwrap();
        manifest.push_str(&format!("{}  {rel}\n", sha256(text.as_bytes())));
    }
    std::fs::write(dir.join("jrun.manifest"), manifest).unwrap();
}

#[test]
fn github_steps_are_fetched_checked_run_by_ansible_and_rerun_offline() {
    let mut inst = Instance::new(false);
    let raw_root = inst.home.path().join("raw");
    publish(&raw_root);
    let server = StaticServer::serve(&raw_root);
    inst.set_env("JRUN_GITHUB_RAW", &server.base);
    // Jails share the host's root: the steps write inside the test's home.
    let out = inst.home.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let cfg = inst.config(&format!(
        r#"jail "web" {{
  setup {{
    script {{
      type = "shell";
      url = "https://github.com/acme/site/blob/v1/setup/init.sh";
      vars {{ OUT = "{out}"; }}
    }}
    site {{
      type = "ansible";
      url = "https://github.com/acme/site/blob/v1/setup/site.yml";
      vars {{ OUT = "{out}"; GREETING = "hello from the hub"; }}
    }}
  }}
}}
"#,
        out = out.display()
    ));
    inst.start();
    let first = inst.run(&["up", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("fetching 3 files"), "{stderr}");
    let greeting = std::fs::read_to_string(out.join("greeting.txt")).unwrap();
    assert_eq!(greeting, "hello from the hub (localhost)\n");
    let shell = std::fs::read_to_string(out.join("shell.txt")).unwrap();
    assert!(
        shell.contains("/playbooks/site_v1_"),
        "it ran from its cached folder: {shell}"
    );
    assert!(server
        .hits()
        .contains(&"/acme/site/v1/setup/jrun.manifest".to_string()));

    // Offline: the same steps run again from the checked copy.
    drop(server);
    std::fs::remove_file(out.join("greeting.txt")).unwrap();
    let again = inst.run(&["up", "--provision", cfg.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("using the copy cached in"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("greeting.txt")).unwrap(),
        "hello from the hub (localhost)\n"
    );
}
