//! One silence, explained: the JSON object other tools script against, and
//! the text a person reads (80 columns).

use serde_json::{json, Value};

use super::clues::Suspect;
use super::gather::{Evidence, WINDOW_S};
use super::silence::{Gap, Reboot, NS};
use super::time::{clock, rfc3339, span};

pub struct Silence {
    pub gap: Gap,
    pub reboot: Reboot,
    /// Why the reboot is classified so, in words.
    pub reboot_why: String,
    pub evidence: Option<Evidence>,
    pub now: i64,
}

impl Silence {
    pub fn back_at(&self) -> Option<i64> {
        self.gap.next.as_ref().map(|n| n.t)
    }
    /// Last heartbeat to the new boot's start (to the first beat back when the boot did not change).
    pub fn down_s(&self) -> i64 {
        let end = self
            .gap
            .boot_at()
            .filter(|b| *b >= self.gap.last.t)
            .or(self.back_at())
            .unwrap_or(self.now);
        (end - self.gap.last.t) / NS
    }
    pub fn silent_s(&self) -> i64 {
        (self.back_at().unwrap_or(self.now) - self.gap.last.t) / NS
    }
    pub fn explained(&self) -> bool {
        self.reboot == Reboot::Orderly || self.suspects().iter().any(|s| s.explains)
    }
    pub fn suspects(&self) -> &[Suspect] {
        self.evidence
            .as_ref()
            .map_or(&[], |e| e.suspects.as_slice())
    }
    pub fn verdict(&self) -> String {
        let top = self.suspects().iter().find(|s| s.explains);
        let who = |s: &Suspect| s.address.clone().or(s.cause.clone()).unwrap_or_default();
        if self.reboot == Reboot::Orderly {
            return "orderly shutdown (vigil's stop mark): not a freeze".into();
        }
        let what = match (self.reboot, self.gap.next.is_some()) {
            (Reboot::None, _) => "the node kept running (same boot), its data did not arrive",
            (Reboot::Reset, _) => "went down without shutting down (reset)",
            (_, true) => "rebooted; whether in order cannot be told (no stop mark ever seen)",
            (_, false) => "still silent, no stop mark: frozen, off, or cut off from the network",
        };
        match top {
            Some(s) => format!("{what}; first suspect {}: {}", who(s), s.findings[0]),
            None => format!("{what}; no hardware clue in the data"),
        }
    }
}

fn t(ns: Option<i64>) -> Value {
    ns.map_or(Value::Null, |n| Value::String(rfc3339(n)))
}

pub fn json(host: &str, s: &Silence) -> Value {
    let g = &s.gap;
    let n = g.next.as_ref();
    let mut v = json!({
        "host": host,
        "last_heartbeat": rfc3339(g.last.t),
        "last_uptime_s": g.last.uptime_s,
        "last_boot_id": g.last.boot_id,
        "back_at": t(s.back_at()),
        "back_uptime_s": n.and_then(|n| n.uptime_s),
        "back_boot_id": n.and_then(|n| n.boot_id.clone()),
        "boot_at": t(g.boot_at()),
        "down_s": s.down_s(),
        "silent_s": s.silent_s(),
        "still_silent": n.is_none(),
        "reboot": s.reboot.name(),
        "reboot_evidence": s.reboot_why,
        "verdict": s.verdict(),
        "explained": s.explained(),
        "suspects": s.suspects(),
    });
    if let Some(e) = &s.evidence {
        v["window"] = json!({"from": rfc3339(g.last.t - WINDOW_S * NS), "to": rfc3339(g.last.t)});
        v["signals"] = e
            .signals
            .iter()
            .map(|(k, x)| (k.clone(), Value::String(x.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
        v["resources"] = json!(e.resources);
        v["readiness"] = json!(e.readiness);
        v["fixes"] = e.fixes.iter().map(|f| json!(f)).collect();
    }
    v
}

fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let width = 80 - indent;
    let mut line = String::new();
    let mut lead = first.to_string();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push_str(&format!("{lead:indent$}{line}\n"));
            lead = String::new();
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&format!("{lead:indent$}{line}\n"));
}

fn up(u: Option<f64>) -> String {
    u.map_or_else(
        || "uptime unknown".into(),
        |u| format!("uptime {} s", group(u as i64)),
    )
}

fn group(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short(id: &Option<String>) -> String {
    id.as_deref()
        .map_or_else(|| "?".into(), |b| b.chars().take(8).collect())
}

pub fn text(host: &str, s: &Silence) -> String {
    let mut o = format!("vigil postmortem: {host}\n\n");
    when(&mut o, s);
    let Some(e) = &s.evidence else { return o };
    let t = s.gap.last.t;
    o.push_str(&format!(
        "\nBefore the silence ({} - {} UTC)\n",
        clock(t - WINDOW_S * NS),
        clock(t)
    ));
    for (k, v) in &e.signals {
        wrap(&mut o, &format!("  {k}"), 17, v);
    }
    o.push_str("\nResources (Telegraf)\n");
    for r in &e.resources {
        wrap(
            &mut o,
            &format!("  {:<8} {:<10}", r.resource, r.verdict),
            22,
            &r.summary,
        );
    }
    suspects(&mut o, s.suspects());
    lost(&mut o, e);
    o
}

/// When it went silent, how it came back, and what that says.
fn when(o: &mut String, s: &Silence) {
    let g = &s.gap;
    o.push_str(&format!(
        "Last beat  {}  {}, boot {}\n",
        rfc3339(g.last.t),
        up(g.last.uptime_s),
        short(&g.last.boot_id)
    ));
    match &g.next {
        Some(n) => {
            let new = if g.new_boot() { " (new)" } else { " (same)" };
            o.push_str(&format!(
                "Back       {}  {}, boot {}{new}\n",
                rfc3339(n.t),
                up(n.uptime_s),
                short(&n.boot_id)
            ));
            if let Some(b) = g.boot_at() {
                o.push_str(&format!("Booted     {}\n", rfc3339(b)));
            }
            o.push_str(&format!(
                "Down       {} (no data for {})\n",
                span(s.down_s()),
                span(s.silent_s())
            ));
        }
        None => o.push_str(&format!(
            "Back       not yet: silent for {}\n",
            span(s.silent_s())
        )),
    }
    wrap(
        o,
        "Reboot",
        11,
        &format!("{}: {}", s.reboot.name(), s.reboot_why),
    );
    wrap(o, "Verdict", 11, &s.verdict());
}

fn suspects(o: &mut String, all: &[Suspect]) {
    o.push_str("\nSuspects\n");
    if all.is_empty() {
        o.push_str("  none: nothing in the data points at a device or a resource\n");
    }
    for x in all {
        let who = x.address.clone().or(x.cause.clone()).unwrap_or_default();
        let name = x
            .name
            .as_ref()
            .map_or_else(String::new, |n| format!(" {n}"));
        let tag = if x.explains { "" } else { "  [context only]" };
        wrap(
            o,
            &format!("  {}.", x.rank),
            6,
            &format!("{who}{name} (score {}){tag}", x.score),
        );
        for f in &x.findings {
            wrap(o, "      -", 8, f);
        }
    }
}

/// What the node could not keep, and the doctor's fixes.
fn lost(o: &mut String, e: &Evidence) {
    let r = &e.readiness;
    let score = r
        .score
        .map_or_else(|| "unknown".into(), |s| format!("{s}/100"));
    o.push_str(&format!(
        "\nEvidence it could not keep (readiness {score} at the silence)\n"
    ));
    if r.lost.is_empty() {
        o.push_str("  nothing known to be lost\n");
    }
    for l in &r.lost {
        wrap(o, "  -", 4, l);
    }
    if let Some(n) = r.pstore_records_after.filter(|n| *n > 0) {
        let read = format!("after the reboot pstore held {n} record(s): read /sys/fs/pstore or /var/lib/systemd/pstore");
        wrap(o, "  !", 4, &read);
    }
    if e.fixes.is_empty() {
        return;
    }
    o.push_str("\nFixes that would have kept more (vigil doctor's words; run it on the node\nfor fixes fitted to what it has installed)\n");
    for f in &e.fixes {
        wrap(o, "  -", 4, &format!("{} [{}]", f.title, f.id));
        for l in &f.fix {
            o.push_str(&format!("      {l}\n"));
        }
    }
}

/// `--since`: one line per silence.
pub fn list(host: &str, since: i64, all: &[Silence]) -> String {
    let mut o = format!(
        "vigil postmortem: {host}, {} silence(s) since {}\n\n",
        all.len(),
        rfc3339(since)
    );
    for s in all {
        let back = s.back_at().map_or_else(|| "still silent".into(), rfc3339);
        o.push_str(&format!(
            "{} -> {back}  down {}, {}\n",
            rfc3339(s.gap.last.t),
            span(s.down_s()),
            s.reboot.name()
        ));
        wrap(&mut o, "", 4, &s.verdict());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postmortem::clues::{rank, Clue, Evidence as Ev};
    use crate::postmortem::readiness::Readiness;
    use crate::postmortem::silence::Beat;

    const LAST: i64 = 1_770_652_490; // 2026-02-09T15:54:50Z

    fn silence(reboot: Reboot, clues: Vec<Clue>) -> Silence {
        let beat = |t: i64, up: f64, boot: &str, stopping: bool| Beat {
            t: t * NS,
            uptime_s: Some(up),
            boot_id: Some(boot.into()),
            stopping,
        };
        Silence {
            gap: Gap {
                last: beat(LAST, 202_913.0, "a", reboot == Reboot::Orderly),
                next: Some(beat(LAST + 11_830, 1089.0, "b", false)),
            },
            reboot,
            reboot_why:
                "a very long explanation of why, long enough to need wrapping at eighty columns"
                    .into(),
            evidence: Some(Evidence {
                suspects: rank(clues, |_| {
                    Some("NVIDIA Corporation GA102 [GeForce RTX 3090] (vfio-pci)".into())
                }),
                resources: Vec::new(),
                readiness: Readiness {
                    score: Some(15),
                    lost: vec!["no kdump: no crash dump".into()],
                    ..Readiness::default()
                },
                fixes: Vec::new(),
                signals: vec![("PCIe links".into(), "2 link(s): no change".into())],
            }),
            now: (LAST + 20_000) * NS,
        }
    }

    fn clue(weight: u32) -> Clue {
        Clue {
            address: Some("0000:01:00.0".into()),
            cause: None,
            what: format!("something of weight {weight}"),
            weight,
            evidence: vec![Ev {
                measurement: "pcie_link".into(),
                field: "width".into(),
                value: "16 -> 8".into(),
                time: Some(LAST * NS),
            }],
        }
    }

    #[test]
    fn the_incident_shape_in_json() {
        let s = silence(Reboot::Reset, vec![clue(10)]);
        let j = json("FCM2250", &s);
        assert_eq!(j["last_heartbeat"], "2026-02-09T15:54:50Z");
        assert_eq!(j["back_at"], "2026-02-09T19:12:00Z");
        assert_eq!(j["boot_at"], "2026-02-09T18:53:51Z");
        assert_eq!(j["down_s"], 10_741);
        assert_eq!(j["silent_s"], 11_830);
        assert_eq!(j["reboot"], "reset");
        assert_eq!(j["explained"], false);
        assert_eq!(j["suspects"][0]["address"], "0000:01:00.0");
        assert_eq!(
            j["suspects"][0]["evidence"][0]["time"],
            "2026-02-09T15:54:50Z"
        );
    }

    #[test]
    fn text_fits_80_columns_and_names_the_first_suspect() {
        let s = silence(Reboot::Reset, vec![clue(10), clue(85)]);
        assert!(s.explained());
        let t = text("FCM2250", &s);
        for l in t.lines() {
            assert!(l.chars().count() <= 80, "{l:?}");
        }
        assert!(
            t.contains("Down       2h 59m 01s (no data for 3h 17m 10s)"),
            "{t}"
        );
        assert!(s
            .verdict()
            .contains("first suspect 0000:01:00.0: something of weight 85"));
    }

    #[test]
    fn an_orderly_shutdown_is_explained_and_not_a_freeze() {
        let s = silence(Reboot::Orderly, Vec::new());
        assert!(s.explained());
        assert!(s.verdict().contains("not a freeze"));
        let l = list("pve1", LAST * NS, &[s]);
        assert!(
            l.contains("2026-02-09T15:54:50Z -> 2026-02-09T19:12:00Z  down 2h 59m 01s, orderly"),
            "{l}"
        );
    }
}
