//! Do logs leave the node? rsyslog forwarding rules, syslog-ng network
//! destinations, systemd-journal-upload, netconsole.

/// rsyslog: legacy `*.* @host` / `@@host:514` actions, RainerScript
/// `action(type="omfwd" ...)` / `omrelp`.
pub fn rsyslog_forwards(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(|l| {
            let legacy = l
                .split_whitespace()
                .nth(1)
                .is_some_and(|a| a.starts_with('@') && a.len() > 1);
            let rs = l.contains("omfwd") || l.contains("omrelp");
            legacy || rs
        })
}

/// syslog-ng: a `destination` using `network(`, `syslog(`, `tcp(`, `udp(`.
pub fn syslog_ng_forwards(text: &str) -> bool {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    code.split("destination").skip(1).any(|d| {
        let body = d.split('}').next().unwrap_or("");
        ["network(", "syslog(", "tcp(", "udp(", "tcp6(", "udp6("]
            .iter()
            .any(|k| body.contains(k))
    })
}

/// journal-upload.conf: `[Upload]` `URL=` set.
pub fn journal_upload_url(text: &str) -> bool {
    let mut in_upload = false;
    for l in text.lines().map(str::trim) {
        if l.starts_with('[') {
            in_upload = l == "[Upload]";
        } else if in_upload && !l.starts_with('#') {
            if let Some(v) = l.strip_prefix("URL=") {
                return !v.trim().is_empty();
            }
        }
    }
    false
}

/// `/proc/consoles`: netconsole registers `netcon0` / `netcon_ext0`.
pub fn netconsole_console(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with("netcon"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_rules() {
        assert!(rsyslog_forwards("*.* @@logs.example.org:514\n"));
        assert!(rsyslog_forwards(
            "action(type=\"omfwd\" target=\"10.0.0.9\" port=\"514\" protocol=\"udp\")"
        ));
        assert!(!rsyslog_forwards(
            "#*.* @@remote-host:514\nauth,authpriv.* /var/log/auth.log\n"
        ));
        assert!(syslog_ng_forwards(
            "destination d_net { network(\"10.0.0.9\" port(514)); };"
        ));
        assert!(!syslog_ng_forwards(
            "destination d_file { file(\"/var/log/messages\"); };"
        ));
        assert!(journal_upload_url("[Upload]\nURL=https://logs:19532\n"));
        assert!(!journal_upload_url("[Upload]\n# URL=\n"));
        assert!(netconsole_console(
            "tty0                 -WU (EC p  )    4:1\nnetcon0              -W- (E     )\n"
        ));
    }
}
