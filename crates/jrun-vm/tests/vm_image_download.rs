//! Image download against a local HTTP server serving a small fake `.raw.xz` and its
//! `CHECKSUM.SHA512`: resume after an interrupted transfer, checksum mismatch rejected,
//! progress reported.

mod common;

use common::http::serve;
use jrun_vm::image::{fetch, ImageError, ImageSource, Progress};
use jrun_vm::qemu::Arch;
use jrun_vm::spec::Release;
use sha2::{Digest, Sha512};

fn fake_image() -> (Vec<u8>, Vec<u8>) {
    // Compressible but not trivial: a counter pattern with some noise.
    let raw: Vec<u8> = (0..1_500_000u32)
        .map(|i| ((i / 7) ^ ((i * 31) >> 5)) as u8)
        .collect();
    let mut xz = Vec::new();
    lzma_rs::xz_compress(&mut &raw[..], &mut xz).unwrap();
    (raw, xz)
}

fn source(base: &str) -> ImageSource {
    ImageSource {
        mirror: base.into(),
        release: Release::from_version("15.0").unwrap(),
        arch: Arch::X86_64,
    }
}

fn checksum_file(name: &str, data: &[u8]) -> String {
    let hex: String = Sha512::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("SHA512 (FreeBSD-15.0-RELEASE-amd64-BASIC-CLOUDINIT-zfs.vmdk.xz) = {}\nSHA512 ({name}) = {hex}\n", "0".repeat(128))
}

#[test]
fn an_interrupted_download_resumes_and_the_image_is_verified_and_sized() {
    let (raw, xz) = fake_image();
    let name = source("x").file_name();
    let cut = xz.len() / 3;
    let server = serve(xz.clone(), checksum_file(&name, &xz), Some(cut));
    let dir = tempfile::tempdir().unwrap();
    let src = source(&server.base);
    let disk_size = 8 << 20;

    let mut seen: Vec<Progress> = vec![];
    let err = fetch(&src, dir.path(), disk_size, &mut |p| seen.push(p)).unwrap_err();
    assert!(matches!(err, ImageError::Http { .. }), "{err}");
    assert!(err.to_string().contains("resume"), "{err}");
    let part = dir.path().join(format!("{name}.part"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);

    let mut progress: Vec<Progress> = vec![];
    let disk = fetch(&src, dir.path(), disk_size, &mut |p| progress.push(p)).unwrap();
    assert_eq!(
        *server.ranges.lock().unwrap(),
        ["-".to_string(), cut.to_string()],
        "the second request resumed"
    );
    // Progress starts where the first attempt stopped, grows, and ends at the total.
    assert_eq!(progress.first().unwrap().done, cut as u64);
    assert!(progress.windows(2).all(|w| w[0].done <= w[1].done));
    let last = progress.last().unwrap();
    assert_eq!(
        (last.done, last.total),
        (xz.len() as u64, Some(xz.len() as u64))
    );

    let got = std::fs::read(&disk).unwrap();
    assert_eq!(got.len() as u64, disk_size, "grown to JRUN_QEMU_DISK_SIZE");
    assert_eq!(&got[..raw.len()], &raw[..], "decompressed in Rust");
    assert!(got[raw.len()..].iter().all(|b| *b == 0));
    assert!(
        !part.exists() && !dir.path().join(&name).exists(),
        "the download is cleaned up"
    );
}

#[test]
fn a_checksum_mismatch_deletes_the_download_and_fails() {
    let (_, xz) = fake_image();
    let name = source("x").file_name();
    let server = serve(xz.clone(), checksum_file(&name, b"something else"), None);
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(&source(&server.base), dir.path(), 8 << 20, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImageError::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("was deleted"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing is left behind"
    );
}

#[test]
fn a_release_without_a_checksum_is_refused() {
    let (_, xz) = fake_image();
    let server = serve(xz, "SHA512 (other) = 00\n".into(), None);
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(&source(&server.base), dir.path(), 8 << 20, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImageError::NoChecksum { .. }), "{err}");
    assert!(
        server.ranges.lock().unwrap().is_empty(),
        "the image is not downloaded"
    );
}
