//! `jrun start --mode tty`: the VM's serial console, attached to this terminal. QEMU serves
//! it on a socket (`console.sock`) and keeps running when the terminal lets go.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::termios::{self, SetArg};

/// Ctrl-]: leaves the console (the VM runs on), as telnet and `virsh console` do.
pub const DETACH: u8 = 0x1d;

/// Copies the console to stdout and stdin to the console until Ctrl-] or until the VM
/// closes it. A terminal is put in raw mode meanwhile and restored after.
pub fn attach(socket: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e),
        }
    };
    let mut from_vm = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut out = std::io::stdout();
        let mut buf = [0u8; 4096];
        while let Ok(n) = from_vm.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(t) = &saved {
        let mut raw = t.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
    }
    let copied = copy_until_detach(&mut stdin.lock(), &mut &stream);
    if let Some(t) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, t);
    }
    copied
}

/// Copies `input` to `console` byte by byte until [`DETACH`] or the end of the input.
fn copy_until_detach(input: &mut impl Read, console: &mut impl Write) -> std::io::Result<()> {
    let mut buf = [0u8; 256];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        match buf[..n].iter().position(|b| *b == DETACH) {
            Some(at) => return console.write_all(&buf[..at]),
            None => console.write_all(&buf[..n])?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reaches_the_console_until_ctrl_bracket() {
        let mut console = Vec::new();
        copy_until_detach(&mut &b"root\nls\x1dnot sent"[..], &mut console).unwrap();
        assert_eq!(console, b"root\nls");
        let mut console = Vec::new();
        copy_until_detach(&mut &b"all of it"[..], &mut console).unwrap();
        assert_eq!(console, b"all of it");
    }
}
