//! The key store under `$JRUN_HOME/keys`: one Yggdrasil identity per jail and one for the
//! VM node, created on first use and then kept, so addresses survive restarts and redeploys.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::identity::{Identity, IdentityError};
use crate::DnsLabel;

/// Where jrun keeps its Yggdrasil keys.
///
/// Layout: `<home>/keys/vm.pem`, `<home>/keys/jails/<jail>.pem`, `<home>/keys/<name>.pem`
/// for other nodes (e.g. the relay's). Directories are 0700, key files 0600.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

/// A key together with the file it lives in (Yggdrasil 0.5 reads the file itself).
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The keypair.
    pub identity: Identity,
    /// Its PEM file.
    pub path: PathBuf,
}

impl KeyStore {
    /// The key store of a jrun home directory (`$JRUN_HOME`). Nothing is created until a
    /// key is asked for.
    pub fn open(home: &Path) -> Self {
        KeyStore {
            dir: home.join("keys"),
        }
    }

    /// The directory holding the keys.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of a jail's key (whether or not it exists yet).
    pub fn jail_key_path(&self, jail: &DnsLabel) -> PathBuf {
        self.dir.join("jails").join(format!("{jail}.pem"))
    }

    /// The file of the VM node's key.
    pub fn vm_key_path(&self) -> PathBuf {
        self.dir.join("vm.pem")
    }

    /// A jail's identity, generated on first call and stable afterwards.
    pub fn jail_key(&self, jail: &DnsLabel) -> Result<StoredKey, IdentityError> {
        self.load_or_create(self.jail_key_path(jail))
    }

    /// The VM node's identity, generated on first call and stable afterwards.
    pub fn vm_key(&self) -> Result<StoredKey, IdentityError> {
        self.load_or_create(self.vm_key_path())
    }

    /// Another node's identity, e.g. `named_key("relay")` for the relay's Yggdrasil node.
    pub fn named_key(&self, name: &DnsLabel) -> Result<StoredKey, IdentityError> {
        self.load_or_create(self.dir.join(format!("{name}.pem")))
    }

    /// The address a jail has, if its key exists (no key is created).
    pub fn existing_jail_key(&self, jail: &DnsLabel) -> Result<Option<StoredKey>, IdentityError> {
        let path = self.jail_key_path(jail);
        if !path.exists() {
            return Ok(None);
        }
        let identity = Identity::load(&path)?;
        Ok(Some(StoredKey { identity, path }))
    }

    fn load_or_create(&self, path: PathBuf) -> Result<StoredKey, IdentityError> {
        let dir = path.parent().expect("key paths live inside the store");
        create_private_dir(dir).map_err(|source| IdentityError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let identity = Identity::load_or_create(&path)?;
        Ok(StoredKey { identity, path })
    }
}

/// Creates `dir` (and parents) with mode 0700 where it is new; tightens an existing one.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let perms = fs::metadata(dir)?.permissions();
    if perms.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_jail_and_stable() {
        let home = tempfile::tempdir().unwrap();
        let store = KeyStore::open(home.path());
        let web = DnsLabel::new("web").unwrap();
        let db = DnsLabel::new("db").unwrap();
        assert!(store.existing_jail_key(&web).unwrap().is_none());
        let a = store.jail_key(&web).unwrap();
        let b = store.jail_key(&db).unwrap();
        let vm = store.vm_key().unwrap();
        assert_ne!(a.identity, b.identity);
        assert_ne!(a.identity, vm.identity);
        assert_eq!(a.path, home.path().join("keys/jails/web.pem"));
        assert_eq!(vm.path, home.path().join("keys/vm.pem"));

        // A new store on the same home (a redeploy) sees the same keys.
        let again = KeyStore::open(home.path());
        assert_eq!(again.jail_key(&web).unwrap().identity, a.identity);
        assert_eq!(again.vm_key().unwrap().identity, vm.identity);
        assert_eq!(
            again.existing_jail_key(&db).unwrap().unwrap().identity,
            b.identity
        );

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.path().join("keys")), 0o700);
        assert_eq!(mode(&home.path().join("keys/jails")), 0o700);
        assert_eq!(mode(&a.path), 0o600);
    }

    #[test]
    fn concurrent_first_use_agrees_on_one_key() {
        let home = tempfile::tempdir().unwrap();
        let web = DnsLabel::new("web").unwrap();
        let keys: Vec<Identity> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| KeyStore::open(home.path()).jail_key(&web).unwrap().identity))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }
}
