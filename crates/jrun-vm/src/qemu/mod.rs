//! QEMU: the command line ([`argv`]), where UEFI firmware lives ([`firmware`]), and
//! starting and stopping the VM process ([`launch`]).

pub mod argv;
pub mod firmware;
pub mod launch;

pub use argv::{console_socket, Accel, Arch, Boot, DisplayMode, HostFwd, QemuSpec};
pub use launch::{free_port_from, Qemu, QemuError, VmProcess};
