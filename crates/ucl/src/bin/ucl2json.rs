//! `ucl2json [FILE|-]`: prints a UCL document as JSON.
//!
//! Exit status: 0 on success; 2 on a syntax error (`FILE:LINE:COL: message` on
//! stderr), on a file that cannot be read, on input that is not UTF-8 (reported
//! at the first invalid byte), and on output that cannot be written.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [] => "-".to_string(),
        [one] if one == "-h" || one == "--help" => {
            println!("usage: ucl2json [FILE|-]\nPrints the UCL document FILE (or stdin) as JSON.");
            return ExitCode::SUCCESS;
        }
        [one] => one.clone(),
        _ => {
            eprintln!("usage: ucl2json [FILE|-]");
            return ExitCode::from(2);
        }
    };
    let (name, read) = if path == "-" {
        let mut buf = Vec::new();
        let r = std::io::stdin().read_to_end(&mut buf).map(|_| buf);
        ("<stdin>".to_string(), r)
    } else {
        (path.clone(), std::fs::read(&path))
    };
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ucl2json: cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let prefix = std::str::from_utf8(&bytes[..at]).unwrap_or("");
            let loc = ucl::Location::of(prefix, prefix.len());
            eprintln!(
                "{name}:{}:{}: invalid UTF-8 (byte 0x{:02x}); UCL files must be UTF-8",
                loc.line, loc.column, bytes[at]
            );
            return ExitCode::from(2);
        }
    };
    match ucl::parse(&text) {
        Ok(value) => {
            let mut out = std::io::stdout().lock();
            let written = value
                .write_json(&mut out)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            // The process ends here, and the kernel takes its memory back at once: freeing
            // the tree node by node would only add time (libucl's ucl_tool does not either).
            std::mem::forget(value);
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ucl2json: cannot write the output: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(err) => {
            let loc = err.location(&text);
            eprintln!("{name}:{}:{}: {}", loc.line, loc.column, err.message);
            ExitCode::from(2)
        }
    }
}
