//! A map kept as one sorted `Vec`: what a point's tags and fields are.
//!
//! A point has a few to a few dozen entries, built once and read in order by
//! an encoder. A `BTreeMap` spends a node allocation and pointer chasing on
//! that; a sorted `Vec` is one allocation and a binary search, and iterates in
//! the same (key) order, so every encoder writes the same bytes.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;

#[derive(Clone, PartialEq)]
pub struct SortedMap<K, V> {
    /// Sorted by key, no two keys equal.
    entries: Vec<(K, V)>,
}

/// An entry as `BTreeMap`'s iterators hand it out: key and value by reference.
type Pair<'a, K, V> = (&'a K, &'a V);
pub type Iter<'a, K, V> = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&(K, V)) -> Pair<K, V>>;

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap {
            entries: Vec::new(),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Inserts on this thread that were not appends: the point builders push
    /// in key order, and a test holds them to it (`convert`'s tests).
    pub static SEARCHED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Text keys compared byte by byte in place: they are short names that
/// mostly differ early, where a `memcmp` call costs more than the compare.
fn order<Q: AsRef<str> + ?Sized>(a: &Q, b: &Q) -> Ordering {
    let (a, b) = (a.as_ref().as_bytes(), b.as_ref().as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

impl<K: AsRef<str>, V> SortedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` entries: a point whose size is known takes one allocation.
    pub fn with_capacity(n: usize) -> Self {
        SortedMap {
            entries: Vec::with_capacity(n),
        }
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// Like `BTreeMap::insert`: an equal key's value is replaced and returned.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        // Keys often come in order (a copy of another map): append without a search.
        if self
            .entries
            .last()
            .is_none_or(|(last, _)| order(last, &k).is_lt())
        {
            self.entries.push((k, v));
            return None;
        }
        #[cfg(test)]
        SEARCHED.with(|n| n.set(n.get() + 1));
        match self.entries.binary_search_by(|(e, _)| order(e, &k)) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(i) => {
                self.entries.insert(i, (k, v));
                None
            }
        }
    }

    fn position<Q>(&self, k: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: AsRef<str> + ?Sized,
    {
        self.entries.binary_search_by(|(e, _)| order(e.borrow(), k))
    }

    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: AsRef<str> + ?Sized,
    {
        let i = self.position(k).ok()?;
        Some(&self.entries[i].1)
    }

    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: AsRef<str> + ?Sized,
    {
        self.position(k).is_ok()
    }
}

impl<K, V> SortedMap<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// In key order, as `BTreeMap::iter`.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Keeps the entries for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = Pair<'a, K, V>;
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// As `BTreeMap`'s: of equal keys, the last one's value stays.
impl<K: AsRef<str>, V> FromIterator<(K, V)> for SortedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let items = items.into_iter();
        let mut map = SortedMap::with_capacity(items.size_hint().0);
        for (k, v) in items {
            map.insert(k, v);
        }
        map
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::SortedMap;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn an_equal_key_replaces_the_value() {
        let mut m = SortedMap::new();
        assert_eq!(m.insert("b", 1), None);
        assert_eq!(m.insert("a", 2), None);
        assert_eq!(m.insert("b", 3), Some(1));
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("b"), Some(&3));
        assert!(m.contains_key("a") && !m.contains_key("c"));
        let got: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, [("a", 2), ("b", 3)]);
    }

    #[test]
    fn equality_is_by_content_not_insertion_order() {
        let a: SortedMap<_, _> = [("x", 1), ("y", 2)].into_iter().collect();
        let b: SortedMap<_, _> = [("y", 2), ("x", 1)].into_iter().collect();
        assert_eq!(a, b);
        let c: SortedMap<_, _> = [("y", 2), ("x", 0)].into_iter().collect();
        assert_ne!(a, c);
        assert_eq!(format!("{a:?}"), r#"{"x": 1, "y": 2}"#);
    }

    proptest! {
        /// Whatever the order of inserts, the map holds and iterates what a
        /// BTreeMap would: the encoders' output depends on it.
        #[test]
        fn behaves_like_a_btreemap(ops in prop::collection::vec(("[a-e]{0,2}", any::<u8>()), 0..40)) {
            let mut ours = SortedMap::new();
            let mut theirs = BTreeMap::new();
            for (k, v) in &ops {
                prop_assert_eq!(ours.insert(k.clone(), *v), theirs.insert(k.clone(), *v));
            }
            prop_assert!(ours.iter().eq(theirs.iter()));
            prop_assert_eq!(ours.len(), theirs.len());
            for (k, _) in &ops {
                prop_assert_eq!(ours.get(k.as_str()), theirs.get(k.as_str()));
            }
            let collected: SortedMap<_, _> = ops.iter().cloned().collect();
            prop_assert_eq!(&collected, &ours);
            ours.retain(|_, v| *v % 2 == 0);
            theirs.retain(|_, v| *v % 2 == 0);
            prop_assert!(ours.iter().eq(theirs.iter()));
        }
    }
}
