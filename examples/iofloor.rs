//! The I/O floor for tools/perf-compare.sh: open, read and close exactly the
//! files listed in FILE (one path per line, as strace saw vigil open them),
//! and nothing else. What a collection cannot go below.

use std::io::{BufRead, Read};

fn main() {
    let list = std::env::args().nth(1).expect("usage: iofloor FILE");
    let paths: Vec<String> = std::io::BufReader::new(std::fs::File::open(list).expect("list"))
        .lines()
        .map_while(Result::ok)
        .collect();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    for p in &paths {
        if let Ok(mut f) = std::fs::File::open(p) {
            while let Ok(n) = f.read(&mut buf) {
                total += n;
                if n < buf.len() {
                    break;
                }
            }
        }
    }
    println!("{} files, {total} bytes", paths.len());
}
