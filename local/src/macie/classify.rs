//! A minimal stand-in for Macie's classifier: a few managed data identifiers (card numbers with
//! Luhn, US SSNs with keywords, AWS secret keys, private keys), custom data identifiers and allow
//! lists over UTF-8 text. The built-in classifier crate replaces this module.

use std::collections::BTreeMap;

use regex::Regex;
use std::sync::LazyLock;

/// A custom data identifier as the job uses it.
#[derive(Debug, Clone)]
pub struct CustomIdentifier {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub regex: Regex,
    pub keywords: Vec<String>,
    pub ignore_words: Vec<String>,
    pub maximum_match_distance: usize,
    /// (occurrences threshold, severity) ascending.
    pub severity_levels: Vec<(u64, String)>,
}

/// What the classifier found in one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detections {
    /// Managed identifier id -> (category, lines of the occurrences).
    pub managed: BTreeMap<String, (String, Vec<usize>)>,
    /// Custom identifier id -> lines of the occurrences.
    pub custom: BTreeMap<String, Vec<usize>>,
}

impl Detections {
    pub fn is_empty(&self) -> bool {
        self.managed.is_empty() && self.custom.is_empty()
    }
}

/// The managed identifiers this classifier knows, with their categories.
pub const MANAGED: &[(&str, &str)] = &[
    ("AWS_CREDENTIALS", "CREDENTIALS"),
    ("CREDIT_CARD_NUMBER", "FINANCIAL_INFORMATION"),
    ("CREDIT_CARD_NUMBER_(NO_KEYWORD)", "FINANCIAL_INFORMATION"),
    ("OPENSSH_PRIVATE_KEY", "CREDENTIALS"),
    ("PKCS", "CREDENTIALS"),
    ("USA_SOCIAL_SECURITY_NUMBER", "PERSONAL_INFORMATION"),
];

static CARD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d(?:[ -]?\d){12,18}\b").expect("valid"));
static SSN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(\d{3})-(\d{2})-(\d{4})\b").expect("valid"));
static SECRET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Za-z0-9/+]{40}\b").expect("valid"));
static PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN (RSA |EC |ENCRYPTED |OPENSSH )?PRIVATE KEY-----").expect("valid")
});

const CARD_KEYWORDS: &[&str] = &[
    "credit card",
    "card number",
    "card",
    "visa",
    "mastercard",
    "amex",
    "payment",
];
const SSN_KEYWORDS: &[&str] = &["ssn", "social security"];
const SECRET_KEYWORDS: &[&str] = &[
    "aws_secret_access_key",
    "secret access key",
    "aws secret",
    "secret_key",
];
/// Macie requires a keyword within 30 characters of the match.
const KEYWORD_DISTANCE: usize = 30;

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn card_issuer(number: &str) -> bool {
    let prefix = |n: usize| {
        number
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    number.starts_with('4')
        || (51..=55).contains(&prefix(2))
        || (2221..=2720).contains(&prefix(4))
        || matches!(prefix(2), 34 | 37 | 35 | 36 | 38 | 65)
        || prefix(4) == 6011
        || prefix(3) == 300
}

fn near(text: &str, start: usize, end: usize, keywords: &[&str], distance: usize) -> bool {
    let from = text.floor_char_boundary(start.saturating_sub(distance));
    let to = text.ceil_char_boundary((end + distance).min(text.len()));
    let window = text[from..to].to_lowercase();
    keywords.iter().any(|k| window.contains(k))
}

fn allowed(matched: &str, allow: &[Regex], words: &[String]) -> bool {
    allow.iter().any(|r| r.is_match(matched)) || words.iter().any(|w| w == matched)
}

/// Classifies UTF-8 text. `allow` and `words` are the job's allow lists (regexes, literal words).
pub fn classify(
    text: &str,
    managed: bool,
    custom: &[CustomIdentifier],
    allow: &[Regex],
    words: &[String],
) -> Detections {
    let mut found = Detections::default();
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut record = |id: &str, category: &str, offset: usize| {
        found
            .managed
            .entry(id.to_owned())
            .or_insert_with(|| (category.to_owned(), Vec::new()))
            .1
            .push(line_of(offset));
    };
    if managed {
        for m in CARD.find_iter(text) {
            let digits: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
            let number: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
            if (13..=19).contains(&digits.len())
                && luhn(&digits)
                && card_issuer(&number)
                && !allowed(m.as_str(), allow, words)
            {
                let id = if near(text, m.start(), m.end(), CARD_KEYWORDS, KEYWORD_DISTANCE) {
                    "CREDIT_CARD_NUMBER"
                } else {
                    "CREDIT_CARD_NUMBER_(NO_KEYWORD)"
                };
                record(id, "FINANCIAL_INFORMATION", m.start());
            }
        }
        for c in SSN.captures_iter(text) {
            let whole = c.get(0).expect("group 0");
            let area: u32 = c[1].parse().unwrap_or(0);
            let valid = area != 0 && area != 666 && area < 900 && &c[2] != "00" && &c[3] != "0000";
            if valid
                && near(
                    text,
                    whole.start(),
                    whole.end(),
                    SSN_KEYWORDS,
                    KEYWORD_DISTANCE,
                )
                && !allowed(whole.as_str(), allow, words)
            {
                record(
                    "USA_SOCIAL_SECURITY_NUMBER",
                    "PERSONAL_INFORMATION",
                    whole.start(),
                );
            }
        }
        for m in SECRET.find_iter(text) {
            let mixed = m.as_str().chars().any(|c| c.is_ascii_lowercase())
                && m.as_str().chars().any(|c| c.is_ascii_uppercase());
            if mixed
                && near(text, m.start(), m.end(), SECRET_KEYWORDS, KEYWORD_DISTANCE)
                && !allowed(m.as_str(), allow, words)
            {
                record("AWS_CREDENTIALS", "CREDENTIALS", m.start());
            }
        }
        for c in PRIVATE_KEY.captures_iter(text) {
            let id = if c.get(1).is_some_and(|k| k.as_str() == "OPENSSH ") {
                "OPENSSH_PRIVATE_KEY"
            } else {
                "PKCS"
            };
            record(id, "CREDENTIALS", c.get(0).expect("group 0").start());
        }
    }
    for identifier in custom {
        for m in identifier.regex.find_iter(text) {
            if identifier
                .ignore_words
                .iter()
                .any(|w| m.as_str().contains(w.as_str()))
                || allowed(m.as_str(), allow, words)
            {
                continue;
            }
            if !identifier.keywords.is_empty() {
                // A complete keyword must precede the match, ending within the distance of its end.
                let from = text.floor_char_boundary(
                    m.end()
                        .saturating_sub(identifier.maximum_match_distance + 90),
                );
                let before = text[from..m.start()].to_lowercase();
                let close = identifier.keywords.iter().any(|keyword| {
                    before.rfind(&keyword.to_lowercase()).is_some_and(|at| {
                        let keyword_end = from + at + keyword.len();
                        m.end() - keyword_end <= identifier.maximum_match_distance
                    })
                });
                if !close {
                    continue;
                }
            }
            found
                .custom
                .entry(identifier.id.clone())
                .or_default()
                .push(line_of(m.start()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_need_luhn_and_a_keyword_decides_the_identifier() {
        let found = classify(
            "card number: 4111 1111 1111 1111\nnote 4111111111111112\nref 4012888888881881",
            true,
            &[],
            &[],
            &[],
        );
        assert_eq!(found.managed["CREDIT_CARD_NUMBER"].1, vec![1]);
        assert_eq!(found.managed["CREDIT_CARD_NUMBER_(NO_KEYWORD)"].1, vec![3]);
    }

    #[test]
    fn ssns_need_a_valid_range_and_a_keyword() {
        let far = format!(
            "SSN: 123-45-6789, ssn 666-45-6789{}id 234-56-7890",
            " ".repeat(40)
        );
        let found = classify(&far, true, &[], &[], &[]);
        assert_eq!(found.managed["USA_SOCIAL_SECURITY_NUMBER"].1.len(), 1);
    }

    #[test]
    fn allow_lists_remove_matches() {
        let allow = [Regex::new("^4111").unwrap()];
        assert!(classify("card 4111111111111111", true, &[], &allow, &[]).is_empty());
    }

    #[test]
    fn custom_identifiers_respect_keywords_and_distance() {
        let custom = CustomIdentifier {
            id: "c".into(),
            arn: "a".into(),
            name: "part".into(),
            regex: Regex::new(r"P-[A-Z]{2}\d{4}").unwrap(),
            keywords: vec!["part".into()],
            ignore_words: vec!["P-XX0000".into()],
            maximum_match_distance: 10,
            severity_levels: vec![],
        };
        let found = classify(
            "part P-AB1234; far away text here P-CD5678; part P-XX0000",
            false,
            &[custom],
            &[],
            &[],
        );
        assert_eq!(found.custom["c"], vec![1]);
    }
}
