//! One output point: what the encoders write. Naming lives in `convert`.

use std::borrow::Cow;

use crate::sorted_map::SortedMap;

/// A field value. Text borrows from the snapshot where it can (`'a`): a
/// batch of thousands of points then copies no string it does not build.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<'a> {
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
}

impl<'a> Field<'a> {
    /// Counters are u64 in the kernel; line protocol without uint support tops out at i64.
    pub fn uint(v: u64) -> Field<'a> {
        Field::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
    pub fn flag(v: bool) -> Field<'a> {
        Field::Int(i64::from(v))
    }
    pub fn str(v: impl Into<Cow<'a, str>>) -> Field<'a> {
        Field::Str(v.into())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric<'a> {
    pub name: &'static str,
    pub tags: SortedMap<&'static str, Cow<'a, str>>,
    /// Keys are static names except the kernel's AER counter names.
    pub fields: SortedMap<Cow<'static, str>, Field<'a>>,
    pub time_unix_ns: i64,
}

impl<'a> Metric<'a> {
    pub fn new(name: &'static str, time_unix_ns: i64) -> Metric<'a> {
        Metric::with_capacity(name, time_unix_ns, 0, 0)
    }

    /// Room for `tags` tags and `fields` fields: a point filled up to them
    /// makes one allocation per map, not one per doubling.
    pub fn with_capacity(
        name: &'static str,
        time_unix_ns: i64,
        tags: usize,
        fields: usize,
    ) -> Metric<'a> {
        Metric {
            name,
            tags: SortedMap::with_capacity(tags),
            fields: SortedMap::with_capacity(fields),
            time_unix_ns,
        }
    }

    /// Empty tag values cannot be written; such a tag is left off.
    pub fn tag(&mut self, k: &'static str, v: impl Into<Cow<'a, str>>) -> &mut Self {
        let v = v.into();
        if !v.is_empty() {
            self.tags.insert(k, v);
        }
        self
    }

    pub fn field(&mut self, k: impl Into<Cow<'static, str>>, v: Field<'a>) -> &mut Self {
        // The contract forbids NaN and Inf: such a value is absent, not written.
        if let Field::Float(f) = v {
            if !f.is_finite() {
                return self;
            }
        }
        self.fields.insert(k.into(), v);
        self
    }

    /// The same point owning its text: for encoders that regroup a whole
    /// batch (Prometheus families) and for tests.
    pub fn to_static(&self) -> Metric<'static> {
        Metric {
            name: self.name,
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (*k, Cow::Owned(v.to_string())))
                .collect(),
            fields: self
                .fields
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Field::Int(i) => Field::Int(*i),
                        Field::Float(f) => Field::Float(*f),
                        Field::Str(s) => Field::Str(Cow::Owned(s.to_string())),
                    };
                    (k.clone(), v)
                })
                .collect(),
            time_unix_ns: self.time_unix_ns,
        }
    }

    pub fn opt(&mut self, k: &'static str, v: Option<Field<'a>>) -> &mut Self {
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
