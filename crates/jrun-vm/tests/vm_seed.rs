//! The cloud-init seed built for real (genisoimage here; CI installs it) and read back
//! with `isoinfo`: volume `cidata`, Joliet names `user-data` and `meta-data`, with jrun's
//! generated key inside.

use std::process::Command;

use jrun_core::exec::SystemRunner;
use jrun_vm::seed::{build, ensure_ssh_key, meta_data, user_data};

fn isoinfo(args: &[&str]) -> String {
    let out = Command::new("isoinfo")
        .args(args)
        .output()
        .expect("isoinfo (install genisoimage)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn seed_image_carries_the_generated_key() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("id_ed25519");
    let key = ensure_ssh_key(&SystemRunner, &key_path).unwrap();
    assert!(key.to_string().starts_with("ssh-ed25519 "));
    // A second call keeps the key.
    assert_eq!(ensure_ssh_key(&SystemRunner, &key_path).unwrap(), key);

    let iso = dir.path().join("seed.iso");
    build(&SystemRunner, &key, &iso).unwrap();
    let iso_s = iso.to_str().unwrap();
    assert!(isoinfo(&["-d", "-i", iso_s]).contains("Volume id: cidata"));
    assert_eq!(
        isoinfo(&["-J", "-i", iso_s, "-x", "/user-data"]),
        user_data(&key)
    );
    assert_eq!(
        isoinfo(&["-J", "-i", iso_s, "-x", "/meta-data"]),
        meta_data()
    );
    // The temporary folder the image was built from is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
}
