set -eu
umask 022
jrun_step=0
jrun_dirty=0
# step N: announce step N of the step table jrun keeps for this script.
step() {
    jrun_step="$1"
    printf 'jrun-step %s\n' "$1"
}
trap 'rc=$?; if [ "$rc" -ne 0 ]; then printf "jrun-failed %s %s\n" "$jrun_step" "$rc" >&2; fi' EXIT
# put_file PATH MODE CONTENT: replaces PATH only when CONTENT differs, and then sets jrun_dirty.
put_file() {
    mkdir -p "$(dirname "$1")"
    (umask 077 && printf '%s' "$3" > "$1.jrun-new")
    chmod "$2" "$1.jrun-new"
    if cmp -s "$1.jrun-new" "$1"; then
        rm -f "$1.jrun-new"
    else
        mv -f "$1.jrun-new" "$1"
        jrun_dirty=1
    fi
}
# is_mounted PATH: whether a file system is mounted exactly at PATH.
is_mounted() {
    [ "$(df -P "$1" 2>/dev/null | awk 'NR==2 { print $6 }')" = "$1" ]
}
# ensure_pkg PKG [ROOT]: installs a package in the VM, or in the jail root ROOT.
ensure_pkg() {
    if [ -n "${2:-}" ]; then
        pkg -c "$2" info -e "$1" || ASSUME_ALWAYS_YES=yes pkg -c "$2" install -y "$1"
    else
        pkg info -e "$1" || ASSUME_ALWAYS_YES=yes pkg install -y "$1"
    fi
}
# release_url RELEASE: where that release's base.txz lives for this machine's architecture.
release_url() {
    case "$(uname -m)" in
        arm64) printf 'https://download.freebsd.org/releases/arm64/aarch64/%s/base.txz' "$1" ;;
        *) printf 'https://download.freebsd.org/releases/%s/%s/base.txz' "$(uname -m)" "$1" ;;
    esac
}
