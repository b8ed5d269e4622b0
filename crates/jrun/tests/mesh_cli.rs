//! `jrun mesh keygen` and `jrun mesh address`, end to end, with openssl and yggdrasil as
//! independent witnesses.

mod local_env;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use jrun_mesh::yggdrasil::{NodeConfig, NodeKey, TunInterface, YggVersion};
use jrun_mesh::Identity;

fn jrun(args: &[&str]) -> Output {
    local_env::jrun().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// What the real yggdrasil says the address of this key is.
fn yggdrasil_address(dir: &Path, id: &Identity) -> String {
    let config = NodeConfig {
        listen: vec![],
        peers: vec![],
        if_name: TunInterface::None,
        admin_socket: None,
        key: NodeKey {
            identity: id.clone(),
            pem_path: dir.join("unused.pem"),
        },
    };
    let conf = dir.join("ygg.conf");
    std::fs::write(&conf, config.render(YggVersion::V0_4).unwrap()).unwrap();
    let out = Command::new("yggdrasil")
        .args(["-useconffile", conf.to_str().unwrap(), "-address"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn keygen_writes_a_private_key_whose_address_matches_yggdrasil() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.pem");
    let key_str = key.to_str().unwrap();
    let printed = stdout(&jrun(&["mesh", "keygen", key_str]));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(stdout(&jrun(&["mesh", "address", key_str])), printed);
    let id = Identity::load(&key).unwrap();
    assert_eq!(printed.trim(), yggdrasil_address(dir.path(), &id));

    // openssl reads what we wrote.
    let out = Command::new("openssl")
        .args(["pkey", "-in", key_str, "-noout"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Never overwritten.
    let before = std::fs::read(&key).unwrap();
    let again = jrun(&["mesh", "keygen", key_str]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn address_reads_keys_openssl_generates() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("openssl.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            key.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let printed = stdout(&jrun(&["mesh", "address", key.to_str().unwrap()]));
    let id = Identity::load(&key).unwrap();
    assert_eq!(printed.trim(), yggdrasil_address(dir.path(), &id));
}

#[test]
fn address_explains_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = jrun(&[
        "mesh",
        "address",
        dir.path().join("nope.pem").to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the key file"));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    let bad = jrun(&["mesh", "address", junk.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an ed25519"));
}
