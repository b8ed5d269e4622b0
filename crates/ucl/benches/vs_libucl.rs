//! Parse throughput of this crate against libucl 0.7.3's C parser, on the same
//! generated 40 000-jail config, in the same run.
//!
//! `sh tests/libucl/fetch-source.sh` once, then
//! `cargo bench -p ucl --features libucl-bench --bench vs_libucl`.
//! Besides criterion's two throughputs it times both parsers interleaved (the machine
//! is shared, so a slow phase hits both alike) and prints the medians and their ratio
//! against the target (ours ≥ 2× libucl). Both sides are timed up to a finished tree;
//! freeing it is not timed for either.

use std::ffi::{c_char, c_int, CStr};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod jails;

/// How many times faster than libucl this crate's parser must be.
const TARGET: f64 = 2.0;
const ROUNDS: usize = 15;

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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Both parsers in turn, alternating which goes first; prints medians and the ratio.
fn interleaved(src: &str) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        for side in [round % 2, 1 - round % 2] {
            let start = Instant::now();
            if side == 0 {
                let v = ucl::parse(src).expect("parses");
                ours.push(start.elapsed());
                drop(v);
            } else {
                let p = libucl_parse(src.as_bytes());
                theirs.push(start.elapsed());
                drop(p);
            }
        }
    }
    let mb = src.len() as f64 / 1e6;
    let (o, t) = (median(ours), median(theirs));
    let (o_rate, t_rate) = (mb / o.as_secs_f64(), mb / t.as_secs_f64());
    let ratio = o_rate / t_rate;
    println!(
        "parse {mb:.1} MB, medians of {ROUNDS} interleaved: ucl {:.1} ms = {o_rate:.0} MB/s, libucl {:.1} ms = {t_rate:.0} MB/s; ucl/libucl = {ratio:.2}x (target >= {TARGET}x: {})",
        o.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e3,
        if ratio >= TARGET { "ok" } else { "MISSED" },
    );
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
