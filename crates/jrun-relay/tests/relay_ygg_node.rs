//! The relay's supervised Yggdrasil node, with Debian's real `yggdrasil` (no TUN, so no
//! root needed): it listens, is restarted when killed, and is gone after stop.

use std::path::PathBuf;
use std::time::Duration;

use jrun_mesh::yggdrasil::{NodeConfig, NodeKey, TunInterface, YggVersion};
use jrun_mesh::{DnsLabel, KeyStore};
use jrun_relay::ygg_node::{YggNode, YggNodeSpec};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

async fn accepts(port: u16) -> bool {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

#[tokio::test]
async fn the_node_listens_is_restarted_and_stops() {
    let home = tempfile::tempdir().unwrap();
    let key = KeyStore::open(home.path())
        .named_key(&DnsLabel::new("relay").unwrap())
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let binary = PathBuf::from("yggdrasil");
    let spec = YggNodeSpec {
        version: YggVersion::detect(&binary).unwrap(),
        binary,
        config_path: home.path().join("relay/yggdrasil.conf"),
        config: NodeConfig {
            listen: vec![format!("tcp://127.0.0.1:{port}").parse().unwrap()],
            peers: vec![],
            if_name: TunInterface::None,
            admin_socket: None,
            key: NodeKey {
                identity: key.identity.clone(),
                pem_path: key.path.clone(),
            },
        },
    };
    let mut node = YggNode::start(spec).unwrap();
    let first = node.next_pid(None).await.unwrap();
    assert!(accepts(port).await, "the node does not listen on {port}");

    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(15), node.next_pid(Some(first)))
        .await
        .expect("the node was not restarted")
        .unwrap();
    assert_ne!(first, second);
    assert!(accepts(port).await, "the restarted node does not listen");

    node.stop().await;
    assert!(!alive(second), "the node outlived stop");
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}
