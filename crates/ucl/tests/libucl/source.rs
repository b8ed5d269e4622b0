// Where libucl 0.7.3's C sources are: `LIBUCL_SRC`, or the libucl-sys 0.1.5 package that
// `tests/libucl/fetch-source.sh` put in cargo's registry. Included (`include!`) by the
// differential test and by build.rs (the bench's C library), so both compile the same code.

fn libucl_source() -> std::path::PathBuf {
    use std::path::{Path, PathBuf};
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
        "libucl's sources were not found in {}: run `sh crates/ucl/tests/libucl/fetch-source.sh` \
         or set LIBUCL_SRC",
        registry.display()
    );
}
