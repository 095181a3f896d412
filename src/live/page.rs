//! A page of a Kubernetes LIST, read item by item: each item is handed to a
//! function as soon as it is parsed, and only what that returns is kept, so
//! a page of large objects is never held whole as JSON values (only its
//! text is).

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// What was kept of a page's items, and the token for the next page.
pub(super) struct Page<T> {
    pub items: Vec<T>,
    pub continue_token: Option<String>,
}

/// Parses the text of a LIST response, calling `keep` on each item.
pub(super) fn read<T>(text: &str, keep: impl FnMut(Value) -> T) -> serde_json::Result<Page<T>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let page = PageSeed(keep).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(page)
}

/// The token for the next page, with the items skipped over unread: for a
/// page held as text, to be read later.
pub(super) fn continue_token(text: &str) -> serde_json::Result<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Skimmed {
        #[serde(default)]
        metadata: ListMeta,
    }
    let skimmed: Skimmed = serde_json::from_str(text)?;
    Ok(skimmed.metadata.continue_.filter(|token| !token.is_empty()))
}

struct PageSeed<F>(F);

impl<'de, T, F: FnMut(Value) -> T> DeserializeSeed<'de> for PageSeed<F> {
    type Value = Page<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Page<T>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T, F: FnMut(Value) -> T> Visitor<'de> for PageSeed<F> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes list")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Page<T>, A::Error> {
        let mut page = Page {
            items: Vec::new(),
            continue_token: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metadata" => {
                    page.continue_token = map
                        .next_value::<ListMeta>()?
                        .continue_
                        .filter(|token| !token.is_empty());
                }
                "items" => page.items = map.next_value_seed(ItemsSeed(&mut self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(page)
    }
}

struct ItemsSeed<'f, F>(&'f mut F);

impl<'de, T, F: FnMut(Value) -> T> DeserializeSeed<'de> for ItemsSeed<'_, F> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        // `any`, not `seq`: an empty list may come as `null` (Go's nil slice).
        deserializer.deserialize_any(self)
    }
}

impl<'de, T, F: FnMut(Value) -> T> Visitor<'de> for ItemsSeed<'_, F> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut kept = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            kept.push((self.0)(item));
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_item_is_kept_as_the_function_says_and_the_token_is_read() {
        let text = r#"{"kind":"ConfigMapList","apiVersion":"v1",
            "metadata":{"resourceVersion":"7","continue":"next"},
            "items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]}"#;
        let page = read(text, |item| item["metadata"]["name"].to_string()).unwrap();
        assert_eq!(page.items, ["\"a\"", "\"b\""]);
        assert_eq!(page.continue_token.as_deref(), Some("next"));
        assert_eq!(continue_token(text).unwrap().as_deref(), Some("next"));
    }

    #[test]
    fn the_last_page_has_no_token_and_an_empty_list_is_fine() {
        let text = r#"{"metadata":{"continue":""},"items":[]}"#;
        let page = read(text, |item| item).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.continue_token, None);
        assert_eq!(continue_token(text).unwrap(), None);
        // A null list (Go's nil slice) reads as no items.
        let page = read(r#"{"metadata":{},"items":null}"#, |item| item).unwrap();
        assert!(page.items.is_empty());
    }

    #[test]
    fn what_is_not_a_list_is_an_error() {
        assert!(read("[]", |item| item).is_err());
        assert!(read(r#"{"items":[1]} trailing"#, |item| item).is_err());
        assert!(continue_token(r#"{"items":[1]} trailing"#).is_err());
    }
}
