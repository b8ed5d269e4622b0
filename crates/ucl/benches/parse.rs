//! Parse speed and peak memory on a generated jrun config of 40 000 jails (~19 MB).
//!
//! Run with `cargo bench -p ucl --bench parse`. Besides criterion's throughput, it
//! prints the peak heap allocated while parsing, as a multiple of the input size
//! (measured with a counting global allocator; the input itself is not counted).
//! Target: peak ≤ 3× the input. Speed against libucl: benches/vs_libucl.rs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod jails;
use jails::generate;

struct Counting;

/// Counting is switched on only for the memory report, so that criterion's timings
/// measure the plain system allocator.
static COUNTING: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to `System` unchanged; only counts the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = CURRENT.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts of what the tree holds: (object entries, array items, string bytes).
fn census(v: &ucl::Value, acc: &mut (usize, usize, usize)) {
    match &v.kind {
        ucl::Kind::String(s) => acc.2 += s.len(),
        ucl::Kind::Array(a) => {
            acc.1 += a.len();
            a.iter().for_each(|x| census(x, acc));
        }
        ucl::Kind::Object(o) => {
            acc.0 += o.len();
            o.iter().for_each(|(k, x)| {
                acc.2 += k.name.len();
                census(x, acc)
            });
        }
        _ => {}
    }
}

/// Parses once with counting on. Everything freed while counting was allocated while
/// counting (the tree is dropped before counting stops), so the books balance.
fn report(src: &str) {
    CURRENT.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let base = 0;
    let start = Instant::now();
    let value = ucl::parse(src).expect("generated config parses");
    let secs = start.elapsed().as_secs_f64();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let retained = CURRENT.load(Ordering::Relaxed) - base;
    let jails = value
        .as_object()
        .and_then(|o| o.get("jail"))
        .and_then(|j| j.as_object());
    assert_eq!(jails.map(|j| j.len()), Some(40_000));
    let mut counts = (0, 0, 0);
    census(&value, &mut counts);
    drop(value);
    COUNTING.store(false, Ordering::Relaxed);
    println!(
        "tree: {} entries x {} B, {} array items x {} B, {:.1} MB of string text",
        counts.0,
        std::mem::size_of::<(ucl::Key, ucl::Value)>(),
        counts.1,
        std::mem::size_of::<ucl::Value>(),
        counts.2 as f64 / 1e6
    );
    let mb = src.len() as f64 / 1e6;
    println!(
        "ucl parse: {mb:.1} MB in {:.1} ms = {:.0} MB/s (one cold run); peak heap {:.1} MB = {:.2}x input (target <= 3x: {}); tree {:.1} MB = {:.2}x input",
        secs * 1e3,
        mb / secs,
        peak as f64 / 1e6,
        peak as f64 / src.len() as f64,
        if peak <= 3 * src.len() { "ok" } else { "MISSED" },
        retained as f64 / 1e6,
        retained as f64 / src.len() as f64,
    );
}

fn bench(c: &mut Criterion) {
    let src = generate(40_000);
    report(&src);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(src.len() as u64));
    group.sample_size(10);
    group.bench_function("40k_jails", |b| {
        b.iter_with_large_drop(|| ucl::parse(&src).expect("parses"))
    });
    group.finish();
}

/// 1 MB inputs that would expose quadratic behaviour: each must take milliseconds.
fn pathological(c: &mut Criterion) {
    const MB: usize = 1 << 20;
    let cases = [
        ("nested_brackets", "[".repeat(MB)),
        (
            "nested_comments",
            "/*".repeat(MB / 2) + &"*/".repeat(MB / 2),
        ),
        ("line_comments", "# comment\n".repeat(MB / 10)),
        ("multipart_key", "k ".repeat(MB / 2) + "{}"),
        ("repeated_key", "a = 1\n".repeat(MB / 6)),
        ("repeated_section", "s \"x\" { }\n".repeat(MB / 12)),
        (
            "distinct_keys",
            (0..MB / 10).map(|i| format!("k{i} = 1\n")).collect(),
        ),
    ];
    let mut group = c.benchmark_group("pathological_1mb");
    group.sample_size(10);
    for (name, src) in &cases {
        group.throughput(Throughput::Bytes(src.len() as u64));
        group.bench_function(*name, |b| b.iter_with_large_drop(|| ucl::parse(src)));
    }
    group.finish();
}

criterion_group!(benches, bench, pathological);
criterion_main!(benches);
