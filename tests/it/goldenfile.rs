//! Golden files compared whole, with a unified diff on mismatch.
//!
//! A golden is never rewritten by a test run: `UPDATE_GOLDEN=1 cargo test`
//! writes what the program printed next to the golden as `NAME.new` and still
//! fails, so a change is read as a diff before `tools/accept-goldens.sh`
//! moves the `.new` files into place.

use std::path::{Path, PathBuf};

/// Collects the mismatches of one test, so that every `.new` file is written
/// before the test fails.
#[derive(Default)]
pub struct Goldens {
    failures: Vec<String>,
}

impl Goldens {
    pub fn check(&mut self, path: PathBuf, got: &str) {
        let want = std::fs::read_to_string(&path).ok();
        if want.as_deref() == Some(got) {
            let _ = std::fs::remove_file(new_path(&path));
            return;
        }
        let update = std::env::var_os("UPDATE_GOLDEN").is_some();
        if update {
            std::fs::write(new_path(&path), got).expect("write .new golden");
        }
        let diff = match &want {
            Some(want) => unified_diff(want, got, &path),
            None => format!("{} is missing\n", path.display()),
        };
        let hint = if update {
            format!("wrote {}", new_path(&path).display())
        } else {
            "rerun with UPDATE_GOLDEN=1 to write .new files".to_string()
        };
        self.failures.push(format!("{diff}({hint})\n"));
    }

    /// Panics with every diff when any golden differed.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} golden file(s) differ from the output:\n\n{}\nread the diff, then \
             `tools/accept-goldens.sh` to accept the .new files",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn new_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("file name").to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

/// Lines shown around each change.
const CONTEXT: usize = 3;
/// Beyond this many differing lines on each side the middle is shown as one
/// replaced block (the table would take cells squared).
const MAX_LCS: usize = 4000;

enum Op<'a> {
    Same(&'a str),
    Del(&'a str),
    Add(&'a str),
}

/// `diff -u` style: `---`/`+++` headers, `@@` hunks with line numbers.
pub fn unified_diff(want: &str, got: &str, path: &Path) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    let ops = edit_script(&a, &b);
    let mut out = format!("--- {}\n+++ {} (output)\n", path.display(), path.display());
    for hunk in hunks(&ops) {
        out.push_str(&hunk);
    }
    out
}

fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<Op> = a[..pre].iter().map(|l| Op::Same(l)).collect();
    if ma.len() > MAX_LCS || mb.len() > MAX_LCS {
        ops.extend(ma.iter().map(|l| Op::Del(l)));
        ops.extend(mb.iter().map(|l| Op::Add(l)));
    } else {
        ops.extend(lcs_ops(ma, mb));
    }
    ops.extend(a[a.len() - suf..].iter().map(|l| Op::Same(l)));
    ops
}

/// Longest common subsequence by dynamic programming, walked forwards.
fn lcs_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (a.len(), b.len());
    // len[i][j]: LCS length of a[i..] and b[j..].
    let mut len = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            len[i][j] = if a[i] == b[j] {
                len[i + 1][j + 1] + 1
            } else {
                len[i + 1][j].max(len[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < n && (j == m || len[i + 1][j] >= len[i][j + 1]) {
            // Removals first on a tie, as `diff -u` prints them.
            ops.push(Op::Del(a[i]));
            i += 1;
        } else {
            ops.push(Op::Add(b[j]));
            j += 1;
        }
    }
    ops
}

/// Groups the script into hunks with `CONTEXT` lines of context.
fn hunks(ops: &[Op]) -> Vec<String> {
    let changed: Vec<usize> = (0..ops.len())
        .filter(|&k| !matches!(ops[k], Op::Same(_)))
        .collect();
    let mut out = Vec::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        out.push(render_hunk(ops, start, end));
    }
    out
}

fn render_hunk(ops: &[Op], start: usize, end: usize) -> String {
    // Line numbers (1-based) where the hunk starts on each side.
    let count = |pred: fn(&Op) -> bool, upto: usize| ops[..upto].iter().filter(|o| pred(o)).count();
    let in_a = |o: &Op| !matches!(o, Op::Add(_));
    let in_b = |o: &Op| !matches!(o, Op::Del(_));
    let (a0, b0) = (count(in_a, start), count(in_b, start));
    let (a1, b1) = (count(in_a, end), count(in_b, end));
    let mut s = format!("@@ -{},{} +{},{} @@\n", a0 + 1, a1 - a0, b0 + 1, b1 - b0);
    for op in &ops[start..end] {
        let (mark, line) = match op {
            Op::Same(l) => (' ', l),
            Op::Del(l) => ('-', l),
            Op::Add(l) => ('+', l),
        };
        s.push(mark);
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[test]
fn unified_diff_pairs_lines_by_content_not_position() {
    let want = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    // One line inserted near the top shifts every later line: a positional
    // diff would call all of them changed.
    let got = "a\nNEW\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let d = unified_diff(want, got, Path::new("x.lp"));
    assert_eq!(
        d,
        "--- x.lp\n+++ x.lp (output)\n@@ -1,4 +1,5 @@\n a\n+NEW\n b\n c\n d\n"
    );
}

#[test]
fn unified_diff_shows_a_replaced_line_and_separate_hunks() {
    let want: String = (1..=20).map(|i| format!("{i}\n")).collect();
    let got: String = (1..=20)
        .map(|i| match i {
            2 => "two\n".to_string(),
            18 => "eighteen\n".to_string(),
            i => format!("{i}\n"),
        })
        .collect();
    let d = unified_diff(&want, &got, Path::new("g"));
    assert_eq!(d.matches("@@ ").count(), 2, "{d}");
    assert!(d.contains("-2\n+two\n"), "{d}");
    assert!(d.contains("-18\n+eighteen\n"), "{d}");
}
