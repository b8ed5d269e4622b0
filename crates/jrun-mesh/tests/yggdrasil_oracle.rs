//! Our address derivation and config rendering checked against the real `yggdrasil` binary
//! (Debian's package; CI installs it).

use std::path::Path;
use std::process::Command;

use jrun_mesh::yggdrasil::{NodeConfig, NodeKey, TunInterface, YggVersion};
use jrun_mesh::Identity;

fn rendered_config(dir: &Path, id: &Identity) -> std::path::PathBuf {
    let config = NodeConfig {
        listen: vec!["tcp://127.0.0.1:0".parse().unwrap()],
        peers: vec![],
        if_name: TunInterface::None,
        admin_socket: None,
        key: NodeKey {
            identity: id.clone(),
            pem_path: dir.join("k.pem"),
        },
    };
    let path = dir.join(format!("{}.conf", hex::encode(&id.public_key()[..8])));
    std::fs::write(&path, config.render(YggVersion::V0_4).unwrap()).unwrap();
    path
}

fn yggdrasil(args: &[&str]) -> String {
    let out = Command::new("yggdrasil").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "yggdrasil {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn addresses_match_yggdrasil_for_200_random_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<Identity> = (0..200).map(|_| Identity::generate().unwrap()).collect();
    // Two workers: the machines have two cores.
    std::thread::scope(|s| {
        for half in ids.chunks(100) {
            let dir = dir.path();
            s.spawn(move || {
                for id in half {
                    let conf = rendered_config(dir, id);
                    let theirs = yggdrasil(&["-useconffile", conf.to_str().unwrap(), "-address"]);
                    assert_eq!(theirs.trim(), id.address().to_string(), "key {:?}", id);
                }
            });
        }
    });
}

#[test]
fn yggdrasil_accepts_the_rendered_config_and_keeps_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let id = Identity::generate().unwrap();
    let conf = rendered_config(dir.path(), &id);
    let normalised = yggdrasil(&[
        "-useconffile",
        conf.to_str().unwrap(),
        "-normaliseconf",
        "-json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&normalised).unwrap();
    assert_eq!(v["PrivateKey"], id.ygg04_hex().as_str());
    assert_eq!(v["Listen"][0], "tcp://127.0.0.1:0");
    assert_eq!(v["IfName"], "none");
    assert_eq!(v["AdminListen"], "none");
    assert_eq!(v["MulticastInterfaces"], serde_json::json!([]));
}
