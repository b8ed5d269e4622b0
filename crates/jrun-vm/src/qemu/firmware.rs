//! Where UEFI firmware lives on the usual systems; `JRUN_QEMU_BIOS` overrides the search.

use std::path::{Path, PathBuf};

use super::Arch;

/// Candidate firmware files, most specific first (Debian/Ubuntu, Fedora, Arch, Homebrew, MacPorts).
pub fn candidates(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &[
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/qemu/OVMF.fd",
            "/usr/share/edk2/ovmf/OVMF_CODE.fd",
            "/usr/share/edk2-ovmf/x64/OVMF_CODE.fd",
            "/usr/share/edk2/x64/OVMF_CODE.fd",
            "/opt/homebrew/share/qemu/edk2-x86_64-code.fd",
            "/usr/local/share/qemu/edk2-x86_64-code.fd",
            "/opt/local/share/qemu/edk2-x86_64-code.fd",
        ],
        Arch::Aarch64 => &[
            "/usr/share/AAVMF/AAVMF_CODE.fd",
            "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
            "/usr/share/edk2/aarch64/QEMU_EFI.fd",
            "/usr/share/edk2-armvirt/aarch64/QEMU_CODE.fd",
            "/opt/homebrew/share/qemu/edk2-aarch64-code.fd",
            "/usr/local/share/qemu/edk2-aarch64-code.fd",
            "/opt/local/share/qemu/edk2-aarch64-code.fd",
        ],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("JRUN_QEMU_BIOS={0} does not exist; point it at a UEFI firmware file (OVMF/AAVMF/edk2 code)")]
    Override(PathBuf),
    #[error("no UEFI firmware found for {arch:?} (looked in {looked}); install ovmf (x86_64) or qemu-efi-aarch64, or set JRUN_QEMU_BIOS")]
    NotFound { arch: Arch, looked: String },
}

/// The firmware to boot with: `override_path` if given, else the first candidate found.
pub fn find(arch: Arch, override_path: Option<&Path>) -> Result<PathBuf, FirmwareError> {
    find_in(arch, override_path, candidates(arch).iter().map(Path::new))
}

fn find_in<'a>(
    arch: Arch,
    override_path: Option<&Path>,
    candidates: impl Iterator<Item = &'a Path> + Clone,
) -> Result<PathBuf, FirmwareError> {
    if let Some(p) = override_path {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(FirmwareError::Override(p.to_path_buf()))
        };
    }
    candidates
        .clone()
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| FirmwareError::NotFound {
            arch,
            looked: candidates
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The variable-store template that goes with split firmware (`OVMF_CODE.fd` →
/// `OVMF_VARS.fd`), when there is one beside it.
pub fn vars_template(code: &Path) -> Option<PathBuf> {
    let name = code.file_name()?.to_str()?;
    let vars = if name.contains("CODE") {
        name.replace("CODE", "VARS")
    } else if name.contains("code") {
        name.replace("code", "vars")
    } else {
        return None;
    };
    let p = code.with_file_name(vars);
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_wins_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let fw = dir.path().join("code.fd");
        std::fs::write(&fw, b"x").unwrap();
        assert_eq!(find(Arch::X86_64, Some(&fw)).unwrap(), fw);
        assert!(matches!(
            find(Arch::X86_64, Some(&dir.path().join("nope"))),
            Err(FirmwareError::Override(_))
        ));
    }

    #[test]
    fn split_firmware_has_a_vars_template() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("OVMF_CODE_4M.fd");
        std::fs::write(&code, b"c").unwrap();
        assert_eq!(vars_template(&code), None);
        std::fs::write(dir.path().join("OVMF_VARS_4M.fd"), b"v").unwrap();
        assert_eq!(
            vars_template(&code),
            Some(dir.path().join("OVMF_VARS_4M.fd"))
        );
        assert_eq!(vars_template(Path::new("/x/OVMF.fd")), None);
    }

    #[test]
    fn first_existing_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.fd"), dir.path().join("b.fd"));
        std::fs::write(&b, b"x").unwrap();
        let list = [a.as_path(), b.as_path()];
        assert_eq!(
            find_in(Arch::X86_64, None, list.iter().copied()).unwrap(),
            b
        );
        let err = find_in(Arch::Aarch64, None, [a.as_path()].iter().copied()).unwrap_err();
        assert!(err.to_string().contains("a.fd"), "{err}");
    }
}
