//! Named network namespaces, made and removed as `ip netns add`/`del` do (iproute2's
//! ip/ipnetns.c) but without spawning `ip`: a namespace is kept alive by a bind mount of
//! its `ns/net` file on `/run/netns/<name>`, that folder being a shared mount so the
//! namespaces show in every mount namespace.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

const RUN_DIR: &str = "/run/netns";

fn path_of(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(name)
}

/// `/run/netns` as a shared mount point, as `ip netns add` leaves it.
fn ensure_run_dir() -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(RUN_DIR)?;
    let share = || {
        mount(
            Some(""),
            RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match share() {
        Ok(()) => Ok(()),
        // Not a mount point yet: make it one (a bind mount on itself), then share it.
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(RUN_DIR),
                RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            Ok(share()?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates network namespace `name`. An existing one is an error (`AlreadyExists`), as
/// with `ip netns add`.
pub fn add(name: &str) -> io::Result<()> {
    ensure_run_dir()?;
    let path = path_of(name);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))?;
    let target = path.clone();
    // A namespace belongs to the thread that unshares it: a thread of its own, that ends
    // once the bind mount holds the namespace.
    let made = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        mount(
            Some(own.as_str()),
            &target,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&path);
        return Err(io::Error::new(
            e.kind(),
            format!("cannot create network namespace {name}: {e}"),
        ));
    }
    Ok(())
}

/// Deletes network namespace `name` (the kernel frees it, and the links in it, once no
/// process holds it). Absent is done.
pub fn delete(name: &str) -> io::Result<()> {
    let path = path_of(name);
    let _ = umount2(&path, MntFlags::MNT_DETACH);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
            e.kind(),
            format!("cannot remove {}: {e}", path.display()),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_is_made_entered_and_deleted() {
        let name = format!("jrun-nltest-{}", std::process::id());
        add(&name).unwrap();
        assert!(add(&name).is_err(), "a second add must fail");
        // Its own namespace: another loopback than ours, down until raised.
        let inside = crate::probe::in_netns(&name, || {
            std::fs::read_link("/proc/thread-self/ns/net").map(|p| p.display().to_string())
        })
        .unwrap();
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert_ne!(inside, ours.display().to_string());
        delete(&name).unwrap();
        assert!(!path_of(&name).exists());
        // Gone already: done.
        delete(&name).unwrap();
    }
}
