//! Prints the benches' generated config: `cargo run --release -p ucl --example gen-jails [JAILS]`.

#[path = "../benches/jails/mod.rs"]
mod jails;

fn main() {
    let n = std::env::args()
        .nth(1)
        .map_or(40_000, |a| a.parse().expect("JAILS is a number"));
    print!("{}", jails::generate(n));
}
