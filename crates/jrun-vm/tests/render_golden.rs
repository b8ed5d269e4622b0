//! Golden files: every file jrun writes into the guest for a realistic stack, pinned.

mod common;

use jrun_vm::render::render_all;
use jrun_vm::spec::YggVersion;

#[test]
fn every_guest_file_is_pinned() {
    let spec = common::stack(YggVersion::V0_5);
    let r = render_all(&spec, &common::sources()).unwrap();
    for f in &r.files {
        let snap = f.review_path.replace('/', "__");
        insta::with_settings!({ description => f.guest_path.clone(), omit_expression => true }, {
            insta::assert_snapshot!(snap, f.content);
        });
    }
    insta::assert_snapshot!("provision.sh", r.script.text);
    let steps: Vec<String> = r
        .script
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{} {s}", i + 1))
        .collect();
    insta::assert_snapshot!("provision-steps", steps.join("\n"));
}

#[test]
fn yggdrasil_04_configs_are_pinned() {
    let spec = common::stack(YggVersion::V0_4);
    let r = render_all(&spec, &common::sources()).unwrap();
    let ygg: Vec<_> = r
        .files
        .iter()
        .filter(|f| f.review_path.ends_with("yggdrasil.conf"))
        .collect();
    assert_eq!(ygg.len(), 4, "the VM node and three jails");
    assert!(
        !r.files.iter().any(|f| f.secret),
        "0.4 keeps the key inside the config"
    );
    for f in ygg {
        insta::assert_snapshot!(
            format!("v04-{}", f.review_path.replace('/', "__")),
            f.content
        );
    }
}
