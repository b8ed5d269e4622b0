//! Runs a generated provisioning script on this machine with every FreeBSD command
//! replaced by a stub that records its argv, and `put_file` recording what it would write.
//! What the script *does* is then compared with what jrun rendered.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use jrun_vm::render::SCRIPT_PRELUDE;

/// Commands the script may call; each becomes a recording stub.
const STUBS: &[&str] = &[
    "service",
    "ifconfig",
    "sysctl",
    "zfs",
    "kldload",
    "pfctl",
    "local-unbound-setup",
    "local-unbound-checkconf",
    "install",
    "grep",
    "cmp",
    "nc",
    "jls",
    "jail",
    "jexec",
    "fetch",
    "tar",
    "mount",
    "mkdir",
    "rm",
    "env",
    "touch",
    "sh",
];

const TEST_PRELUDE: &str = r#"set -eu
jrun_step=0
jrun_dirty=0
n=0
step() { jrun_step="$1"; printf 'jrun-step %s\n' "$1"; }
put_file() {
    n=$((n + 1))
    printf '%s' "$1" > "$OUT/files/$n.path"
    printf '%s' "$3" > "$OUT/files/$n.content"
    jrun_dirty=1
}
put_jail_file() { put_file "$2$3" "$4" "$5"; }
jail_dir() { mkdir -p "$1$2"; }
is_mounted() { return 1; }
release_url() { printf 'https://download.invalid/%s/base.txz' "$1"; }
# The real fetch_base (downloads, checks against MANIFEST, renames) is run by
# run_fetch_base; here it is the download alone, so the call is recorded.
fetch_base() { fetch -o "$2/base.txz" "$(release_url "$1")"; }
detached() { "$@"; }
wait_ready() { printf 'jrun-ready %s %s 0\n' "$1" "$3"; }
"#;

const STUB: &str = r#"#!/bin/sh
# One printf, so one append: commands of a pipeline run at once, and two records
# written piecewise would interleave.
printf '%s\0' "${0##*/}" "$@" "$(printf '\036')" >> "$OUT/calls"
case "${0##*/} ${1:-}" in
    "zfs list"|"jls -j") exit 1 ;;
esac
# Nothing matches and no file is as rendered yet: every guarded command runs.
case "${0##*/}" in
    grep|cmp) exit 1 ;;
esac
# No package is installed yet.
if [ "${0##*/}" = pkg ]; then
    for a in "$@"; do [ "$a" = info ] && exit 1; done
fi
exit 0
"#;

/// The definition of the prelude's shell function `name`, through its closing `}`.
fn prelude_function(name: &str) -> String {
    let start = SCRIPT_PRELUDE
        .find(&format!("\n{name}() {{\n"))
        .unwrap_or_else(|| panic!("the prelude defines {name}"))
        + 1;
    let len = SCRIPT_PRELUDE[start..]
        .find("\n}\n")
        .expect("the function ends")
        + 3;
    SCRIPT_PRELUDE[start..start + len].to_string()
}

/// What running the script did.
#[derive(Debug, Default)]
pub struct Run {
    /// `put_file` calls: guest path → content, in order.
    pub files: Vec<(String, String)>,
    /// Every stubbed command's argv.
    pub calls: Vec<Vec<String>>,
    pub stdout: String,
}

impl Run {
    pub fn files_map(&self) -> BTreeMap<String, String> {
        self.files.iter().cloned().collect()
    }
}

/// Runs `script` (as rendered) with the stubs; panics with stderr if it fails.
pub fn run(script: &str, dir: &Path) -> Run {
    let body = script
        .split_once(SCRIPT_PRELUDE)
        .expect("the script starts with the prelude")
        .1;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for name in STUBS.iter().chain(&["pkg"]) {
        let p = bin.join(name);
        std::fs::write(&p, STUB).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The package functions are the real ones, so their command lines are what is recorded.
    let pkg_fns = ["ensure_pkg", "ensure_jail_pkg", "ensure_ansible"]
        .map(prelude_function)
        .concat();
    let test_script = format!("{TEST_PRELUDE}{pkg_fns}{body}");
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&test_script)
        .env_clear()
        .env("PATH", &bin)
        .env("OUT", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = Run {
        stdout: String::from_utf8(out.stdout).unwrap(),
        ..Run::default()
    };
    for i in 1.. {
        let p = dir.join(format!("files/{i}.path"));
        if !p.exists() {
            break;
        }
        let c = dir.join(format!("files/{i}.content"));
        run.files.push((
            std::fs::read_to_string(p).unwrap(),
            std::fs::read_to_string(c).unwrap(),
        ));
    }
    let calls = std::fs::read(dir.join("calls")).unwrap_or_default();
    let mut cur = Vec::new();
    let mut args: Vec<&[u8]> = calls.split(|b| *b == 0).collect();
    args.pop(); // what follows the last NUL
    for arg in args {
        if arg == b"\x1e" {
            run.calls.push(std::mem::take(&mut cur));
        } else {
            cur.push(String::from_utf8(arg.to_vec()).unwrap());
        }
    }
    run
}

/// Runs `script` with the prelude's real jail-file functions writing for real under
/// `dir/jails` (the guest's jail roots moved there), VM files recorded as in [`run`], and
/// the FreeBSD commands stubbed (every jail stopped). The script may fail: the output is
/// returned as it is.
pub fn run_real_jail_writes(script: &str, dir: &Path) -> std::process::Output {
    let body = script
        .split_once(SCRIPT_PRELUDE)
        .expect("the script starts with the prelude")
        .1;
    let jails = dir.join("jails");
    let body = body.replace(jrun_vm::paths::JAILS_DIR, jails.to_str().unwrap());
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for name in [
        "service",
        "local-unbound-checkconf",
        "jls",
        "jexec",
        "pfctl",
    ] {
        let p = bin.join(name);
        std::fs::write(&p, STUB).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let record_vm_files = r#"n=0
detached() { "$@"; }
put_file() {
    n=$((n + 1))
    printf '%s' "$1" > "$OUT/files/$n.path"
    printf '%s' "$3" > "$OUT/files/$n.content"
}
"#;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{SCRIPT_PRELUDE}{record_vm_files}{body}"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("OUT", dir)
        .output()
        .unwrap()
}

/// A FreeBSD `fetch -o OUT URL` that copies the file named like URL's last part from
/// `$MIRROR` (and records the URL in `$OUT/fetched`); `$MIRROR/cut` makes it write half of
/// the file and fail, as a download killed midway.
const FAKE_FETCH: &str = r#"#!/bin/sh
[ "$1" = -o ] || exit 64
printf '%s\n' "$3" >> "$OUT/fetched"
src="$MIRROR/${3##*/}"
[ -f "$src" ] || { echo "fetch: $3: Not Found" >&2; exit 1; }
if [ -f "$MIRROR/cut" ]; then
    head -c "$(( $(wc -c < "$src") / 2 ))" "$src" > "$2"
    echo "fetch: $3: Connection reset by peer" >&2
    exit 1
fi
cp "$src" "$2"
"#;

/// FreeBSD's `sha256 -q FILE`: the digest alone.
const FAKE_SHA256: &str = r#"#!/bin/sh
[ "$1" = -q ] || exit 64
sha256sum "$2" | cut -d ' ' -f 1
"#;

/// Runs the real prelude's `fetch_base RELEASE DIST` as step 7 of a script, with `fetch`
/// serving the files of `mirror` and `sha256` from coreutils; `after-fetch` is printed
/// when the script goes on past it. Returns the output and the URLs fetched.
pub fn run_fetch_base(
    dir: &Path,
    mirror: &Path,
    release: &str,
    dist: &Path,
) -> (std::process::Output, Vec<String>) {
    let bin = dir.join("bin-fetch");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, text) in [("fetch", FAKE_FETCH), ("sha256", FAKE_SHA256)] {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let _ = std::fs::remove_file(dir.join("fetched"));
    let body = format!(
        "step 7\nfetch_base '{release}' '{}'\necho after-fetch\n",
        dist.display()
    );
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{SCRIPT_PRELUDE}{body}"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("OUT", dir)
        .env("MIRROR", mirror)
        .output()
        .unwrap();
    let fetched = std::fs::read_to_string(dir.join("fetched"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (out, fetched)
}
