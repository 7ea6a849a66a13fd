//! `cargo run --release --example genroot -- FUNCTIONS OUT_DIR`: a large, valid
//! root for benchmarks and the whole-process comparison (tools/perf-compare.sh).

#[path = "../tools/genroot.rs"]
mod genroot;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(out)) = (
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
        args.get(2),
    ) else {
        eprintln!("usage: genroot FUNCTIONS OUT_DIR");
        return std::process::ExitCode::from(2);
    };
    let out = std::path::Path::new(out);
    if out.exists() {
        eprintln!("{} exists", out.display());
        return std::process::ExitCode::from(2);
    }
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    match genroot::generate(repo, out, n) {
        Ok(()) => {
            println!("{}: {n} PCI functions", out.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("genroot: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
