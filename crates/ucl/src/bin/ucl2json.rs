fn main() {
    eprintln!("ucl2json: not written yet");
    std::process::exit(2);
}
