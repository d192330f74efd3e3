//! The bounded maps the server keeps per tenant in memory (opened secrets, redaction contexts).

use std::collections::HashMap;
use std::hash::Hash;

/// Inserts `key`; when the map already holds `cap` other keys, one of them is dropped first, so
/// the map never grows past `cap`.
pub(crate) fn insert_bounded<K: Eq + Hash + Clone, V>(
    map: &mut HashMap<K, V>,
    cap: usize,
    key: K,
    value: V,
) {
    if map.len() >= cap
        && !map.contains_key(&key)
        && let Some(other) = map.keys().next().cloned()
    {
        map.remove(&other);
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_stays_within_its_bound_and_a_known_key_evicts_nothing() {
        let mut map = HashMap::new();
        insert_bounded(&mut map, 2, "a", 1);
        insert_bounded(&mut map, 2, "b", 2);
        insert_bounded(&mut map, 2, "b", 3);
        assert_eq!(map.len(), 2);
        assert_eq!(map["b"], 3);
        insert_bounded(&mut map, 2, "c", 4);
        assert_eq!(map.len(), 2);
        assert_eq!(map["c"], 4);
    }
}
