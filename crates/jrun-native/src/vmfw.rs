//! Loading the VM namespace's firewall on every `up` without paying an `nft` process when
//! nothing changed. The kernel's table may have been deleted or flushed behind jrun's back,
//! so a cached copy alone proves nothing; but the kernel counts every committed nftables
//! change in a namespace (its generation), so "the same ruleset as last loaded, and no
//! change in the namespace since" is proof that the kernel still holds it.

use jrun_core::exec::Runner;
use jrun_core::runtime::RuntimeError;

use crate::names::Layout;
use crate::runtime::other;
use crate::{nl, plumbing, probe};

/// The VM namespace's identity (its inode: a namespace made again is another) and its
/// nftables generation, or `None` when they cannot be read.
fn generation(layout: &Layout) -> Option<(u64, u32)> {
    use std::os::unix::fs::MetadataExt;
    let ns = layout.vm_ns();
    let ino = std::fs::metadata(std::path::Path::new("/run/netns").join(&ns))
        .ok()?
        .ino();
    let gen = probe::in_netns(&ns, nl::nft_generation).ok()?;
    Some((ino, gen))
}

/// Loads `ruleset` into the VM namespace unless it is what the kernel holds already.
pub fn load(runner: &dyn Runner, layout: &Layout, ruleset: &str) -> Result<(), RuntimeError> {
    // The copy in run/ is also for people reading it.
    let saved = layout.run_dir().join("vm.nft");
    let gen_file = layout.run_dir().join("vm.nft.gen");
    let recorded = std::fs::read_to_string(&gen_file).ok().and_then(|g| {
        let (ino, gen) = g.trim().split_once(':')?;
        Some((ino.parse::<u64>().ok()?, gen.parse::<u32>().ok()?))
    });
    let before = generation(layout);
    if before.is_some()
        && before == recorded
        && std::fs::read_to_string(&saved).is_ok_and(|s| s == ruleset)
    {
        return Ok(());
    }
    // Whatever is recorded is stale from here on, whether the load works or not.
    let _ = std::fs::remove_file(&gen_file);
    plumbing::nft_apply(runner, &layout.vm_ns(), ruleset)
        .map_err(|e| other("cannot load the VM firewall", e))?;
    crate::unbound::write_atomic(&saved, ruleset).map_err(|source| RuntimeError::Io {
        what: "cannot save the VM firewall's copy".into(),
        path: saved.clone(),
        source,
    })?;
    // Only when this load was the one change since `before` does its generation stand for
    // this ruleset; otherwise nothing is recorded and the next `up` loads it again.
    let after = generation(layout);
    if let (Some((ino_b, b)), Some((ino_a, a))) = (before, after) {
        if ino_a == ino_b && a == b.wrapping_add(1) {
            // Not durable on purpose: a lost or torn record only means one more load. Its
            // mode is set, not left to the umask: root refuses a home others can write.
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&gen_file)
                .and_then(|mut f| f.write_all(format!("{ino_a}:{a}").as_bytes()));
        }
    }
    Ok(())
}
