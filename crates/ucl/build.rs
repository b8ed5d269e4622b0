//! With the `libucl-bench` feature, compiles libucl 0.7.3's C sources (the ones the
//! differential test uses: `LIBUCL_SRC`, or cargo's registry after
//! `sh tests/libucl/fetch-source.sh`) into a static library for benches/vs_libucl.rs.
//! Without it, does nothing.

fn main() {
    #[cfg(feature = "libucl-bench")]
    libucl::build();
}

#[cfg(feature = "libucl-bench")]
mod libucl {
    use std::path::{Path, PathBuf};

    fn source() -> PathBuf {
        println!("cargo:rerun-if-env-changed=LIBUCL_SRC");
        if let Some(dir) = std::env::var_os("LIBUCL_SRC") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
            .expect("CARGO_HOME or HOME is set");
        let registry = home.join("registry/src");
        for entry in std::fs::read_dir(&registry).into_iter().flatten().flatten() {
            let dir = entry.path().join("libucl-sys-0.1.5/libucl");
            if dir.join("src/ucl_parser.c").is_file() {
                return dir;
            }
        }
        panic!(
            "libucl's sources were not found in {}: run `sh crates/ucl/tests/libucl/fetch-source.sh` or set LIBUCL_SRC",
            registry.display()
        );
    }

    pub(super) fn build() {
        let src = source();
        let mut build = cc::Build::new();
        // -O2, as distributions build libucl, whatever the bench profile says.
        build.opt_level(2).warnings(false).flag_if_supported("-w");
        for inc in ["include", "src", "uthash", "klib"] {
            build.include(src.join(inc));
        }
        for entry in std::fs::read_dir(src.join("src")).expect("libucl src dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "c") {
                println!("cargo:rerun-if-changed={}", path.display());
                build.file(path);
            }
        }
        build.compile("ucl_c");
        println!("cargo:rustc-link-lib=m");
    }
}
