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
    use std::path::PathBuf;

    include!("tests/libucl/source.rs");

    fn source() -> PathBuf {
        println!("cargo:rerun-if-env-changed=LIBUCL_SRC");
        libucl_source()
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
