//! The review links. The task token is opaque and full of URL-unsafe characters (`+`, `/`,
//! `=`), so it is percent-encoded once here and decoded once by the API; the reference put it in
//! the URL raw and had to turn spaces back into `+`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

/// Everything but RFC 3986 unreserved characters is encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Step Functions task tokens are at most this long.
pub const MAX_TOKEN_LEN: usize = 2048;

/// How a reviewer reaches the review page. Every link opens the same page, which decides
/// nothing until its form is posted; the bulk links only preselect the choice for every object
/// still undecided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Entry {
    /// Decide each object.
    Review,
    /// "Release all": the bulk choice preselected to release.
    ReleaseAll,
    /// "Delete all": the bulk choice preselected to delete.
    DeleteAll,
}

impl Entry {
    /// The API path segment: `/review`, or `/allow` and `/deny` for the bulk links.
    pub fn path_segment(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::ReleaseAll => "allow",
            Self::DeleteAll => "deny",
        }
    }

    /// The entry a request path names (`.../review`, `.../allow` or `.../deny`, stage prefix
    /// allowed).
    pub fn from_path(path: &str) -> Option<Self> {
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        [Self::Review, Self::ReleaseAll, Self::DeleteAll]
            .into_iter()
            .find(|entry| entry.path_segment() == last)
    }
}

/// The link that opens the review page from `entry`.
pub fn link(api_url: &str, entry: Entry, token: &str) -> String {
    format!(
        "{}/{}?token={}",
        api_url.trim_end_matches('/'),
        entry.path_segment(),
        encoded_token(token)
    )
}

/// `token` as a query value: every link and page link carries it encoded once, this way.
pub fn encoded_token(token: &str) -> String {
    utf8_percent_encode(token, UNRESERVED).to_string()
}

/// The `token` parameter of a query string or form body, decoded once (`+` is a space, as in
/// forms; a real token's `+` arrives as `%2B`).
pub fn token_param(encoded: &str) -> Option<String> {
    encoded.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| {
            percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &str = "AAAAKgAAAAIAAAAAAAAAAQ+/abc=def==";

    #[test]
    fn a_token_with_plus_slash_and_equals_survives_the_link() {
        let url = link("https://api.example/Prod/", Entry::ReleaseAll, TOKEN);
        assert_eq!(
            url,
            "https://api.example/Prod/allow?token=AAAAKgAAAAIAAAAAAAAAAQ%2B%2Fabc%3Ddef%3D%3D"
        );
        let query = url.split_once('?').unwrap().1;
        assert_eq!(token_param(query).as_deref(), Some(TOKEN));
    }

    #[test]
    fn entries_come_from_the_last_path_segment() {
        assert_eq!(Entry::from_path("/Prod/review"), Some(Entry::Review));
        assert_eq!(Entry::from_path("/Prod/allow"), Some(Entry::ReleaseAll));
        assert_eq!(Entry::from_path("/deny/"), Some(Entry::DeleteAll));
        assert_eq!(Entry::from_path("/allowed"), None);
        assert_eq!(Entry::from_path("/"), None);
    }

    proptest! {
        #[test]
        fn any_token_round_trips(token in "\\PC{1,300}") {
            let url = link("https://x", Entry::Review, &token);
            let query = url.split_once('?').unwrap().1;
            prop_assert!(!query["token=".len()..].contains(['+', '/', '=', ' ', '&', '#']));
            prop_assert_eq!(token_param(query), Some(token));
        }
    }
}
