//! Golden output per fixture, line protocol and JSON, compared whole.
//! `UPDATE_GOLDEN=1 cargo test` writes `.new` files beside the goldens and
//! fails with a unified diff; `tools/accept-goldens.sh` accepts them.

use std::collections::{BTreeMap, BTreeSet};

use crate::goldenfile::Goldens;
use crate::util::*;

fn golden_path(name: &str, ext: &str) -> std::path::PathBuf {
    repo().join("tests/golden").join(format!("{name}.{ext}"))
}

fn output(name: &str, format: &str) -> String {
    let out = run_once(&fixture(name), &["--format", format]);
    assert!(out.status.success(), "{name}: exit {:?}", out.status);
    assert_stderr_prefixed(&out.stderr);
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

#[test]
fn every_fixture_matches_its_golden_files() {
    let names = fixtures();
    assert!(names.len() >= 9, "fixtures: {names:?}");
    let mut goldens = Goldens::default();
    for name in &names {
        goldens.check(golden_path(name, "lp"), &output(name, "influx"));
        goldens.check(golden_path(name, "json"), &output(name, "json"));
        goldens.check(golden_path(name, "prom"), &output(name, "prometheus"));
    }
    goldens.finish();
}

/// Every golden line parses back with an independent parser, names follow the
/// contract's shape, lines are sorted and share one timestamp.
#[test]
fn goldens_are_valid_sorted_line_protocol() {
    let name_re = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_lowercase()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
    };
    for name in fixtures() {
        let text = std::fs::read_to_string(golden_path(&name, "lp")).expect("golden");
        let ps = parse_lp(&text);
        assert!(!ps.is_empty(), "{name}: empty golden");
        let keys: Vec<(String, Vec<(String, String)>)> = ps
            .iter()
            .map(|p| (p.name.clone(), p.tags.clone().into_iter().collect()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            keys, sorted,
            "{name}: lines not sorted by measurement then tags"
        );
        for p in &ps {
            assert!(name_re(&p.name), "{name}: measurement {}", p.name);
            assert!(!p.fields.is_empty());
            for k in p.tags.keys().chain(p.fields.keys()) {
                assert!(name_re(k), "{name}: key {k} in {}", p.name);
            }
            if p.name == "kernel_event" {
                // An event carries its own time, never later than the collection.
                let t: i64 = FAKE_TIME.parse().expect("ts");
                assert!(p.ts.is_some_and(|x| x <= t), "{name}: event time");
            } else {
                assert_eq!(
                    p.ts,
                    Some(FAKE_TIME.parse().expect("ts")),
                    "{name}: one timestamp per batch"
                );
            }
            for v in p.fields.values() {
                if let Val::F(f) = v {
                    assert!(f.is_finite());
                }
            }
        }
        for measurement in ["vigil", "vigil_collector", "pcie_platform"] {
            assert!(
                points(&ps, measurement).count() > 0,
                "{name}: no {measurement}"
            );
        }
    }
}

/// The contract: a field's type never changes, across devices and fixtures.
#[test]
fn one_type_per_field_across_all_goldens() {
    let mut types: BTreeMap<(String, String), BTreeSet<&'static str>> = BTreeMap::new();
    for name in fixtures() {
        let text = std::fs::read_to_string(golden_path(&name, "lp")).expect("golden");
        for p in parse_lp(&text) {
            for (k, v) in &p.fields {
                types
                    .entry((p.name.clone(), k.clone()))
                    .or_default()
                    .insert(v.kind());
            }
        }
    }
    let mixed: Vec<_> = types.iter().filter(|(_, t)| t.len() > 1).collect();
    assert!(mixed.is_empty(), "fields with several types: {mixed:?}");
}

/// JSON carries exactly the same points as line protocol.
#[test]
fn json_golden_equals_line_protocol_golden() {
    for name in fixtures() {
        let lp = parse_lp(&std::fs::read_to_string(golden_path(&name, "lp")).expect("lp"));
        let json = std::fs::read_to_string(golden_path(&name, "json")).expect("json");
        let objs: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(objs.len(), lp.len(), "{name}");
        for (o, p) in objs.iter().zip(&lp) {
            assert_eq!(o["name"], p.name.as_str());
            assert_eq!(o["timestamp"].as_i64(), p.ts, "{name}: ns in both");
            for (k, v) in &p.tags {
                assert_eq!(o["tags"][k], v.as_str(), "{name} tag {k}");
            }
            assert_eq!(
                o["fields"].as_object().map(|m| m.len()),
                Some(p.fields.len())
            );
            for (k, v) in &p.fields {
                let j = &o["fields"][k];
                match v {
                    Val::I(i) => assert_eq!(j.as_i64(), Some(*i), "{name} {k}"),
                    Val::F(f) => assert_eq!(j.as_f64(), Some(*f), "{name} {k}"),
                    Val::S(s) => assert_eq!(j.as_str(), Some(s.as_str()), "{name} {k}"),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
}

/// docs/metrics.md lists exactly the (measurement, field, type) set the
/// goldens produce: a new field must be documented, a documented field must
/// appear in some fixture.
#[test]
fn metrics_reference_equals_output() {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let mut documented: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### `") {
            current = h.split('`').next().map(str::to_string);
            continue;
        }
        let Some(m) = &current else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let ty = cells[2].split_whitespace().next().unwrap_or("").to_string();
        if !["int", "float", "string"].contains(&ty.as_str()) {
            continue; // tag tables
        }
        for f in cells[1].split(',') {
            let f = f.trim().trim_matches('`').to_string();
            documented.insert((m.clone(), f, ty.clone()));
        }
    }
    let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
    for name in fixtures() {
        for p in parse_lp(&std::fs::read_to_string(golden_path(&name, "lp")).expect("lp")) {
            for (k, v) in &p.fields {
                // AER counters are named by the kernel: documented once as `<counter>`.
                let key = if p.name == "pcie_aer" && k != "total" && k != "rootport_total" {
                    "<counter>".to_string()
                } else {
                    k.clone()
                };
                seen.insert((p.name.clone(), key, v.kind().to_string()));
            }
        }
    }
    // Fields that only a long-running process emits, each covered by its own test.
    // kernel_event.suppressed: tests/it/kmsg.rs::a_storm_is_rate_limited_and_counted
    seen.insert(("kernel_event".into(), "suppressed".into(), "int".into()));
    // vigil.stopping: tests/it/stopmark.rs (written once, when Telegraf stops vigil)
    seen.insert(("vigil".into(), "stopping".into(), "int".into()));
    let undocumented: Vec<_> = seen.difference(&documented).collect();
    let unseen: Vec<_> = documented.difference(&seen).collect();
    assert!(
        undocumented.is_empty(),
        "in output, not in docs/metrics.md: {undocumented:?}"
    );
    assert!(
        unseen.is_empty(),
        "in docs/metrics.md, in no golden: {unseen:?}"
    );
}

/// docs/metrics.md has one section per measurement of the collector table
/// (and `vigil_collector`, every collector's), so the table, the docs and,
/// through the test above, the output name the same measurements.
#[test]
fn metrics_reference_sections_equal_the_collector_table() {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### `"))
        .filter_map(|h| h.split('`').next())
        .collect();
    let mut table: BTreeSet<&str> = vigil_collector::collector::TABLE
        .iter()
        .flat_map(|s| s.measurements.iter().copied())
        .collect();
    table.insert("vigil_collector");
    assert_eq!(documented, table);
}

/// The Prometheus goldens follow the text format's rules that node_exporter
/// enforces (tests/prometheus-e2e.sh reads three of them through the real
/// one): HELP and TYPE once per family before its samples, families
/// contiguous, names `vigil_` snake case, counters `_total`, no timestamps,
/// no series twice.
#[test]
fn prometheus_goldens_are_valid_exposition() {
    let snake = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    };
    for name in fixtures() {
        let text = std::fs::read_to_string(golden_path(&name, "prom")).expect("prom");
        let mut typed: BTreeMap<String, String> = BTreeMap::new();
        let mut series = BTreeSet::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(
                    typed.insert(family.into(), kind.into()).is_none(),
                    "{name}: {family} twice"
                );
                assert!(["gauge", "counter"].contains(&kind));
                assert!(kind != "counter" || family.ends_with("_total"), "{family}");
                current = family.to_string();
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            // After the labels, one value and nothing else: no timestamp.
            let (sample, value) = match line.rfind('}') {
                Some(end) => (&line[..=end], line[end + 1..].trim_start()),
                None => line.split_once(' ').expect("sample value"),
            };
            assert!(
                value.parse::<f64>().is_ok_and(f64::is_finite),
                "{name}: {line}"
            );
            let family = sample.split('{').next().expect("name");
            assert_eq!(family, current, "{name}: sample outside its family: {line}");
            assert!(family.starts_with("vigil_") && snake(family), "{family}");
            assert!(series.insert(sample.to_string()), "{name}: {sample} twice");
        }
        assert!(typed.len() > 10, "{name}: {} families", typed.len());
    }
}
