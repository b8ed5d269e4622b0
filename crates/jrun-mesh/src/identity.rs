//! One Yggdrasil identity: an ed25519 keypair, its address, and the two key formats
//! Yggdrasil reads (PEM PKCS#8 for 0.5, hex seed‖public key for 0.4).

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::SigningKey;
use zeroize::Zeroizing;

use crate::YggAddress;

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The OS random number generator failed.
    #[error("could not draw a new key from the OS random number generator: {0}")]
    Rng(String),
    /// A key file exists but cannot be read.
    #[error("cannot read the key file {path}: {source}; check its permissions (it must stay, or the address changes)")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A key file holds something that is not an ed25519 PKCS#8 PEM key.
    #[error("{path} is not an ed25519 `PRIVATE KEY` PEM file ({cause}); restore it from a backup, or delete it to get a new key and a new address")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What the decoder said.
        cause: String,
    },
    /// A key file is readable or writable by users other than its owner.
    #[error("the key file {path} has mode {mode:04o}: other users may read or change this private key; run `chmod 600 {path}` (and consider the key leaked if others could read it)")]
    Shared {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file belongs to another user.
    #[error("the key file {path} belongs to uid {owner}, not to the user running jrun: whoever owns it knows this private key; remove it (a new key is made) or restore your own")]
    Foreign {
        /// The key file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// A key file could not be written.
    #[error("cannot write the key file {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `keygen` refuses to replace an existing key (its address would be lost).
    #[error("{0} already exists; refusing to overwrite a key (its address would be lost)")]
    Exists(PathBuf),
}

/// An ed25519 keypair that is a node on the Yggdrasil network.
///
/// `Debug` never prints the private key.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// A new keypair drawn from the OS random number generator.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| IdentityError::Rng(e.to_string()))?;
        Ok(Identity::from_seed(&seed))
    }

    /// The keypair of a 32-byte ed25519 seed (the private key proper).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Identity {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8 v1 or v2, ed25519).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, String> {
        let pair = KeypairBytes::from_pkcs8_pem(pem).map_err(|e| e.to_string())?;
        let id = Identity::from_seed(&pair.secret_key);
        // A v2 file carries its public key too: it must belong to the seed.
        if let Some(public) = pair.public_key {
            if *public.as_ref() != id.public_key() {
                return Err("the public key in the file does not match its private key".into());
            }
        }
        Ok(id)
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// An ed25519 signature of `message` by this key (pairing v2 signs roster entries).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.key.sign(message).to_bytes()
    }

    /// The node's Yggdrasil address.
    pub fn address(&self) -> YggAddress {
        YggAddress::from_public_key(&self.public_key())
    }

    /// The stored form: PEM `PRIVATE KEY`, PKCS#8 v1 (what Go's `MarshalPKCS8PrivateKey` and
    /// `openssl genpkey` write, and what Yggdrasil 0.5 reads through `PrivateKeyPath`).
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let pair = KeypairBytes {
            secret_key: self.key.to_bytes(),
            public_key: None,
        };
        pair.to_pkcs8_pem(LineEnding::LF)
            .expect("encoding a 32-byte ed25519 key as PKCS#8 cannot fail")
    }

    /// Yggdrasil 0.4's `PrivateKey`: hex of the 64 bytes seed ‖ public key.
    pub fn ygg04_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.to_keypair_bytes()))
    }

    /// Reads a key file written by [`Identity::write_new`] (or any ed25519 PKCS#8 PEM file).
    /// A key file that others may read or write is refused ([`IdentityError::Shared`]).
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        let read_err = |source| IdentityError::Read {
            path: path.to_path_buf(),
            source,
        };
        // A link is not followed: a key is a file of its own.
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path)
                .map_err(read_err)?
        };
        let meta = file.metadata().map_err(read_err)?;
        let mut pem = Zeroizing::new(String::new());
        file.read_to_string(&mut pem).map_err(read_err)?;
        let id = Identity::from_pkcs8_pem(&pem).map_err(|cause| IdentityError::Malformed {
            path: path.to_path_buf(),
            cause,
        })?;
        // Checked once the file is known to be a key: a shared file that holds none is
        // better reported as what it is.
        if crate::fsutil::is_shared(&meta) {
            return Err(IdentityError::Shared {
                path: path.to_path_buf(),
                mode: meta.permissions().mode() & 0o7777,
            });
        }
        // Someone else's file, even 0600, is a key they know: they could speak as this
        // jail to every peer.
        let me = nix::unistd::geteuid().as_raw();
        if std::os::unix::fs::MetadataExt::uid(&meta) != me {
            return Err(IdentityError::Foreign {
                path: path.to_path_buf(),
                owner: std::os::unix::fs::MetadataExt::uid(&meta),
            });
        }
        Ok(id)
    }

    /// Writes this key to `path` atomically with mode 0600; never replaces an existing file
    /// ([`IdentityError::Exists`]).
    pub fn write_new(&self, path: &Path) -> Result<(), IdentityError> {
        let write_err = |source| IdentityError::Write {
            path: path.to_path_buf(),
            source,
        };
        // Owner-only from the first byte; an existing key is never replaced.
        crate::fsutil::write_atomic_new(path, self.to_pkcs8_pem().as_bytes(), 0o600).map_err(
            |source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    IdentityError::Exists(path.to_path_buf())
                } else {
                    write_err(source)
                }
            },
        )
    }

    /// The key at `path`, created (atomically, 0600) if there is none yet. An existing file
    /// is never replaced: a file that cannot be read is an error, not a reason for a new key.
    pub fn load_or_create(path: &Path) -> Result<Self, IdentityError> {
        match fs::symlink_metadata(path) {
            Ok(_) => return Identity::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IdentityError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let fresh = Identity::generate()?;
        match fresh.write_new(path) {
            Ok(()) => Ok(fresh),
            // Someone created it between our look and our write: theirs is the key.
            Err(IdentityError::Exists(_)) => Identity::load(path),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.public_key() == other.public_key()
    }
}

impl Eq for Identity {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn pem_round_trips_and_is_pkcs8_v1() {
        let id = Identity::from_seed(&[7; 32]);
        let pem = id.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", *pem);
        // v1 ed25519 PKCS#8 is always 48 bytes of DER: 64 base64 characters.
        assert_eq!(pem.lines().nth(1).unwrap().len(), 64);
        assert_eq!(Identity::from_pkcs8_pem(&pem).unwrap(), id);
    }

    #[test]
    fn reads_what_openssl_writes() {
        // `openssl genpkey -algorithm ed25519` output for a fixed test key (RFC 8410 §10.3).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let id = Identity::from_pkcs8_pem(pem).unwrap();
        assert_eq!(
            hex::encode(id.public_key()),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
    }

    #[test]
    fn ygg04_hex_is_seed_then_public_key() {
        let id = Identity::from_seed(&[1; 32]);
        let hex = id.ygg04_hex();
        assert_eq!(hex.len(), 128);
        assert_eq!(&hex[..64], "01".repeat(32));
        assert_eq!(&hex[64..], hex::encode(id.public_key()));
    }

    #[test]
    fn debug_hides_the_private_key() {
        let id = Identity::from_seed(&[9; 32]);
        let shown = format!("{id:?}");
        assert!(shown.contains(&id.address().to_string()));
        assert!(!shown.contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn refuses_garbage_and_mismatched_keys() {
        assert!(Identity::from_pkcs8_pem("hello").is_err());
        let rsa_like = "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASCAT4wggE6AgEAAkEA\n-----END PRIVATE KEY-----\n";
        assert!(Identity::from_pkcs8_pem(rsa_like).is_err());
    }

    #[test]
    fn write_new_is_0600_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let id = Identity::generate().unwrap();
        id.write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let other = Identity::generate().unwrap();
        assert!(matches!(
            other.write_new(&path),
            Err(IdentityError::Exists(_))
        ));
        assert_eq!(Identity::load(&path).unwrap(), id);
        // Only the key file is left behind, no temp files.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn load_or_create_is_stable_and_keeps_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let first = Identity::load_or_create(&path).unwrap();
        let again = Identity::load_or_create(&path).unwrap();
        assert_eq!(first, again);
        fs::write(&path, "not a key").unwrap();
        let err = Identity::load_or_create(&path).unwrap_err();
        assert!(matches!(err, IdentityError::Malformed { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn key_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            panic!("needs root to give the file away; CI runs as root");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        Identity::generate().unwrap().write_new(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let err = Identity::load(&path).unwrap_err();
        assert!(
            matches!(err, IdentityError::Foreign { owner: 65534, .. }),
            "{err}"
        );
        // A link to a key is not followed either.
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            Identity::load(&link),
            Err(IdentityError::Read { .. })
        ));
    }

    #[test]
    fn load_refuses_keys_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let id = Identity::generate().unwrap();
        id.write_new(&path).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = Identity::load(&path).unwrap_err();
            assert!(
                matches!(err, IdentityError::Shared { .. }),
                "{mode:o}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(Identity::load_or_create(&path).is_err());
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(Identity::load(&path).unwrap(), id);
    }
}
