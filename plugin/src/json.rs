//! JSON Lines in Telegraf's JSON serializer shape: one object per point,
//! `{"fields":{...},"name":"...","tags":{...},"timestamp":NANOSECONDS}`, keys sorted.
//! `timestamp` is Unix nanoseconds, as Telegraf's `json_timestamp_units = "1ns"`:
//! kernel events are apart by microseconds (and by their sequence number within
//! one), so whole seconds would merge them.

use serde_json::{Map, Value};

use crate::metric::{Field, Metric};

pub fn write(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        write_metric(&mut out, m);
    }
    out
}

/// One point as one JSON line appended to `out` (nothing for a point without fields).
pub fn write_metric(out: &mut String, m: &Metric) {
    write_metric_except(out, m, &[]);
}

/// `m` without the fields named in `omit` (what the Thinner leaves out).
pub fn write_metric_except(out: &mut String, m: &Metric, omit: &[&str]) {
    {
        let kept = |(k, _): &(&std::borrow::Cow<'static, str>, &Field)| !omit.contains(&k.as_ref());
        if !m.fields.iter().any(|f| kept(&f)) {
            return;
        }
        let mut fields = Map::new();
        for (k, v) in m.fields.iter().filter(kept) {
            let v = match v {
                Field::Int(i) => Value::from(*i),
                Field::Float(f) => {
                    serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
                }
                Field::Str(s) => Value::from(s.as_ref()),
            };
            if !v.is_null() {
                fields.insert(k.to_string(), v);
            }
        }
        let tags: Map<String, Value> = m
            .tags
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::from(v.as_ref())))
            .collect();
        let mut obj = Map::new();
        obj.insert("fields".into(), Value::Object(fields));
        obj.insert("name".into(), Value::from(m.name));
        obj.insert("tags".into(), Value::Object(tags));
        obj.insert("timestamp".into(), Value::from(m.time_unix_ns));
        out.push_str(&Value::Object(obj).to_string());
        out.push('\n');
    }
}
