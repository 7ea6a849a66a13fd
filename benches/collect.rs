//! `cargo bench`: one full collection on generated roots of 64, 256 and 512
//! PCI functions, encoding a 460-function snapshot, and the hot parsers. Whole-process numbers against lspci and
//! an I/O floor: tools/perf-compare.sh.

#[path = "../tools/genroot.rs"]
mod genroot;
// The binary's encoders, from its library.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use vigil::metric::Metric;
use vigil::{convert, lineproto, thin};
use vigil_collector::{Clock, Root, Selection, Snapshot};

fn collection(c: &mut Criterion) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("vigil-bench-{}", std::process::id()));
    let mut group = c.benchmark_group("collect");
    group.sample_size(20);
    for n in [64usize, 256, 512] {
        let dir = tmp.join(n.to_string());
        genroot::generate(repo, &dir, n).expect("generate root");
        let root = Root::new(&dir);
        let sel = Selection::all();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                black_box(vigil_collector::collect(
                    &root,
                    &sel,
                    Clock::Fixed { unix_ns: 1 },
                ))
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&tmp);
}

/// Snapshot to line protocol for 460 functions (about 4,000 lines): the
/// per-point cost of naming, tagging and escaping.
fn encoding(c: &mut Criterion) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("vigil-bench-emit-{}", std::process::id()));
    genroot::generate(repo, &dir, 460).expect("generate root");
    let sel = Selection::all();
    let snap = vigil_collector::collect(&Root::new(&dir), &sel, Clock::Fixed { unix_ns: 1 });
    let mut names = convert::Names::new(true);
    let mut line = String::with_capacity(512);
    c.bench_function("encode/460", |b| {
        b.iter(|| {
            let mut bytes = 0;
            emit(&sel, &mut names, &snap, &mut |m| {
                line.clear();
                lineproto::write_metric(&mut line, m);
                bytes += line.len();
            });
            black_box(bytes)
        })
    });
    // What a long-running process's main thread does each collection: the
    // same points, thinned against the last batch (facts left out unless
    // changed or due), then written. Ten seconds apart, as Telegraf triggers.
    let mut thinner = thin::Thinner::new(std::time::Duration::from_secs(300));
    let mut t: i64 = 1_700_000_000_000_000_000;
    c.bench_function("encode_warm/460", |b| {
        b.iter(|| {
            let mut bytes = 0;
            t += 10_000_000_000;
            thinner.begin(t);
            emit(&sel, &mut names, &snap, &mut |m| {
                thinner.apply(m, &mut |m, omit| {
                    line.clear();
                    lineproto::write_metric_except(&mut line, m, omit);
                    bytes += line.len();
                });
            });
            thinner.end();
            black_box(bytes)
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// One batch of `snap`'s points in the contract's order, each handed to `sink`.
fn emit(
    sel: &Selection,
    names: &mut convert::Names,
    snap: &Snapshot,
    sink: &mut dyn FnMut(&Metric),
) {
    let opts = convert::Options::default();
    let mut conv = convert::Converter {
        sel,
        names,
        version: "bench",
        opts: &opts,
    };
    conv.emit(snap, Vec::new(), sink);
}

fn parsers(c: &mut Criterion) {
    use vigil_collector::pci::parse;
    let cfg = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/asus-p6t6-switch/sys/devices/pci0000:00/0000:00:07.0/config"),
    )
    .expect("config");
    let aer = "Undefined 0\nDLP 0\nSDES 1\nTLP 0\nFCP 0\nCmpltTO 2\nCmpltAbrt 0\nUnxCmplt 0\nRxOF 0\nMalfTLP 0\nECRC 0\nUnsupReq 0\nACSViol 0\nUncorrIntErr 0\nBlockedTLP 0\nAtomicOpBlocked 0\nTLPBlockedErr 0\nPoisonTLPBlocked 0\nTOTAL_ERR_FATAL 3\n";
    let kmsg = b"3,2002,86390000050,-;nvidia 0000:02:00.0: PCIe Bus Error: severity=Uncorrectable (Fatal), type=Transaction Layer, (Requester ID)\n SUBSYSTEM=pci\n DEVICE=+pci:0000:02:00.0\n";
    c.bench_function("parse/link_speed", |b| {
        b.iter(|| parse::link_speed(black_box("16.0 GT/s PCIe")))
    });
    c.bench_function("parse/aer_file", |b| {
        b.iter(|| parse::aer_file(black_box(aer)))
    });
    c.bench_function("parse/aer_field_name", |b| {
        b.iter(|| vigil::names::aer_field_name(black_box("PoisonTLPBlocked")))
    });
    c.bench_function("decode/config_4096", |b| {
        b.iter(|| vigil_collector::pci::config_space::decode(black_box(&cfg)))
    });
    c.bench_function("kmsg/parse_classify", |b| {
        b.iter(|| {
            vigil_collector::kmsg::record::parse(black_box(kmsg))
                .and_then(|r| vigil_collector::kmsg::judge_text(&mut Default::default(), &r))
        })
    });
}

criterion_group!(benches, collection, encoding, parsers);
criterion_main!(benches);
