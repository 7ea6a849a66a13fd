//! `vigil doctor`: what this node would lose if it froze now, in plain words.
//! For each finding: what was seen (file and value), why it matters for a
//! frozen node, and the exact fix. Text fits 80 columns; colour only on a TTY
//! (and never with NO_COLOR).

use serde_json::{json, Value};
use vigil_collector::forensics::findings::{score, Finding};
use vigil_collector::Snapshot;

const WIDTH: usize = 80;

/// Greedy word wrap; a word longer than the width stands alone.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + w.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

fn block(out: &mut String, label: &str, lines: &[String]) {
    let indent = "         ";
    for (i, l) in lines.iter().enumerate() {
        let head = if i == 0 {
            format!("  {label:<6} ")
        } else {
            indent.to_string()
        };
        // A line that fits is kept verbatim: fixes carry meaningful indentation.
        let parts = if l.chars().count() <= WIDTH - indent.len() {
            vec![l.clone()]
        } else {
            wrap(l, WIDTH - indent.len())
        };
        for (j, part) in parts.iter().enumerate() {
            if j == 0 {
                out.push_str(&head);
            } else {
                out.push_str(indent);
                out.push_str("  ");
            }
            out.push_str(part);
            out.push('\n');
        }
    }
}

pub fn text(s: &Snapshot, color: bool) -> String {
    let (red, yellow, green, bold, reset) = if color {
        ("\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "", "")
    };
    let findings = &s.findings;
    let sc = score(findings);
    let mut out = String::new();
    out.push_str(&format!(
        "{bold}vigil doctor: what this node would lose if it froze now{reset}\n\n"
    ));
    let c = if sc >= 80 {
        green
    } else if sc >= 50 {
        yellow
    } else {
        red
    };
    out.push_str(&format!(
        "Readiness {c}{sc}/100{reset}, {} finding{}.\n",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    ));
    if findings.is_empty() {
        out.push_str("\nThis node keeps its logs on disk and off the node, and would leave a crash\nrecord. Nothing to fix.\n");
        return out;
    }
    for f in findings {
        out.push('\n');
        let mark = if f.weight >= 10 { red } else { yellow };
        let tag = format!(" [-{}]", f.weight);
        for (i, l) in wrap(&f.title, WIDTH - 4 - tag.len()).iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{mark}{bold}[!] {l}{reset}{tag}\n"));
            } else {
                out.push_str(&format!("    {bold}{l}{reset}\n"));
            }
        }
        let seen: Vec<String> = f.seen.iter().map(|(w, v)| format!("{w}: {v}")).collect();
        block(&mut out, "seen", &seen);
        block(&mut out, "why", &[f.why.to_string()]);
        block(&mut out, "fix", &f.fix);
    }
    out
}

pub fn json(s: &Snapshot) -> String {
    let findings: Vec<Value> = s.findings.iter().map(finding_json).collect();
    let v = json!({
        "readiness_score": score(&s.findings),
        "findings": findings,
        "facts": s.forensics,
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "id": f.id,
        "weight": f.weight,
        "title": f.title,
        "seen": f.seen.iter().map(|(w, v)| json!({"where": w, "value": v})).collect::<Vec<_>>(),
        "why": f.why,
        "fix": f.fix,
    })
}
