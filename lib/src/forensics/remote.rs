//! Do logs leave the node? rsyslog forwarding rules, syslog-ng network
//! destinations, systemd-journal-upload, netconsole.
//!
//! Each configuration file is parsed on its own, following the daemon's own
//! includes in the order the daemon reads them (glob(3) sorts matches; a
//! directory is read in name order), so one file can never hide another. A
//! file that cannot be read makes the answer unknown, never "no".

use std::collections::BTreeSet;

use super::{journald, masked, os_error, systemd_conf_files, Forensics, C};
use crate::platform::cmdline;
use crate::read::{self, ErrorKind, ReadError};
use crate::root::Root;
use crate::status::Tally;

/// What one configuration file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    pub forwards: bool,
    /// Include patterns, in the order they appear (absolute, or relative to the daemon).
    pub includes: Vec<String>,
}

/// The answer for one way off the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub forwards: bool,
    /// Reads that failed for another reason than absence: the answer is unknown
    /// unless another file already forwards.
    pub unreadable: Vec<ReadError>,
}

impl Verdict {
    /// `Some(true)` forwards, `Some(false)` does not, `None` cannot tell.
    pub fn known(&self) -> Option<bool> {
        if self.forwards {
            Some(true)
        } else if self.unreadable.is_empty() {
            Some(false)
        } else {
            None
        }
    }
}

/// `/* ... */` blocks removed (RainerScript), so a commented-out action never
/// counts. As rsyslog's lexer: a comment starts a token (never inside a path
/// such as `/etc/rsyslog.d/*.conf`, a string, or a legacy `$` directive line).
fn strip_block_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let (mut i, mut start) = (0, 0);
    let mut quote = false;
    let mut line_start = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => line_start = i + 1,
            b'"' => quote = !quote,
            b'/' if !quote
                && b.get(i + 1) == Some(&b'*')
                && (i == 0 || b[i - 1].is_ascii_whitespace())
                && !text[line_start..i].trim_start().starts_with('$') =>
            {
                out.push_str(&text[start..i]);
                match text[i + 2..].find("*/") {
                    Some(j) => {
                        i += 2 + j + 2;
                        start = i;
                        continue;
                    }
                    None => return out,
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[start..]);
    out
}

/// rsyslog: legacy `*.* @host` / `@@host:514` / `:omrelp:host:port` actions,
/// RainerScript `action(type="omfwd" ...)` / `omrelp`; includes by legacy
/// `$IncludeConfig PATTERN` and RainerScript `include(file="PATTERN" ...)`.
pub fn rsyslog_file(text: &str) -> ConfFile {
    let code: String = strip_block_comments(text)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = ConfFile::default();
    for l in code.lines().map(str::trim) {
        let mut words = l.split_whitespace();
        let first = words.next().unwrap_or("");
        let action = words.next().unwrap_or("");
        if first.eq_ignore_ascii_case("$IncludeConfig") && !action.is_empty() {
            out.includes.push(action.to_string());
        }
        let legacy = (action.starts_with('@') && action.len() > 1)
            || action.starts_with(":omrelp:")
            || action.starts_with(":omfwd:");
        out.forwards |= legacy && !first.starts_with('$');
    }
    out.forwards |= ["omfwd", "omrelp"]
        .iter()
        .any(|m| param_values(&code, "type").iter().any(|v| v == m));
    for (i, _) in code.match_indices("include") {
        let before = code[..i].chars().next_back();
        let after = code[i + "include".len()..].trim_start();
        if before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '$') && after.starts_with('(') {
            let args = after[1..].split(')').next().unwrap_or("");
            out.includes.extend(param_values(args, "file"));
        }
    }
    out
}

/// Values of `name="value"` parameters (RainerScript), spaces around `=` allowed.
fn param_values(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(name) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let rest = text[i + name.len()..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(q) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        if let Some(end) = rest[1..].find(q) {
            out.push(rest[1..1 + end].to_string());
        }
    }
    out
}

/// syslog-ng comments run from `#` outside a string to the end of the line.
fn strip_hash_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut quote: Option<char> = None;
        let mut escaped = false;
        for c in line.chars() {
            match quote {
                _ if escaped => escaped = false,
                Some(_) if c == '\\' => escaped = true,
                Some(q) if c == q => quote = None,
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == '#' => break,
                _ => {}
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

/// syslog-ng: a `destination NAME { ... }` statement (not a `block destination`
/// template from the SCL) using `network(`, `syslog(`, `tcp(`, `udp(`...;
/// includes by `@include "PATTERN"`.
pub fn syslog_ng_file(text: &str) -> ConfFile {
    let code = strip_hash_comments(text);
    let mut out = ConfFile::default();
    for l in code.lines().map(str::trim) {
        if let Some(rest) = l.strip_prefix("@include") {
            let p = rest.trim().trim_end_matches(';').trim();
            let p = p.trim_matches(|c| c == '"' || c == '\'');
            if !p.is_empty() {
                out.includes.push(p.to_string());
            }
        }
    }
    let words: Vec<(usize, &str)> = code
        .match_indices(|c: char| !c.is_whitespace())
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || code[..i].ends_with(char::is_whitespace))
        .map(|i| {
            let end = code[i..]
                .find(char::is_whitespace)
                .map_or(code.len(), |e| i + e);
            (i, &code[i..end])
        })
        .collect();
    for (n, (i, w)) in words.iter().enumerate() {
        let statement = *w == "destination" && (n == 0 || words[n - 1].1 != "block");
        if !statement {
            continue;
        }
        let rest = &code[i + w.len()..];
        let Some(open) = rest.find('{') else {
            continue;
        };
        if rest[..open].trim().is_empty() || rest[..open].contains('(') {
            continue;
        }
        let body = braced(&rest[open..]);
        out.forwards |= ["network(", "syslog(", "tcp(", "udp(", "tcp6(", "udp6("]
            .iter()
            .any(|k| body.replace(' ', "").contains(k));
    }
    out
}

/// The text between a `{` and its matching `}`.
fn braced(s: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &s[1..i];
                }
            }
            _ => {}
        }
    }
    s.get(1..).unwrap_or("")
}

/// journal-upload.conf: the last `[Upload]` `URL=` is set (an empty one resets it).
pub fn journal_upload_url(url: &mut Option<String>, text: &str) {
    for a in journald::assignments(text) {
        if a.section.as_deref() == Some("Upload") && a.key == "URL" {
            *url = (!a.value.is_empty()).then_some(a.value);
        }
    }
}

/// `/proc/consoles`: netconsole registers `netcon0` / `netcon_ext0`.
pub fn netconsole_console(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with("netcon"))
}

/// glob(3) for one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`; a
/// leading dot is only matched by a pattern that starts with one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches(&p, &n)
}

fn matches(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|k| matches(&p[1..], &n[k..])),
        Some('?') => !n.is_empty() && matches(&p[1..], &n[1..]),
        Some('[') => match (class(&p[1..]), n.first()) {
            (Some((set_len, ok)), Some(c)) => ok(*c) && matches(&p[1 + set_len..], &n[1..]),
            (None, Some(c)) => *c == '[' && matches(&p[1..], &n[1..]),
            (_, None) => false,
        },
        Some(c) => n.first() == Some(c) && matches(&p[1..], &n[1..]),
    }
}

type Class = (usize, Box<dyn Fn(char) -> bool>);

/// A bracket expression after `[`: its length including `]`, and the test.
fn class(p: &[char]) -> Option<Class> {
    let negate = matches!(p.first(), Some('!') | Some('^'));
    let start = usize::from(negate);
    let end = p
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, c)| **c == ']')?
        .0;
    let set: Vec<char> = p[start..end].to_vec();
    let test = move |c: char| {
        let mut hit = false;
        let mut i = 0;
        while i < set.len() {
            if i + 2 < set.len() && set[i + 1] == '-' {
                hit |= set[i] <= c && c <= set[i + 2];
                i += 3;
            } else {
                hit |= set[i] == c;
                i += 1;
            }
        }
        hit != negate
    };
    Some((end + 1, Box::new(test)))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The files an include pattern names, in the order the daemon reads them: a
/// pattern expands like glob(3) (sorted); a directory means its files in name
/// order (`skip` drops names the daemon ignores there). Errors other than
/// absence are recorded.
pub fn expand(
    root: &Root,
    pattern: &str,
    skip: fn(&str) -> bool,
    errors: &mut Vec<ReadError>,
) -> Vec<String> {
    let mut paths = vec![String::new()];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in paths {
            if !has_glob(comp) {
                next.push(format!("{base}/{comp}"));
                continue;
            }
            let dir = if base.is_empty() { "/" } else { base.as_str() };
            match read::list_dir(&root.path(dir)) {
                Ok(names) => next.extend(
                    names
                        .iter()
                        .filter(|n| glob_match(comp, n))
                        .map(|n| format!("{base}/{n}")),
                ),
                Err(e) if e.kind == ErrorKind::Absent => {}
                Err(e) => errors.push(e),
            }
        }
        paths = next;
    }
    let mut out = Vec::new();
    for p in paths {
        if read::is_dir(&root.path(&p)) {
            match read::list_dir(&root.path(&p)) {
                Ok(names) => out.extend(
                    names
                        .iter()
                        .filter(|n| !skip(n))
                        .map(|n| format!("{}/{n}", p.trim_end_matches('/'))),
                ),
                Err(e) => errors.push(e),
            }
        } else {
            out.push(p);
        }
    }
    out
}

/// Read `start` and everything it includes, depth-first in reading order, each
/// file parsed on its own by `parse`. `resolve` turns a relative include into
/// an absolute pattern (`None`: outside what vigil follows).
pub fn follow(
    root: &Root,
    start: &str,
    parse: fn(&str) -> ConfFile,
    resolve: fn(&str) -> Option<String>,
    skip: fn(&str) -> bool,
) -> Verdict {
    let mut v = Verdict::default();
    let mut seen = BTreeSet::new();
    let mut stack = vec![(start.to_string(), 0u32)];
    while let Some((path, depth)) = stack.pop() {
        if depth > 16 || !seen.insert(path.clone()) {
            continue;
        }
        let text = match read_config(root, &path) {
            Ok(t) => t,
            Err(e) if e.kind == ErrorKind::Absent => continue,
            Err(e) => {
                v.unreadable.push(e);
                continue;
            }
        };
        let file = parse(&text);
        v.forwards |= file.forwards;
        let mut included = Vec::new();
        for inc in &file.includes {
            let Some(pattern) = resolve(inc) else {
                continue;
            };
            included.extend(expand(root, &pattern, skip, &mut v.unreadable));
        }
        // Depth-first in order: the first included file is read next.
        stack.extend(included.into_iter().rev().map(|p| (p, depth + 1)));
    }
    v
}

/// A configuration file as text; bytes that are not UTF-8 (a Latin-1 comment)
/// are replaced, since every keyword vigil looks for is ASCII.
pub fn read_config(root: &Root, path: &str) -> read::Result<String> {
    let p = root.path(path);
    if read::is_dir(&p) {
        return Err(ReadError {
            path: p,
            kind: ErrorKind::Absent,
        });
    }
    let bytes = read::read_bytes(&p, read::MAX_TEXT + 1)?;
    if bytes.len() > read::MAX_TEXT {
        return Err(ReadError {
            path: p,
            kind: ErrorKind::Invalid(format!("larger than {} bytes", read::MAX_TEXT)),
        });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// rsyslog resolves a relative include against its working directory, `/`.
pub fn rsyslog_resolve(p: &str) -> Option<String> {
    Some(if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    })
}

/// syslog-ng resolves a relative include along its include path; vigil follows
/// only `/etc/syslog-ng` (the SCL library in /usr/share holds templates, not
/// this node's configuration).
pub fn syslog_ng_resolve(p: &str) -> Option<String> {
    if p.starts_with('/') {
        Some(p.to_string())
    } else if !p.starts_with("scl") {
        Some(format!("/etc/syslog-ng/{p}"))
    } else {
        None
    }
}

/// rsyslog reads every file of an included directory.
pub fn rsyslog_skip(_: &str) -> bool {
    false
}

/// syslog-ng skips backup and hidden files in an included directory.
pub fn syslog_ng_skip(n: &str) -> bool {
    n.ends_with('~') || n.starts_with('.')
}

/// journal-upload: enabled, with a `URL=` in its configuration.
fn journal_upload(root: &Root) -> Verdict {
    let mut v = Verdict::default();
    let enabled = read::exists(
        &root.path("/etc/systemd/system/multi-user.target.wants/systemd-journal-upload.service"),
    );
    if !enabled {
        return v;
    }
    let mut url = None;
    for path in systemd_conf_files(root, "journal-upload.conf") {
        if masked(root, &path) {
            continue;
        }
        match read_config(root, &path) {
            Ok(t) => journal_upload_url(&mut url, &t),
            Err(e) if e.kind == ErrorKind::Absent => {}
            Err(e) => v.unreadable.push(e),
        }
    }
    // An unreadable file could set or clear the URL: only a clean read is an answer.
    v.forwards = url.is_some() && v.unreadable.is_empty();
    v
}

/// netconsole: registered as a console, enabled in configfs, or on the command line.
fn netconsole(root: &Root, params: &[(String, Option<String>)]) -> Verdict {
    let mut v = Verdict::default();
    match read::read_text(&root.path("/proc/consoles")) {
        Ok(t) => v.forwards |= netconsole_console(&t),
        Err(e) if e.kind == ErrorKind::Absent => {}
        Err(e) => v.unreadable.push(e),
    }
    let dir = "/sys/kernel/config/netconsole";
    match read::list_dir(&root.path(dir)) {
        Ok(targets) => {
            for t in targets {
                match read::read_attr(&root.path(&format!("{dir}/{t}/enabled"))) {
                    Ok(e) => v.forwards |= e.trim() == "1",
                    Err(e) if e.kind == ErrorKind::Absent => {}
                    Err(e) => v.unreadable.push(e),
                }
            }
        }
        Err(e) if e.kind == ErrorKind::Absent => {}
        Err(e) => v.unreadable.push(e),
    }
    v.forwards |= cmdline::has_key(params, "netconsole");
    v
}

/// A daemon's program is there: a configuration left behind by `apt remove`
/// forwards nothing.
fn installed(root: &Root, program: &str) -> bool {
    read::is_file(&root.path(program))
}

/// Which ways off the node are in use; a way whose configuration could not be
/// read is unknown, reported in `unavailable` and never counted as "none".
pub fn collect(root: &Root, cmdline_text: Option<&str>, f: &mut Forensics, tally: &mut Tally) {
    let params = cmdline_text.map(cmdline::parse).unwrap_or_default();
    let ways = [
        ("journal-upload", Some(journal_upload(root))),
        (
            "rsyslog",
            installed(root, "/usr/sbin/rsyslogd").then(|| {
                follow(
                    root,
                    "/etc/rsyslog.conf",
                    rsyslog_file,
                    rsyslog_resolve,
                    rsyslog_skip,
                )
            }),
        ),
        (
            "syslog-ng",
            installed(root, "/usr/sbin/syslog-ng").then(|| {
                follow(
                    root,
                    "/etc/syslog-ng/syslog-ng.conf",
                    syslog_ng_file,
                    syslog_ng_resolve,
                    syslog_ng_skip,
                )
            }),
        ),
        ("netconsole", Some(netconsole(root, &params))),
    ];
    for (name, v) in ways {
        let v = v.unwrap_or_default();
        match v.known() {
            Some(true) => f.remote_logging.push(name.into()),
            Some(false) => {}
            None => {
                for e in &v.unreadable {
                    tally.read_failed(C, e);
                    f.remote_logging_unknown
                        .push(format!("{name}: {}", os_error(root, e)));
                }
            }
        }
        if name == "netconsole" {
            f.netconsole = v.known();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_rules() {
        assert!(rsyslog_file("*.* @@logs.example.org:514\n").forwards);
        assert!(
            rsyslog_file(
                "action(type=\"omfwd\" target=\"10.0.0.9\" port=\"514\" protocol=\"udp\")"
            )
            .forwards
        );
        assert!(rsyslog_file("*.* action(\n  type = \"omrelp\"\n  target=\"h\")\n").forwards);
        assert!(rsyslog_file("*.* :omrelp:192.0.2.1:2514;RSYSLOG_ForwardFormat\n").forwards);
        assert!(
            !rsyslog_file("#*.* @@remote-host:514\nauth,authpriv.* /var/log/auth.log\n").forwards
        );
        assert!(!rsyslog_file("/*\n*.* @@remote-host:514\n*/\nmodule(load=\"omfwd\")\n").forwards);
        assert!(rsyslog_file("$IncludeConfig /etc/rsyslog.d/*.conf\n*.* @h\n").forwards);
        assert!(syslog_ng_file("destination d_net { network(\"10.0.0.9\" port(514)); };").forwards);
        assert!(
            !syslog_ng_file("destination d_file { file(\"/var/log/messages\"); }; # network(")
                .forwards
        );
        assert!(
            !syslog_ng_file("block destination loggly(host(\"x\")) { network(\"`host`\"); };")
                .forwards,
            "an SCL template is not a destination"
        );
        assert!(netconsole_console(
            "tty0                 -WU (EC p  )    4:1\nnetcon0              -W- (E     )\n"
        ));
    }

    #[test]
    fn includes_in_reading_order() {
        let r = rsyslog_file(
            "$IncludeConfig /etc/rsyslog.d/*.conf\ninclude(file=\"/etc/rsyslog.d/extra\" mode=\"optional\")\n# include(file=\"/x\")\n",
        );
        assert_eq!(
            r.includes,
            ["/etc/rsyslog.d/*.conf", "/etc/rsyslog.d/extra"]
        );
        let s = syslog_ng_file(
            "@version: 4.3\n@include \"scl.conf\"\n@include \"/etc/syslog-ng/conf.d/*.conf\"\n",
        );
        assert_eq!(s.includes, ["scl.conf", "/etc/syslog-ng/conf.d/*.conf"]);
        assert_eq!(syslog_ng_resolve("scl.conf"), None);
        assert_eq!(
            syslog_ng_resolve("conf.d/*.conf").as_deref(),
            Some("/etc/syslog-ng/conf.d/*.conf")
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "90-remote.conf"));
        assert!(!glob_match("*.conf", "90-remote.conf.dpkg-old"));
        assert!(!glob_match("*.conf", ".hidden.conf"));
        assert!(glob_match("[0-9]?-*.conf", "50-default.conf"));
        assert!(!glob_match("[!0-9]*", "50-default.conf"));
        assert!(glob_match("a[", "a["));
    }

    #[test]
    fn journal_upload() {
        let mut url = None;
        journal_upload_url(&mut url, "[Upload]\nURL=https://logs:19532\n");
        assert_eq!(url.as_deref(), Some("https://logs:19532"));
        journal_upload_url(&mut url, "[Upload]\n# URL=\nURL=\n");
        assert_eq!(url, None, "an empty URL= resets it");
    }
}
