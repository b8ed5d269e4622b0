//! A stand-in for the FreeBSD cloud image, built at test time from this Debian machine's
//! own packages, that jrun boots exactly as it boots the real one: a raw GPT disk whose EFI
//! system partition holds `EFI/BOOT/BOOTX64.EFI`, so OVMF starts it by itself (no
//! `-kernel`), and which keeps booting after jrun grows the file.
//!
//! `BOOTX64.EFI` is a unified kernel image: systemd-boot's EFI stub with the installed
//! Debian kernel, its command line and a busybox initramfs as PE sections (`objcopy`). The
//! guest:
//!
//! 1. brings up `eth0` as 10.0.2.15/24 via 10.0.2.2 (QEMU's user network);
//! 2. mounts the NoCloud seed (the ISO9660 disk labelled `cidata`) read-only and takes user
//!    `admin`'s `ssh_authorized_keys` from its `user-data` (the rest is ignored);
//! 3. creates `admin` with uid 0 (so `doas` is a shim that runs its arguments) and
//!    `/bin/sh` (Debian's dash: busybox's own sh would run its applets before `PATH`);
//! 4. runs Debian's OpenSSH `sshd` on port 22 (public keys only; host key made at build);
//! 5. puts recording shims for FreeBSD-only commands first on sshd's `PATH` (see
//!    [`SHIMS`] and [`SHIM_LOG`]);
//! 6. powers off when the ACPI power button is pressed;
//! 7. prints [`READY`] on the serial console once sshd listens.
//!
//! What the build needs (Debian 12 packages): `systemd-boot-efi` (the stub), `binutils`
//! (`objcopy`), `dosfstools` (`mkfs.vfat`), `mtools` (`mmd`, `mcopy`), `openssh-server`
//! (`sshd`), `openssh-client` (`ssh-keygen`), `busybox-static`, `linux-image-cloud-amd64`
//! (or `linux-image-amd64`), and from the base system `dash`, `gzip` and `ldd` (libc-bin).
//! A missing one fails the test with what to install; it never skips.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::guest::{self, Cpio};

/// Printed on the serial console once sshd listens on port 22.
pub const READY: &str = "JRUN-STANDIN-SSHD-UP";

/// Printed on the serial console when the ACPI power button was pressed.
pub const POWERDOWN: &str = "JRUN-STANDIN-POWERDOWN";

/// Where the shims record their calls, one line per call: the command's name and then each
/// argument, separated by a TAB; inside a field a backslash is written `\\`, a TAB `\t` and
/// a newline `\n` (arguments cannot hold NUL), so every call is exactly one line.
pub const SHIM_LOG: &str = "/var/log/jrun-shims.log";

/// FreeBSD commands the guest fakes (in `/usr/local/sbin`, first on sshd's `PATH`). Each
/// records its call in [`SHIM_LOG`] and exits 0, except:
/// - `jls -j J` exits 1 unless `jail … -c J` started J (and no `jail … -r J` stopped it
///   since), and `jls name` / `jls jid name` list those jails; `pkg [-j J] info …` and `service … status` exit 1 (nothing is installed);
/// - `zfs` keeps datasets as folders and snapshots as copies of them (`create`, `list`,
///   `snapshot`, `list -t snapshot`, `rollback`, `destroy`, `send | receive`), failing
///   as ZFS does on a missing dataset or snapshot;
/// - `daemon …` without `-f` and `service … start|restart` (also `onestart`/`onerestart`)
///   leave a `sleep 600` in the background holding the inherited stdout and stderr, as
///   FreeBSD's daemon and rc scripts do; `daemon -f …` leaves one detached from them;
/// - `pfctl -a jrun/forwards -f FILE` also (re)starts a `busybox httpd -p P` answering
///   `standin P` for each `port P ->` of the TCP `rdr` lines in FILE, so a forwarded host
///   port reaches the guest through QEMU's `hostfwd`;
/// - `mount` records only calls with `p9fs` in their arguments; others run busybox's mount.
/// - `fetch -o OUT URL` writes a small stand-in `base.txz` for a URL ending in `base.txz`,
///   and for one ending in `MANIFEST` a MANIFEST that lists that file's SHA-256, so the
///   script's check passes; `sha256 -q FILE` prints FILE's SHA-256 (busybox `sha256sum`).
///
/// `doas` (in `/usr/local/bin`) is not recorded: it runs its arguments (admin is uid 0).
pub const SHIMS: &[&str] = &[
    "sysrc",
    "pfctl",
    "jail",
    "jexec",
    "jls",
    "zfs",
    "pkg",
    "service",
    "ifconfig",
    "sysctl",
    "kldload",
    "mount",
    "daemon",
    "local-unbound-setup",
    "local-unbound-checkconf",
    "fetch",
    "sha256",
    "tar",
    "install",
    "nc",
];

/// Kernel modules the guest loads (with their dependencies): virtio PCI, net and block, the
/// seed's ISO9660, the ACPI button and evdev to see it.
const MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "isofs",
    "button",
    "evdev",
];

/// systemd-boot's EFI stub for unified kernel images (package `systemd-boot-efi`).
const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// The kernel command line (the `.cmdline` section).
const CMDLINE: &str = "console=ttyS0,115200 loglevel=4 panic=10 rdinit=/init";

const INIT: &str = r#"#!/bin/busybox sh
# The stand-in guest's init (PID 1): busybox applets run directly in this shell.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts
mount -t devpts -o gid=5,mode=620 devpts /dev/pts
chmod 1777 /tmp
for m in $(cat /modules.order); do insmod "/modules/$m" || echo "JRUN-STANDIN: insmod $m failed"; done
hostname jrun
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 'nameserver 10.0.2.3' > /etc/resolv.conf

# The ACPI power button powers off.
(
    for i in $(seq 50); do
        for d in /sys/class/input/input*; do
            if grep -q "Power Button" "$d/name" 2>/dev/null; then
                for e in "$d"/event*; do
                    ev="${e##*/}"
                    (head -c 24 "/dev/input/$ev" >/dev/null && echo JRUN-STANDIN-POWERDOWN && poweroff -f) &
                done
                exit 0
            fi
        done
        sleep 0.1
    done
    echo "JRUN-STANDIN: no ACPI power button"
) &

# The NoCloud seed: the ISO9660 disk labelled cidata (busybox-static has no blkid: the
# primary volume descriptor, sector 16 of 2048 bytes, says "CD001" at 1, the label at 40).
mkdir -p /media/cidata
seed=
for i in $(seq 100); do
    for d in /dev/vd[a-z]; do
        [ -b "$d" ] || continue
        pvd=$(dd if="$d" bs=2048 skip=16 count=1 2>/dev/null | head -c 72 | tr -c 'A-Za-z0-9 ' '.')
        [ "${pvd:1:5}" = CD001 ] || continue
        label=$(echo ${pvd:40:32} | tr 'A-Z' 'a-z')
        [ "$label" = cidata ] || continue
        if mount -t iso9660 -o ro "$d" /media/cidata; then
            seed=$d
            break 2
        fi
    done
    sleep 0.1
done
keys=
if [ -n "$seed" ] && [ -f /media/cidata/user-data ]; then
    keys=$(awk -v user=admin -f /usr/local/libexec/jrun-seed-keys.awk /media/cidata/user-data)
fi
[ -n "$keys" ] || echo "JRUN-STANDIN: no ssh_authorized_keys for admin in the seed (${seed:-no cidata disk})"
echo 'admin:x:0:0:jrun:/home/admin:/bin/sh' >> /etc/passwd
echo 'admin:*:::::::' >> /etc/shadow
mkdir -p /home/admin/.ssh
chmod 755 /home/admin
chmod 700 /home/admin/.ssh
printf '%s\n' "$keys" > /home/admin/.ssh/authorized_keys
chmod 600 /home/admin/.ssh/authorized_keys

/usr/sbin/sshd -E /var/log/sshd.log || { echo "JRUN-STANDIN: sshd failed:"; cat /var/log/sshd.log; }
for i in $(seq 100); do
    netstat -ltn 2>/dev/null | grep -q ':22 ' && break
    sleep 0.1
done
echo JRUN-STANDIN-SSHD-UP
while true; do sleep 60; done
"#;

/// Prints the `ssh_authorized_keys` of the user named `user` (awk -v) in a cloud-config.
const SEED_KEYS_AWK: &str = r#"# Prints the ssh_authorized_keys of the cloud-config user named `user`, one per line.
function unquote(s) {
    if (s ~ /^".*"$/ || s ~ /^\047.*\047$/) s = substr(s, 2, length(s) - 2)
    return s
}
/^[^ \t#]/ { cur = ""; inkeys = 0 }
/^[ \t]*-[ \t]*name:/ {
    s = $0
    sub(/^[^:]*:[ \t]*/, "", s)
    sub(/[ \t]+$/, "", s)
    cur = unquote(s)
    inkeys = 0
    next
}
/^[ \t]*ssh_authorized_keys:/ { inkeys = (cur == user); next }
inkeys && /^[ \t]*-[ \t]/ {
    s = $0
    sub(/^[ \t]*-[ \t]*/, "", s)
    sub(/[ \t]+$/, "", s)
    print unquote(s)
    next
}
inkeys && /^[ \t]*[A-Za-z_]+:/ { inkeys = 0 }
"#;

/// The shim behind every name in [`SHIMS`] (dash; busybox applets by path).
const SHIM: &str = r#"#!/bin/sh
# jrun stand-in: records a FreeBSD-only command in /var/log/jrun-shims.log (one line per
# call: name and arguments TAB-separated, with \\ \t \n escaped) and fakes its effect.
name=${0##*/}
bb=/bin/busybox
if [ "$name" = mount ]; then
    case " $* " in *p9fs*) ;; *) exec $bb mount "$@" ;; esac
fi
$bb awk 'BEGIN {
    line = ""
    for (i = 1; i < ARGC; i++) {
        s = ARGV[i]
        gsub(/\\/, "\\\\", s)
        gsub(/\t/, "\\t", s)
        gsub(/\n/, "\\n", s)
        line = line (i > 1 ? "\t" : "") s
    }
    print line
}' "$name" "$@" >> /var/log/jrun-shims.log
# A daemon that keeps the caller's stdout and stderr, as FreeBSD's do.
linger() {
    $bb sleep 600 &
}
last() { for a in "$@"; do l=$a; done; echo "${l-}"; }
case "$name" in
jail)
    # Which jails "run": `jail … -c NAME` starts one, `jail … -r NAME` stops it.
    mkdir -p /var/run/standin-jails
    case " $* " in
    *" -c "*) touch "/var/run/standin-jails/$(last "$@")" ;;
    *" -r "*) rm -f "/var/run/standin-jails/$(last "$@")" ;;
    esac
    ;;
jls)
    if [ "${1-}" = -j ]; then
        [ -f "/var/run/standin-jails/${2-}" ] && exit 0
        exit 1
    fi
    # `jls name`, `jls jid name`: the running jails, one a line, as FreeBSD prints them.
    n=0
    for f in /var/run/standin-jails/*; do
        [ -f "$f" ] || continue
        n=$((n + 1))
        if [ "$*" = "jid name" ]; then echo "$n ${f##*/}"; else echo "${f##*/}"; fi
    done
    ;;
jexec)
    # A jail's Yggdrasil node answers with the address the test planted for it.
    case " $* " in
    *" yggdrasilctl "*getSelf*)
        [ -f "/var/run/standin-ygg/$1" ] || exit 1
        printf '{\n  "address": "%s",\n  "subnet": "300::/64"\n}\n' "$(cat "/var/run/standin-ygg/$1")"
        ;;
    esac
    ;;
zfs)
    # Datasets as folders: `create`/`receive` make the mountpoint and remember the
    # dataset, `list` finds remembered ones, `destroy` forgets one (with its snapshots).
    # A snapshot DS@NAME is a copy of DS's mountpoint, kept with its order and time:
    # `snapshot`, `list -t snapshot` (`-o name,used,creation`, oldest first, used always
    # 12288), `rollback [-r]` (refused while the jail named like DS's last part runs, as
    # FreeBSD refuses to unmount a busy dataset), `destroy DS@NAME`, and
    # `send DS@NAME | receive … NEW`, which makes NEW from the copy with NEW@NAME.
    db=/var/run/standin-zfs
    snaps=/var/run/standin-zfs-snapshots
    mkdir -p $db $snaps/data
    sub=${1-}
    [ $# -gt 0 ] && shift
    ds=$(last "$@")
    key=$(printf '%s' "$ds" | tr / %)
    dkey=${key%%@*}
    mountpoint= type= fields=name recursive=
    while [ $# -gt 1 ]; do
        case "$1" in
        -o) case "$2" in mountpoint=*) mountpoint=${2#mountpoint=} ;; *) fields=$2 ;; esac; shift ;;
        -t) type=$2; shift ;;
        -s|-d) shift ;;
        -r|-R) recursive=1 ;;
        esac
        shift
    done
    # The keys of dataset $1's snapshots, oldest first.
    snapshots_of() {
        for f in "$snaps/$1@"*; do
            [ -f "$f" ] && printf '%s\t%s\n' "$($bb cut -f1 "$f")" "${f##*/}"
        done | $bb sort -n | $bb cut -f2
    }
    # Records snapshot $1 of the folder $2.
    remember() {
        seq=$(( $(cat $snaps/.seq 2>/dev/null || echo 0) + 1 ))
        echo $seq > $snaps/.seq
        mkdir -p "$snaps/data/$1"
        [ -n "$2" ] && [ -d "$2" ] && $bb cp -a "$2/." "$snaps/data/$1/"
        printf '%s\t%s\n' "$seq" "$($bb date +%s)" > "$snaps/$1"
    }
    missing() { echo "cannot open '$1': dataset does not exist" >&2; exit 1; }
    case "$sub" in
    list)
        if [ "$type" = snapshot ]; then
            case "$ds" in
            *@*) [ -f "$snaps/$key" ] || missing "$ds"; keys=$key ;;
            *) [ -f "$db/$key" ] || missing "$ds"; keys=$(snapshots_of "$key") ;;
            esac
            for k in $keys; do
                line=
                for f in $(echo "$fields" | tr , ' '); do
                    case "$f" in
                    name) v=$(printf '%s' "$k" | tr % /) ;;
                    used) v=12288 ;;
                    creation) v=$($bb cut -f2 "$snaps/$k") ;;
                    *) v=- ;;
                    esac
                    line="$line${line:+	}$v"
                done
                printf '%s\n' "$line"
            done
        else
            case "$ds" in
            *@*) [ -f "$snaps/$key" ] || exit 1 ;;
            *) [ -f "$db/$key" ] || exit 1 ;;
            esac
        fi
        ;;
    create|receive)
        src=
        if [ "$sub" = receive ]; then read -r magic src || true; fi
        [ -n "$mountpoint" ] && mkdir -p "$mountpoint"
        printf '%s' "$mountpoint" > "$db/$key"
        if [ -n "$src" ] && [ -f "$snaps/$src" ]; then
            [ -n "$mountpoint" ] && $bb cp -a "$snaps/data/$src/." "$mountpoint/"
            remember "$key@${src#*@}" "$snaps/data/$src"
        fi
        ;;
    send)
        [ -f "$snaps/$key" ] || missing "$ds"
        printf 'standin-zfs-stream %s\n' "$key"
        ;;
    snapshot)
        [ -f "$db/$dkey" ] || missing "${ds%%@*}"
        if [ -f "$snaps/$key" ]; then
            echo "cannot create snapshot '$ds': dataset already exists" >&2
            exit 1
        fi
        remember "$key" "$(cat "$db/$dkey")"
        ;;
    rollback)
        [ -f "$snaps/$key" ] || missing "$ds"
        mp=$(cat "$db/$dkey")
        if [ -f "/var/run/standin-jails/${dkey##*%}" ]; then
            echo "cannot unmount '$mp': pool or dataset is busy" >&2
            exit 1
        fi
        seq=$($bb cut -f1 "$snaps/$key")
        later=
        for k in $(snapshots_of "$dkey"); do
            [ "$($bb cut -f1 "$snaps/$k")" -gt "$seq" ] && later="$later $k"
        done
        if [ -n "$later" ] && [ -z "$recursive" ]; then
            echo "cannot rollback to '$ds': more recent snapshots or bookmarks exist" >&2
            exit 1
        fi
        for k in $later; do rm -rf "$snaps/$k" "$snaps/data/$k"; done
        if [ -n "$mp" ]; then
            rm -rf "$mp"
            mkdir -p "$mp"
            $bb cp -a "$snaps/data/$key/." "$mp/"
        fi
        ;;
    destroy)
        case "$ds" in
        *@*)
            if [ ! -f "$snaps/$key" ]; then
                echo "could not find any snapshots to destroy; check snapshot names." >&2
                exit 1
            fi
            rm -rf "$snaps/$key" "$snaps/data/$key"
            ;;
        *)
            [ -f "$db/$key" ] && mountpoint=$(cat "$db/$key") && rm -f "$db/$key"
            [ -n "$mountpoint" ] && rm -rf "$mountpoint"
            for k in $(snapshots_of "$key"); do rm -rf "$snaps/$k" "$snaps/data/$k"; done
            ;;
        esac
        ;;
    esac
    ;;
pkg)
    while [ $# -gt 0 ]; do
        case "$1" in
        -j|-c|-r|-C|-R|-o) [ $# -ge 2 ] && shift ;;
        -*) ;;
        *) break ;;
        esac
        shift
    done
    [ "${1-}" = info ] && exit 1
    ;;
service)
    for a in "$@"; do
        case "$a" in
        status|onestatus) exit 1 ;;
        start|restart|onestart|onerestart) linger ;;
        esac
    done
    ;;
daemon)
    # -f: FreeBSD's daemon then detaches from the caller's stdio.
    detach=
    while [ $# -gt 0 ]; do
        case "$1" in
        --) break ;;
        -[pPuomlsTtR]) [ $# -ge 2 ] && shift ;;
        -*f*) detach=1 ;;
        -*) ;;
        *) break ;;
        esac
        shift
    done
    if [ -n "$detach" ]; then
        $bb sleep 600 </dev/null >/dev/null 2>&1 &
    else
        linger
    fi
    ;;
fetch)
    base=/tmp/standin-base.txz
    [ -f $base ] || echo 'jrun stand-in base system' > $base
    out= url=
    while [ $# -gt 0 ]; do
        case "$1" in
        -o) [ $# -ge 2 ] && { out=$2; shift; } ;;
        -*) ;;
        *) url=$1 ;;
        esac
        shift
    done
    case "$url" in
    */MANIFEST)
        sum=$($bb sha256sum $base | $bb cut -d ' ' -f 1)
        printf 'base.txz\t%s\t1\tbase\t"Base system (MANDATORY)"\ton\n' "$sum" > "$out"
        ;;
    */base.txz) $bb cp $base "$out" ;;
    esac
    ;;
sha256)
    [ "${1-}" = -q ] || exit 64
    $bb sha256sum "$2" | $bb cut -d ' ' -f 1
    ;;
pfctl)
    anchor= file=
    while [ $# -gt 0 ]; do
        case "$1" in
        -a) [ $# -ge 2 ] && { anchor=$2; shift; } ;;
        -f) [ $# -ge 2 ] && { file=$2; shift; } ;;
        esac
        shift
    done
    if [ "$anchor" = jrun/forwards ] && [ -n "$file" ]; then
        pids=/var/run/jrun-standin-httpd.pids
        if [ -f $pids ]; then
            for p in $(cat $pids); do kill "$p" 2>/dev/null; done
            for i in $($bb seq 50); do
                alive=
                for p in $(cat $pids); do kill -0 "$p" 2>/dev/null && alive=1; done
                [ -z "$alive" ] && break
                $bb sleep 0.1
            done
            rm -f $pids
        fi
        ports=$($bb awk '/^[ \t]*rdr/ && !/proto[ \t]+udp/ {
            for (i = 1; i + 2 <= NF; i++) if ($i == "port" && $(i + 2) == "->") print $(i + 1)
        }' "$file")
        for p in $ports; do
            case "$p" in *[!0-9]*) continue ;; esac
            mkdir -p "/var/www/standin-$p"
            echo "standin $p" > "/var/www/standin-$p/index.html"
            $bb httpd -f -p "$p" -h "/var/www/standin-$p" </dev/null >/dev/null 2>&1 &
            echo $! >> $pids
        done
    fi
    ;;
esac
exit 0
"#;

const DOAS: &str =
    "#!/bin/sh\n# jrun stand-in: admin is uid 0, so doas only runs its arguments.\nexec \"$@\"\n";

const SSHD_CONFIG: &str = "\
# jrun stand-in: public keys only, logins for admin (uid 0).
Port 22
ListenAddress 0.0.0.0
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
PidFile /run/sshd.pid
Subsystem sftp internal-sftp
";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534:sshd:/run/sshd:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const SHADOW: &str = "root:*:::::::\nsshd:*:::::::\nnobody:*:::::::\n";
const GROUP: &str = "root:x:0:admin\ntty:x:5:\nnogroup:x:65534:\n";
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";
const OS_RELEASE: &str =
    "ID=jrun-standin\nNAME=\"jrun stand-in guest\"\nPRETTY_NAME=\"jrun stand-in guest\"\n";

/// The raw disk: sector size, the EFI system partition's first sector, and what follows it.
const SECTOR: u64 = 512;
const ESP_START: u64 = 2048;
/// After the ESP: room for the backup GPT (33 sectors), rounded up to 1 MiB.
const TAIL: u64 = 2048;

/// Builds the stand-in image into `dir` and returns the raw disk (`standin.raw`). Panics
/// (fails the test) with what to install when a part is missing.
pub fn build_image(dir: &Path) -> PathBuf {
    let work = dir.join("standin-build");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let objcopy = tool("objcopy", "binutils");
    let mkfs = tool("mkfs.vfat", "dosfstools");
    let mmd = tool("mmd", "mtools");
    let mcopy = tool("mcopy", "mtools");
    let gzip = tool("gzip", "gzip");
    assert!(
        Path::new(STUB).is_file(),
        "{STUB} is missing: install systemd-boot-efi"
    );

    let initrd = work.join("initrd.cpio.gz");
    let cpio = initramfs(&work);
    let raw = work.join("initrd.cpio");
    std::fs::write(&raw, cpio).unwrap();
    run(Command::new(&gzip).args(["-6", "-n", "-f"]).arg(&raw));
    assert!(initrd.is_file());

    let kernel = guest::newest_kernel().expect(
        "no kernel with modules in /boot and /lib/modules: install linux-image-cloud-amd64 (or linux-image-amd64)",
    );
    let uki = work.join("BOOTX64.EFI");
    unified_kernel_image(&objcopy, &work, &kernel, &initrd, &uki);

    let esp = work.join("esp.img");
    let uki_len = std::fs::metadata(&uki).unwrap().len();
    // The UKI and 4 MiB for the file system's own tables, in whole MiB.
    let esp_mib = (uki_len >> 20) + 5;
    run(Command::new(&mkfs)
        .args(["-n", "ESP", "-i", "4a52554e", "-C"])
        .arg(&esp)
        .arg((esp_mib * 1024).to_string()));
    run(Command::new(&mmd)
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&esp)
        .args(["::/EFI", "::/EFI/BOOT"]));
    run(Command::new(&mcopy)
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(&esp)
        .arg(&uki)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));

    let out = dir.join("standin.raw");
    std::fs::write(&out, gpt_disk(&std::fs::read(&esp).unwrap())).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    out
}

/// The initramfs (uncompressed newc cpio).
fn initramfs(work: &Path) -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox is missing: install busybox-static");
    assert!(
        guest::is_static(&busybox),
        "/bin/busybox is dynamically linked: install busybox-static"
    );
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.is_file(),
        "/usr/sbin/sshd is missing: install openssh-server"
    );
    let dash = Path::new("/bin/dash");
    assert!(dash.is_file(), "/bin/dash is missing: install dash");
    let kernel = guest::newest_kernel().expect(
        "no kernel with modules in /boot and /lib/modules: install linux-image-cloud-amd64 (or linux-image-amd64)",
    );
    let version = kernel
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches("vmlinuz-")
        .to_string();
    let mod_dir = Path::new("/lib/modules").join(&version);

    let mut t = Tree::default();
    for d in [
        "bin",
        "sbin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "root",
        "home",
        "media",
        "mnt",
        "var/log",
        "var/run",
        "var/www",
        "usr/bin",
        "usr/sbin",
        "usr/local/sbin",
        "usr/local/bin",
        "usr/local/libexec",
        "etc/ssh",
        "modules",
    ] {
        t.dir(d);
    }
    t.dir_mode("run/sshd", 0o755);

    // busybox, its applets in /bin, and dash as /bin/sh.
    t.file("bin/busybox", 0o755, &busybox);
    let list = output(Command::new("/bin/busybox").arg("--list"));
    for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet != "busybox" && applet != "sh" {
            t.symlink(&format!("bin/{applet}"), "busybox");
        }
    }
    t.file("bin/sh", 0o755, &std::fs::read(dash).unwrap());

    // sshd and the libraries it and dash need.
    t.file("usr/sbin/sshd", 0o755, &std::fs::read(sshd).unwrap());
    let mut libs = BTreeSet::new();
    for exe in [sshd, dash] {
        libs.extend(shared_libraries(exe));
    }
    for lib in &libs {
        let rel = lib.strip_prefix("/").unwrap().to_str().unwrap();
        t.file(rel, 0o755, &std::fs::read(lib).unwrap());
    }

    // Host key, made here (ssh-keygen in the guest would cost seconds under TCG).
    let key = work.join("ssh_host_ed25519_key");
    run(Command::new(tool("ssh-keygen", "openssh-client"))
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "jrun-standin", "-f"])
        .arg(&key));
    t.file(
        "etc/ssh/ssh_host_ed25519_key",
        0o600,
        &std::fs::read(&key).unwrap(),
    );
    t.file(
        "etc/ssh/ssh_host_ed25519_key.pub",
        0o644,
        &std::fs::read(key.with_extension("pub")).unwrap(),
    );
    t.file("etc/ssh/sshd_config", 0o644, SSHD_CONFIG.as_bytes());
    t.file("etc/passwd", 0o644, PASSWD.as_bytes());
    t.file("etc/shadow", 0o600, SHADOW.as_bytes());
    t.file("etc/group", 0o644, GROUP.as_bytes());
    t.file("etc/nsswitch.conf", 0o644, NSSWITCH.as_bytes());
    t.file("etc/os-release", 0o644, OS_RELEASE.as_bytes());
    t.file("var/log/jrun-shims.log", 0o644, b"");

    // The shims and doas.
    t.file("usr/local/libexec/jrun-shim", 0o755, SHIM.as_bytes());
    for s in SHIMS {
        t.symlink(&format!("usr/local/sbin/{s}"), "../libexec/jrun-shim");
    }
    t.file("usr/local/bin/doas", 0o755, DOAS.as_bytes());
    t.file(
        "usr/local/libexec/jrun-seed-keys.awk",
        0o644,
        SEED_KEYS_AWK.as_bytes(),
    );

    // Kernel modules, dependencies first.
    let mut names = String::new();
    for rel in guest::module_order(&mod_dir, MODULES) {
        let name = Path::new(&rel).file_name().unwrap().to_str().unwrap();
        t.file(
            &format!("modules/{name}"),
            0o644,
            &std::fs::read(mod_dir.join(&rel)).unwrap(),
        );
        names.push_str(name);
        names.push('\n');
    }
    t.file("modules.order", 0o644, names.as_bytes());
    t.file("init", 0o755, INIT.as_bytes());
    t.cpio.finish()
}

/// The libraries (and the loader) `ldd` lists for `exe`.
fn shared_libraries(exe: &Path) -> Vec<PathBuf> {
    let out = output(Command::new(tool("ldd", "libc-bin")).arg(exe));
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// `stub` + `.osrel`, `.cmdline`, `.linux`, `.initrd`, each placed after the stub's image
/// and the section before it (page-aligned), as `ukify` does.
fn unified_kernel_image(objcopy: &Path, work: &Path, kernel: &Path, initrd: &Path, out: &Path) {
    let osrel = work.join("os-release");
    std::fs::write(&osrel, OS_RELEASE).unwrap();
    let cmdline = work.join("cmdline");
    std::fs::write(&cmdline, CMDLINE).unwrap();
    let stub = std::fs::read(STUB).unwrap();
    let mut vma = align(pe_size_of_image(&stub), 0x1000);
    let mut cmd = Command::new(objcopy);
    for (name, file) in [
        (".osrel", osrel.as_path()),
        (".cmdline", cmdline.as_path()),
        (".linux", kernel),
        (".initrd", initrd),
    ] {
        let len = std::fs::metadata(file).unwrap().len();
        cmd.arg("--add-section")
            .arg(format!("{name}={}", file.display()))
            .arg("--set-section-flags")
            .arg(format!("{name}=contents,alloc,load,readonly,data"))
            .arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"));
        vma = align(vma + len, 0x1000);
    }
    cmd.arg(STUB).arg(out);
    run(&mut cmd);
}

/// `SizeOfImage` from a PE32+ optional header.
fn pe_size_of_image(pe: &[u8]) -> u64 {
    let u32_at = |o: usize| u32::from_le_bytes(pe[o..o + 4].try_into().unwrap());
    let pe_off = u32_at(0x3c) as usize;
    assert_eq!(
        &pe[pe_off..pe_off + 4],
        b"PE\0\0",
        "{STUB} is not a PE image"
    );
    u64::from(u32_at(pe_off + 24 + 56))
}

fn align(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// A GPT disk with one partition, the EFI system partition holding `esp` (a FAT image).
fn gpt_disk(esp: &[u8]) -> Vec<u8> {
    let esp_sectors = (esp.len() as u64).div_ceil(SECTOR);
    let total = ESP_START + esp_sectors + TAIL;
    let last = total - 1;
    let mut disk = vec![0u8; (total * SECTOR) as usize];
    let at = |lba: u64| (lba * SECTOR) as usize;

    // Protective MBR.
    let mbr = &mut disk[..512];
    mbr[446 + 1..446 + 4].copy_from_slice(&[0x00, 0x02, 0x00]);
    mbr[446 + 4] = 0xee;
    mbr[446 + 5..446 + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
    mbr[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    mbr[446 + 12..446 + 16].copy_from_slice(&(last.min(u32::MAX as u64) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;

    // The partition entries: 128 of 128 bytes, one used.
    let mut entries = vec![0u8; 128 * 128];
    entries[0..16].copy_from_slice(&guid("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"));
    entries[16..32].copy_from_slice(&guid("4A52554E-5354-414E-4449-4E2D45535001"));
    entries[32..40].copy_from_slice(&ESP_START.to_le_bytes());
    entries[40..48].copy_from_slice(&(ESP_START + esp_sectors - 1).to_le_bytes());
    for (i, c) in "EFI system partition".encode_utf16().enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
    }
    let entries_crc = crc32(&entries);

    let header = |my: u64, alternate: u64, entries_lba: u64| {
        let mut h = vec![0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(last - 33).to_le_bytes());
        h[56..72].copy_from_slice(&guid("4A52554E-5354-414E-4449-4E2D44495343"));
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let primary = header(1, last, 2);
    let backup = header(last, 1, last - 32);
    disk[at(1)..at(1) + 92].copy_from_slice(&primary);
    disk[at(2)..at(2) + entries.len()].copy_from_slice(&entries);
    disk[at(last - 32)..at(last - 32) + entries.len()].copy_from_slice(&entries);
    disk[at(last)..at(last) + 92].copy_from_slice(&backup);
    disk[at(ESP_START)..at(ESP_START) + esp.len()].copy_from_slice(esp);
    disk
}

/// A GUID in its on-disk (mixed-endian) form.
fn guid(s: &str) -> [u8; 16] {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let b: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut g = [0u8; 16];
    g[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    g[8..16].copy_from_slice(&b[8..16]);
    g
}

/// CRC-32 (IEEE 802.3), as GPT uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A cpio archive that creates each file's folders first.
#[derive(Default)]
struct Tree {
    cpio: Cpio,
    dirs: BTreeSet<String>,
}

impl Tree {
    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn dir(&mut self, path: &str) {
        self.dir_mode(path, 0o755);
    }

    fn dir_mode(&mut self, path: &str, perm: u32) {
        if self.dirs.contains(path) {
            return;
        }
        self.parents(path);
        self.dirs.insert(path.to_string());
        self.cpio.entry(path, 0o040000 | perm, &[]);
    }

    fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.parents(path);
        self.cpio.file(path, perm, data);
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.cpio.entry(path, 0o120777, target.as_bytes());
    }
}

/// `name` on `PATH` (or in /usr/sbin, /sbin: `mkfs.vfat` lives there); fails the test
/// naming `package` when it is nowhere.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is missing: install {package}"))
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
