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
# put_file PATH MODE CONTENT: replaces the VM file PATH only when CONTENT differs, and then
# sets jrun_dirty. Never used under a jail's root: see put_jail_file.
put_file() {
    mkdir -p "$(dirname "$1")"
    jrun_new=$(umask 077 && mktemp "$1.jrun-XXXXXX")
    printf '%s' "$3" > "$jrun_new"
    chmod "$2" "$jrun_new"
    if cmp -s "$jrun_new" "$1"; then
        rm -f "$jrun_new"
    else
        mv -f "$jrun_new" "$1"
        jrun_dirty=1
    fi
}
# no_link PATH: fails when PATH is a symbolic link (a jail may have planted it).
no_link() {
    if [ -L "$1" ]; then
        printf 'jrun: %s is a symbolic link; refusing to write through it (remove it)\n' "$1" >&2
        return 1
    fi
}
# jail_dir ROOT DIR: creates the folder DIR under the stopped jail root ROOT one component
# at a time, refusing any symbolic link on the way, so VM root never follows one out.
jail_dir() {
    jrun_d="$1"
    jrun_rest="${2#/}"
    while [ -n "$jrun_rest" ]; do
        jrun_d="$jrun_d/${jrun_rest%%/*}"
        case "$jrun_rest" in
            */*) jrun_rest="${jrun_rest#*/}" ;;
            *) jrun_rest= ;;
        esac
        no_link "$jrun_d" || return 1
        [ -d "$jrun_d" ] || mkdir "$jrun_d" || return 1
    done
}
# put_jail_file JAIL ROOT PATH MODE CONTENT: put_file for PATH inside a jail. A running jail
# writes the file itself (jexec), so any link in it resolves inside the jail; a stopped
# jail's file is written from the VM through a fresh mktemp name, refusing links.
put_jail_file() {
    if jls -j "$1" >/dev/null 2>&1; then
        jrun_out=$(printf '%s' "$5" | jexec "$1" /bin/sh -c 'umask 077 && mkdir -p "$(dirname "$1")" && t=$(mktemp "$1.jrun-XXXXXX") && cat > "$t" && chmod "$2" "$t" && if cmp -s "$t" "$1"; then rm -f "$t"; else mv -f "$t" "$1" && echo changed; fi' jrun-put "$3" "$4") || return 1
        if [ "$jrun_out" = changed ]; then jrun_dirty=1; fi
        return 0
    fi
    jail_dir "$2" "$(dirname "$3")" || return 1
    no_link "$2$3" || return 1
    jrun_new=$(umask 077 && mktemp "$2$3.jrun-XXXXXX") || return 1
    printf '%s' "$5" > "$jrun_new" || return 1
    chmod "$4" "$jrun_new" || return 1
    if cmp -s "$jrun_new" "$2$3"; then
        rm -f "$jrun_new"
    else
        mv -f "$jrun_new" "$2$3" || return 1
        jrun_dirty=1
    fi
}
# is_mounted PATH: whether a file system is mounted exactly at PATH.
is_mounted() {
    [ "$(df -P "$1" 2>/dev/null | awk 'NR==2 { print $6 }')" = "$1" ]
}
# ensure_pkg PKG: installs a package in the VM.
ensure_pkg() {
    pkg info -e "$1" || ASSUME_ALWAYS_YES=yes pkg install -y "$1"
}
# ensure_jail_pkg JAIL PKG: installs a package in the running jail JAIL through the jail
# itself (pkg -j attaches to it first), so the package's scripts run confined to the jail.
# Never install from outside into the jail's root folder (pkg's root-folder option, or a
# change of root): that runs the jail's own /bin/sh as VM root, and a jail that has run
# may have replaced it.
ensure_jail_pkg() {
    pkg -j "$1" info -e "$2" || ASSUME_ALWAYS_YES=yes pkg -j "$1" install -y "$2"
}
# release_url RELEASE: where that release's base.txz lives for this machine's architecture.
release_url() {
    case "$(uname -m)" in
        arm64) printf 'https://download.freebsd.org/releases/arm64/aarch64/%s/base.txz' "$1" ;;
        *) printf 'https://download.freebsd.org/releases/%s/%s/base.txz' "$(uname -m)" "$1" ;;
    esac
}
