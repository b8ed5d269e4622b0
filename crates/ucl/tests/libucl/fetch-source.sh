#!/bin/sh
# Puts libucl's C sources (bundled in the crates.io package libucl-sys 0.1.5, which is
# libucl 0.7.3) into cargo's registry cache and prints their directory. Only cargo's
# ordinary registry download is used; nothing is built here.
set -eu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "fetch-libucl-source"
version = "0.0.0"
edition = "2021"

[dependencies]
libucl-sys = "=0.1.5"
TOML
: > "$work/src/lib.rs"
cargo fetch --quiet --manifest-path "$work/Cargo.toml"
home=${CARGO_HOME:-$HOME/.cargo}
for d in "$home"/registry/src/*/libucl-sys-0.1.5/libucl; do
    if [ -f "$d/src/ucl_parser.c" ]; then
        echo "$d"
        exit 0
    fi
done
echo "libucl-sys 0.1.5 was fetched but its sources were not found under $home/registry/src" >&2
exit 1
