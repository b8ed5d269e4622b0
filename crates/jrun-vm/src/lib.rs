//! jrun's vm runtime: FreeBSD in QEMU, renderers for the guest, QMP and SSH.
