set -eu
umask 022
jrun_step=0
jrun_dirty=0
# Defaults; a provisioning script sets both from JRUN_BSD_MIRROR and --wait-timeout.
jrun_mirror=https://download.freebsd.org
jrun_ready_timeout=60
# step N: announce step N of the step table jrun keeps for this script.
step() {
    jrun_step="$1"
    printf 'jrun-step %s\n' "$1"
}
# On a failed exit, name the step that failed for jrun: `jrun-failed STEP RC`.
jrun_exit() {
    jrun_exit_rc=$?
    if [ "$jrun_exit_rc" -ne 0 ]; then printf 'jrun-failed %s %s\n' "$jrun_step" "$jrun_exit_rc" >&2; fi
}
trap jrun_exit EXIT
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
# ensure_ansible [JAIL]: ansible-core in the VM, or in the running jail JAIL, from pkg (its
# origin picks the flavour built for the release's default Python).
ensure_ansible() {
    if [ -n "${1-}" ]; then
        jexec "$1" test -x /usr/local/bin/ansible-playbook || ASSUME_ALWAYS_YES=yes pkg -j "$1" install -y sysutils/py-ansible-core
    else
        [ -x /usr/local/bin/ansible-playbook ] || ASSUME_ALWAYS_YES=yes pkg install -y sysutils/py-ansible-core
    fi
}
# release_url RELEASE: where that release's base.txz lives for this machine's architecture,
# under the download tree $jrun_mirror (JRUN_BSD_MIRROR).
release_url() {
    case "$(uname -m)" in
        arm64) printf '%s/releases/arm64/aarch64/%s/base.txz' "$jrun_mirror" "$1" ;;
        *) printf '%s/releases/%s/%s/base.txz' "$jrun_mirror" "$(uname -m)" "$1" ;;
    esac
}
# fetch_base RELEASE DIR: makes DIR/base.txz that release's base system, checked against
# the SHA-256 the release's MANIFEST lists for it (a line `base.txz<TAB>SHA256<TAB>...`).
# Both files are downloaded to `.part` names and get their names only after the check,
# base.txz first and MANIFEST last, so a download that was cut short (SSH dropped, the VM
# stopped) or that does not match is removed and never reused. A kept base.txz is used only
# with its MANIFEST beside it, and is checked against it again before each use.
fetch_base() {
    if [ -f "$2/base.txz" ] && [ -f "$2/MANIFEST" ] && base_matches "$2/base.txz" "$2/MANIFEST"; then
        return 0
    fi
    rm -f "$2/base.txz" "$2/MANIFEST" "$2/base.txz.part" "$2/MANIFEST.part"
    jrun_url=$(release_url "$1")
    if fetch -o "$2/MANIFEST.part" "${jrun_url%/base.txz}/MANIFEST" &&
        fetch -o "$2/base.txz.part" "$jrun_url" &&
        base_matches "$2/base.txz.part" "$2/MANIFEST.part" &&
        mv -f "$2/base.txz.part" "$2/base.txz" &&
        mv -f "$2/MANIFEST.part" "$2/MANIFEST"; then
        return 0
    fi
    rm -f "$2/base.txz" "$2/base.txz.part" "$2/MANIFEST.part"
    printf 'jrun: could not get a checked base.txz for %s from %s\n' "$1" "$jrun_url" >&2
    return 1
}
# base_matches TXZ MANIFEST: whether TXZ's SHA-256 is the one MANIFEST lists for base.txz;
# says why not on stderr.
base_matches() {
    jrun_want=$(awk '$1 == "base.txz" { print $2; exit }' "$2") || return 1
    case "$jrun_want" in
        "" | *[!0-9a-f]*)
            printf 'jrun: %s lists no SHA-256 for base.txz\n' "$2" >&2
            return 1
            ;;
    esac
    jrun_got=$(sha256 -q "$1") || return 1
    if [ "$jrun_got" != "$jrun_want" ]; then
        printf 'jrun: %s has SHA-256 %s, but the MANIFEST lists %s; removed\n' "$1" "$jrun_got" "$jrun_want" >&2
        return 1
    fi
}
# detached CMD...: runs CMD cut off from this session: stdin from /dev/null, output to
# /var/log/jrun-guest.log. A daemon it starts (service, jail -c) then cannot hold the SSH
# channel open. On failure the log's last lines go to stderr.
detached() {
    jrun_rc=0
    "$@" </dev/null >>/var/log/jrun-guest.log 2>&1 || jrun_rc=$?
    if [ "$jrun_rc" -ne 0 ]; then
        printf 'jrun: `%s` failed (exit %s); the end of /var/log/jrun-guest.log:\n' "$*" "$jrun_rc" >&2
        tail -n 20 /var/log/jrun-guest.log >&2
    fi
    return "$jrun_rc"
}
# wait_ready JAIL INDEX NAME CHECKED IP [PORT...]: waits (up to $jrun_ready_timeout s) until
# exec INDEX of JAIL is ready: with a health check (CHECKED=1), once a check passed since it
# started (its ready file); without one, its process alive for a second and each PORT of IP
# accepting. Prints `jrun-ready JAIL NAME SECONDS` or `jrun-notready JAIL NAME SECONDS WHY`
# and the end of its log; never fails the script (the jail is up either way).
wait_ready() {
    jrun_j=$1 jrun_i=$2 jrun_n=$3 jrun_c=$4 jrun_ip=$5
    shift 5
    jrun_t0=$(date +%s)
    jrun_alive=0
    while :; do
        jrun_why=
        if [ "$jrun_c" = 1 ]; then
            jexec "$jrun_j" test -f "/var/run/jrun/ready$jrun_i" || jrun_why="its health check has not passed yet"
        elif jexec "$jrun_j" /bin/sh -c 'kill -0 "$(cat "$1")"' jrun-alive "/var/run/jrun/child$jrun_i.pid" 2>/dev/null; then
            jrun_alive=$((jrun_alive + 1))
            [ "$jrun_alive" -ge 5 ] || jrun_why="starting"
            for jrun_p in "$@"; do
                [ -n "$jrun_why" ] || nc -z -w 1 "$jrun_ip" "$jrun_p" >/dev/null 2>&1 || jrun_why="port $jrun_p does not accept connections yet"
            done
        else
            jrun_alive=0
            jrun_why="its process is not running"
        fi
        jrun_took=$(($(date +%s) - jrun_t0))
        if [ -z "$jrun_why" ]; then
            printf 'jrun-ready %s %s %s\n' "$jrun_j" "$jrun_n" "$jrun_took"
            return 0
        fi
        if [ "$jrun_took" -ge "$jrun_ready_timeout" ]; then
            printf 'jrun-notready %s %s %s %s\n' "$jrun_j" "$jrun_n" "$jrun_took" "$jrun_why"
            jexec "$jrun_j" tail -n 10 "/var/log/jrun/exec$jrun_i.log" 2>/dev/null | sed 's/^/jrun-log /' || true
            return 0
        fi
        sleep 0.2
    done
}
