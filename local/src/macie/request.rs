//! Reading Macie's JSON requests: string lists and opaque page tokens.

use serde_json::Value;

use super::error::{MacieError, Result};

/// The strings of a JSON array; anything else reads as none.
pub(super) fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// A page of `items` by the request's `maxResults` and opaque `nextToken`.
pub(super) fn paginate<'a, T>(
    items: &'a [T],
    body: &Value,
    default: u64,
) -> Result<(&'a [T], Option<String>)> {
    let size = usize::try_from(body["maxResults"].as_u64().unwrap_or(default).max(1))
        .unwrap_or(usize::MAX);
    let start = match body["nextToken"].as_str() {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| MacieError::validation("nextToken is not valid"))?,
    };
    let end = start.saturating_add(size).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    Ok((&items[start..end], next))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pagination_tokens_are_opaque_and_checked() {
        let items: Vec<u32> = (0..120).collect();
        let (page, next) = paginate(&items, &json!({"maxResults": 50}), 50).unwrap();
        assert_eq!((page.len(), next.as_deref()), (50, Some("page-50")));
        let (page, next) = paginate(
            &items,
            &json!({"maxResults": 50, "nextToken": "page-100"}),
            50,
        )
        .unwrap();
        assert_eq!((page.len(), next), (20, None));
        assert!(paginate(&items, &json!({"nextToken": "junk"}), 50).is_err());
    }
}
