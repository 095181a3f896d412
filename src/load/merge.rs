//! Overlaying one source tree on another: tables merge key by key, anything
//! else (arrays included) is replaced by the overlay's value.

use super::source::{Node, Value};

/// Lays `overlay` over `base`. Both must be tables for a key-by-key merge;
/// otherwise the overlay replaces the base.
pub(super) fn overlay(base: &mut Node, overlay: &Node) {
    match (&mut base.value, &overlay.value) {
        (Value::Table(base_table), Value::Table(overlay_table)) => {
            for entry in &overlay_table.entries {
                match base_table.get_mut(&entry.key) {
                    Some(existing) => {
                        self::overlay(&mut existing.node, &entry.node);
                        existing.key_origin = entry.key_origin.clone();
                    }
                    None => base_table.entries.push(entry.clone()),
                }
            }
        }
        _ => *base = overlay.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{Table, parse};
    use super::*;

    fn table(node: &Node) -> &Table {
        match &node.value {
            Value::Table(table) => table,
            _ => panic!("not a table"),
        }
    }

    #[test]
    fn tables_merge_and_arrays_replace() {
        let mut base = parse(0, "[a]\nx = 1\nlist = [1, 2]\n[a.inner]\ny = 2\n").unwrap();
        let top = parse(1, "[a]\nlist = [3]\n[a.inner]\nz = 3\n").unwrap();
        overlay(&mut base, &top);
        let a = table(&table(&base).get("a").unwrap().node);
        assert!(matches!(a.get("x").unwrap().node.value, Value::Integer(1)));
        let Value::Array(list) = &a.get("list").unwrap().node.value else {
            panic!()
        };
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].origin.file, 1);
        let inner = table(&a.get("inner").unwrap().node);
        assert_eq!(inner.entries.len(), 2);
    }
}
