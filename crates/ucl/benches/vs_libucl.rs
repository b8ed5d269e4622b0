//! Parse throughput of this crate against libucl 0.7.3's C parser, on the same
//! generated 40 000-jail config, in the same run.
//!
//! `sh tests/libucl/fetch-source.sh` once, then
//! `cargo bench -p ucl --features libucl-bench --bench vs_libucl`.
//! Besides criterion's two throughputs (many parses in one process), it times both
//! parsers interleaved, each parse in a forked child with the heap as the parent left
//! it, as in a program that parses its config once (ucl2json, jrun): in one long-lived
//! process the two parsers' freed trees fragment the heap for each other. It prints the
//! medians and their ratio against the target (ours ≥ 2× libucl), in wall time and in
//! CPU time (which other processes on a busy machine disturb far less). Both sides are
//! timed up to a finished tree; freeing it is not timed for either.

use std::ffi::{c_char, c_int, CStr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod jails;

/// How many times faster than libucl this crate's parser must be.
const TARGET: f64 = 2.0;
const ROUNDS: usize = 21;

#[repr(C)]
struct UclParser {
    _opaque: [u8; 0],
}
#[repr(C)]
struct UclObject {
    _opaque: [u8; 0],
}

// libucl's C API (include/ucl.h), compiled and linked by build.rs.
extern "C" {
    fn ucl_parser_new(flags: c_int) -> *mut UclParser;
    fn ucl_parser_add_chunk(parser: *mut UclParser, data: *const u8, len: usize) -> bool;
    fn ucl_parser_get_object(parser: *mut UclParser) -> *mut UclObject;
    fn ucl_parser_get_error(parser: *mut UclParser) -> *const c_char;
    fn ucl_parser_free(parser: *mut UclParser);
    fn ucl_object_unref(obj: *mut UclObject);
}

/// A libucl parse result, freed on drop (outside the timed part, as our tree is).
struct Parsed {
    parser: *mut UclParser,
    obj: *mut UclObject,
}

impl Drop for Parsed {
    fn drop(&mut self) {
        // SAFETY: both came from libucl and are released once, object first
        // (`ucl_parser_get_object` took a reference of its own).
        unsafe {
            ucl_object_unref(self.obj);
            ucl_parser_free(self.parser);
        }
    }
}

fn libucl_parse(src: &[u8]) -> Parsed {
    // SAFETY: libucl reads `src` (valid for `len` bytes) and keeps no pointer into it
    // without UCL_PARSER_ZEROCOPY; the parser is checked for NULL.
    unsafe {
        let parser = ucl_parser_new(0);
        assert!(!parser.is_null(), "ucl_parser_new failed");
        if !ucl_parser_add_chunk(parser, src.as_ptr(), src.len()) {
            let msg = CStr::from_ptr(ucl_parser_get_error(parser));
            panic!("libucl rejects the generated config: {msg:?}");
        }
        let obj = ucl_parser_get_object(parser);
        assert!(!obj.is_null(), "libucl returned no object");
        Parsed { parser, obj }
    }
}

/// This thread's CPU time so far.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall and CPU time of `f`, and its result (dropped by the caller, untimed).
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    let out = f();
    (wall.elapsed(), cpu_time() - cpu, out)
}

/// Runs `f` in a forked child (which exits without freeing anything) and returns the
/// two durations it measured.
fn in_child(f: impl FnOnce() -> (Duration, Duration)) -> (Duration, Duration) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe failed");
    // SAFETY: the bench is single-threaded here (criterion has not started), so the
    // child may allocate; it leaves only through _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let (wall, cpu) = f();
        let mut msg = [0u8; 16];
        msg[..8].copy_from_slice(&(wall.as_nanos() as u64).to_le_bytes());
        msg[8..].copy_from_slice(&(cpu.as_nanos() as u64).to_le_bytes());
        // SAFETY: writes 16 bytes from `msg` to the pipe, then ends the child at once.
        unsafe {
            let n = libc::write(fds[1], msg.as_ptr().cast(), msg.len());
            libc::_exit(if n == 16 { 0 } else { 1 });
        }
    }
    let mut msg = [0u8; 16];
    let mut status = 0;
    // SAFETY: reads at most 16 bytes into `msg`, closes our pipe ends, reaps the child.
    let (n, waited) = unsafe {
        libc::close(fds[1]);
        let n = libc::read(fds[0], msg.as_mut_ptr().cast(), msg.len());
        libc::close(fds[0]);
        (n, libc::waitpid(pid, &mut status, 0))
    };
    assert!(
        n == 16 && waited == pid && status == 0,
        "the measuring child failed (status {status})"
    );
    let at = |i: usize| {
        Duration::from_nanos(u64::from_le_bytes(
            msg[i..i + 8].try_into().expect("8 bytes"),
        ))
    };
    (at(0), at(8))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Both parsers in turn, alternating which goes first; prints medians and the ratio.
fn interleaved(src: &str) {
    let (mut ours, mut theirs) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for round in 0..ROUNDS {
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                let (wall, cpu) = in_child(|| {
                    let (wall, cpu, tree) = timed(|| ucl::parse(src).expect("parses"));
                    std::mem::forget(tree);
                    (wall, cpu)
                });
                ours[0].push(wall);
                ours[1].push(cpu);
            } else {
                let (wall, cpu) = in_child(|| {
                    let (wall, cpu, tree) = timed(|| libucl_parse(src.as_bytes()));
                    std::mem::forget(tree);
                    (wall, cpu)
                });
                theirs[0].push(wall);
                theirs[1].push(cpu);
            }
        }
    }
    let mb = src.len() as f64 / 1e6;
    for (clock, (o, t)) in ["wall", "cpu"].iter().zip(ours.into_iter().zip(theirs)) {
        // Each round's two runs are neighbours in time, so their ratio is the least
        // disturbed by what else the machine does; the verdict uses its median.
        let mut paired: Vec<f64> = o
            .iter()
            .zip(&t)
            .map(|(o, t)| t.as_secs_f64() / o.as_secs_f64())
            .collect();
        paired.sort_by(f64::total_cmp);
        let ratio = paired[paired.len() / 2];
        let (o, t) = (median(o), median(t));
        let (o_rate, t_rate) = (mb / o.as_secs_f64(), mb / t.as_secs_f64());
        println!(
            "parse {mb:.1} MB, {clock} time, medians of {ROUNDS} interleaved rounds: ucl {:.1} ms = {o_rate:.0} MB/s, libucl {:.1} ms = {t_rate:.0} MB/s ({:.2}x); median of the rounds' ucl/libucl speed ratios = {ratio:.2}x (target >= {TARGET}x: {})",
            o.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e3,
            o_rate / t_rate,
            if ratio >= TARGET { "ok" } else { "MISSED" },
        );
    }
}

fn bench(c: &mut Criterion) {
    let src = jails::generate(40_000);
    interleaved(&src);
    let mut group = c.benchmark_group("vs_libucl");
    group.throughput(Throughput::Bytes(src.len() as u64));
    group.sample_size(10);
    group.bench_function("ucl", |b| {
        b.iter_with_large_drop(|| ucl::parse(&src).expect("parses"))
    });
    group.bench_function("libucl", |b| {
        b.iter_with_large_drop(|| libucl_parse(src.as_bytes()))
    });
    group.finish();
    interleaved(&src);
}

criterion_group!(benches, bench);
criterion_main!(benches);
