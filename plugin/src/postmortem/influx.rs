//! InfluxQL over HTTP: InfluxDB 1.x `/query`, and 2.x through its
//! v1-compatible `/query` (a DBRP mapping names the bucket as a database).
//! Several statements go in one request; times come back as epoch ns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub enum Auth {
    None,
    /// 1.x users; 2.x accepts a user name with the token as password too.
    Basic {
        user: String,
        password: String,
    },
    /// 2.x API token: `Authorization: Token T`.
    Token(String),
}

pub struct Client {
    agent: ureq::Agent,
    url: String,
    db: String,
    auth: Auth,
    /// Requests made and rows read: what the investigation cost the server.
    pub requests: std::cell::Cell<usize>,
    pub rows: std::cell::Cell<usize>,
}

/// One series of one statement's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<Value>>,
}

impl Series {
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    pub fn tag(&self, name: &str) -> &str {
        self.tags.get(name).map_or("", String::as_str)
    }
    /// One column of every row, for answers without a time (SHOW ...).
    pub fn rows_untimed(&self, col: &str) -> Vec<String> {
        let Some(i) = self.col(col) else {
            return Vec::new();
        };
        self.values
            .iter()
            .filter_map(|v| v.get(i)?.as_str().map(str::to_string))
            .collect()
    }
    /// Rows as (time ns, row); rows without a numeric time are skipped.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        let t = self.col("time");
        self.values.iter().filter_map(move |v| {
            let time = v.get(t?)?.as_i64()?;
            Some(Row { s: self, time, v })
        })
    }
}

#[derive(Clone, Copy)]
pub struct Row<'a> {
    s: &'a Series,
    pub time: i64,
    v: &'a [Value],
}

impl Row<'_> {
    pub fn get(&self, col: &str) -> Option<&Value> {
        self.v.get(self.s.col(col)?).filter(|v| !v.is_null())
    }
    pub fn f64(&self, col: &str) -> Option<f64> {
        self.get(col)?.as_f64()
    }
    pub fn i64(&self, col: &str) -> Option<i64> {
        let v = self.get(col)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64))
    }
    pub fn str(&self, col: &str) -> Option<&str> {
        self.get(col)?.as_str()
    }
}

/// Statement results in statement order.
pub type Results = Vec<Vec<Series>>;

impl Client {
    pub fn new(url: &str, db: &str, auth: Auth, ca_pem: Option<&[u8]>) -> Result<Self, String> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(pem) = ca_pem {
            let certs: Vec<_> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err("--ca-cert: no PEM certificate in the file".into());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build();
        Ok(Client {
            agent: config.into(),
            url: url.trim_end_matches('/').to_string(),
            db: db.to_string(),
            auth,
            requests: std::cell::Cell::new(0),
            rows: std::cell::Cell::new(0),
        })
    }

    /// Runs `statements` (joined with `;`) in one request. A failed statement
    /// fails the whole call: every query here is one the post-mortem needs.
    pub fn query(&self, statements: &[String]) -> Result<Results, String> {
        let q = statements.join(";\n");
        let mut req = self.agent.post(format!("{}/query", self.url));
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.header(
                "Authorization",
                format!("Basic {}", base64(format!("{user}:{password}").as_bytes())),
            ),
            Auth::Token(t) => req.header("Authorization", format!("Token {t}")),
        };
        let form = [("db", self.db.as_str()), ("q", q.as_str()), ("epoch", "ns")];
        let mut resp = req
            .send_form(form)
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("{}: reading the answer: {e}", self.url))?;
        let results = parse_results(status, &body, statements.len())?;
        self.requests.set(self.requests.get() + 1);
        let rows: usize = results.iter().flatten().map(|s| s.values.len()).sum();
        self.rows.set(self.rows.get() + rows);
        Ok(results)
    }
}

/// Decodes InfluxDB's `{"results":[{"statement_id":0,"series":[...]}]}`.
pub fn parse_results(status: u16, body: &str, n: usize) -> Result<Results, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| match status {
        401 | 403 => {
            format!("HTTP {status}: authentication failed (check --user/--password or --token)")
        }
        404 => format!("HTTP {status}: no /query endpoint here (is --url an InfluxDB?)"),
        _ => format!("HTTP {status}: not an InfluxDB answer: {}", snippet(body)),
    })?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        if matches!(status, 401 | 403) {
            return Err(format!(
                "HTTP {status}: {e}: authentication failed (check --user/--password or --token)"
            ));
        }
        return Err(format!("HTTP {status}: {e}"));
    }
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", snippet(body)));
    }
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or("answer without results")?;
    let mut out = vec![Vec::new(); n];
    for r in results {
        let id = r.get("statement_id").and_then(Value::as_u64).unwrap_or(0) as usize;
        if let Some(e) = r.get("error").and_then(Value::as_str) {
            return Err(e.to_string());
        }
        let series = r.get("series").and_then(Value::as_array);
        if let (Some(slot), Some(series)) = (out.get_mut(id), series) {
            *slot = series.iter().map(parse_series).collect();
        }
    }
    Ok(out)
}

fn parse_series(s: &Value) -> Series {
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|c| c.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    Series {
        name: s
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        tags: s
            .get("tags")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        columns: strs(s.get("columns")),
        values: s
            .get("values")
            .and_then(Value::as_array)
            .map(|rows| {
                rows.iter()
                    .map(|r| r.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn snippet(body: &str) -> String {
    body.chars()
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An InfluxQL string literal: `'it''s'` is not InfluxQL; a backslash escape is.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"admin:s3cret"), "YWRtaW46czNjcmV0");
    }

    #[test]
    fn results_and_errors() {
        let body = r#"{"results":[{"statement_id":0,"series":[{"name":"vigil","tags":{"host":"pve1"},"columns":["time","uptime_s","boot_id"],"values":[[1770652490000000000,202913,"a"],[1770652500000000000,null,"a"]]}]},{"statement_id":1}]}"#;
        let r = parse_results(200, body, 2).expect("results");
        assert_eq!(r.len(), 2);
        let s = &r[0][0];
        assert_eq!(s.tag("host"), "pve1");
        let rows: Vec<_> = s.rows().collect();
        assert_eq!(rows[0].time, 1_770_652_490_000_000_000);
        assert_eq!(rows[0].i64("uptime_s"), Some(202_913));
        assert_eq!(rows[1].f64("uptime_s"), None);
        assert!(r[1].is_empty());
        let e = parse_results(
            200,
            r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#,
            1,
        );
        assert_eq!(e, Err("database not found: x".into()));
        assert!(parse_results(401, r#"{"error":"authorization failed"}"#, 1)
            .expect_err("an error")
            .contains("authorization failed"));
        assert!(parse_results(502, "<html>bad gateway</html>", 1)
            .expect_err("an error")
            .contains("502"));
        assert_eq!(quote("it's"), r"'it\'s'");
    }
}
