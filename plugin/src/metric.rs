//! One output point: what the encoders write. Naming lives in `convert`.

use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Field {
    /// Counters are u64 in the kernel; line protocol without uint support tops out at i64.
    pub fn uint(v: u64) -> Field {
        Field::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
    pub fn flag(v: bool) -> Field {
        Field::Int(i64::from(v))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub tags: BTreeMap<&'static str, String>,
    /// Keys are static names except the kernel's AER counter names.
    pub fields: BTreeMap<Cow<'static, str>, Field>,
    pub time_unix_ns: i64,
}

impl Metric {
    pub fn new(name: &'static str, time_unix_ns: i64) -> Metric {
        Metric {
            name,
            tags: BTreeMap::new(),
            fields: BTreeMap::new(),
            time_unix_ns,
        }
    }

    /// Empty tag values cannot be written; such a tag is left off.
    pub fn tag(&mut self, k: &'static str, v: impl Into<String>) -> &mut Self {
        let v = v.into();
        if !v.is_empty() {
            self.tags.insert(k, v);
        }
        self
    }

    pub fn field(&mut self, k: impl Into<Cow<'static, str>>, v: Field) -> &mut Self {
        // The contract forbids NaN and Inf: such a value is absent, not written.
        if let Field::Float(f) = v {
            if !f.is_finite() {
                return self;
            }
        }
        self.fields.insert(k.into(), v);
        self
    }

    pub fn opt(&mut self, k: &'static str, v: Option<Field>) -> &mut Self {
        if let Some(v) = v {
            self.field(k, v);
        }
        self
    }
}

/// Contract order: by measurement, then tag set.
pub fn sort(metrics: &mut [Metric]) {
    metrics.sort_by(|a, b| {
        a.name
            .cmp(b.name)
            .then_with(|| a.tags.iter().cmp(b.tags.iter()))
    });
}
