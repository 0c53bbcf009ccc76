//! The managed data identifiers as one multi-pattern regex pass plus validators.
//!
//! Shapes overlap (a 9-digit number may be an SSN, a bank account, a passport or a licence), so
//! the regex only finds *candidates* by shape, one per span, and a validator decides which
//! identifier, if any, the candidate is: checksum first, then the required keyword, in a fixed
//! order (card, ITIN, SSN, phone, bank account, passport, driver's licence). A candidate is
//! reported as at most one identifier; that is the rule this classifier chose where Macie's
//! behaviour is not published.

use regex_automata::Input;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;

use crate::checks;
use crate::identifier::{KEYWORD_DISTANCE, MANAGED, index};
use crate::keywords::Keywords;

/// One candidate that a validator accepted: the identifier (index into [`MANAGED`]) and the
/// span of the sensitive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub identifier: usize,
    pub start: usize,
    pub end: usize,
}

/// The candidate shapes, in priority order: where two start at the same place, the earlier one
/// wins (leftmost-first).
#[derive(Debug, Clone, Copy)]
enum Shape {
    PemHeader,
    Putty,
    BasicAuth,
    Jwt,
    Stripe,
    AwsKeyId,
    Iban,
    SecurityCode,
    LatLong,
    Date,
    Expiration,
    Number,
    LetterAndDigits,
    AwsSecret,
}

const MONTHS: &str = "(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)";

fn patterns() -> Vec<(Shape, String)> {
    let b = r"(?-u:\b)";
    vec![
        (
            Shape::PemHeader,
            r"-----BEGIN [A-Z ]{0,24}PRIVATE KEY(?: BLOCK)?-----".into(),
        ),
        (Shape::Putty, r"PuTTY-User-Key-File-[0-9]+:".into()),
        (
            Shape::BasicAuth,
            r"(?i:authorization)[ \t]*:[ \t]*(?i:basic)[ \t]+[A-Za-z0-9+/]{4,}={0,2}".into(),
        ),
        (
            Shape::Jwt,
            r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}".into(),
        ),
        (
            Shape::Stripe,
            format!(r"{b}(?:sk|rk)_live_[A-Za-z0-9]{{16,}}{b}"),
        ),
        (
            Shape::AwsKeyId,
            format!(r"{b}(?:AKIA|ASIA)[A-Z2-7]{{16}}{b}"),
        ),
        (
            Shape::Iban,
            format!(r"{b}[A-Z]{{2}}[0-9]{{2}}(?: ?[A-Z0-9]{{4}}){{2,7}}(?: ?[A-Z0-9]{{1,3}})?{b}"),
        ),
        (
            Shape::SecurityCode,
            format!(
                r"{b}(?i:cvv2?|cvc2?|cid|security code|card verification(?: value| code)?)[^0-9\n]{{0,24}}[0-9]{{3,4}}{b}"
            ),
        ),
        (
            Shape::LatLong,
            r"-?[0-9]{1,2}\.[0-9]{3,}, ?-?[0-9]{1,3}\.[0-9]{3,}".into(),
        ),
        (
            Shape::Date,
            format!(
                r"{b}(?:[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|[0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{2,4}}|[0-9]{{1,2}}[.-][0-9]{{1,2}}[.-][0-9]{{4}}|[0-9]{{1,2}} {MONTHS}\.? [0-9]{{4}}|{MONTHS}\.? [0-9]{{1,2}},? [0-9]{{4}}){b}"
            ),
        ),
        (
            Shape::Expiration,
            format!(r"{b}(?:0?[1-9]|1[0-2])/(?:20)?[0-9]{{2}}{b}"),
        ),
        (
            Shape::Number,
            format!(
                r"(?:\+?1[ .-]?)?\([0-9]{{3}}\)[ .-]?[0-9]{{3}}[ .-][0-9]{{4}}{b}|\+[1-9][0-9]{{0,3}}(?:[ .-][0-9]{{2,4}}){{2,4}}{b}|\+[1-9][0-9]{{7,14}}{b}|{b}(?:[0-9]{{4}} [0-9]{{4}} [0-9]{{4}} [0-9]{{4}}(?: [0-9]{{3}})?|[0-9]{{4}}-[0-9]{{4}}-[0-9]{{4}}-[0-9]{{4}}(?:-[0-9]{{3}})?|[0-9]{{4}}[ -][0-9]{{6}}[ -][0-9]{{4,5}}|(?:1[ .-])?[0-9]{{3}}[.-][0-9]{{3}}[.-][0-9]{{4}}|[0-9]{{3}} [0-9]{{3}} [0-9]{{4}}|[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}|[0-9]{{3}} [0-9]{{2}} [0-9]{{4}}|[0-9]{{7,19}}){b}"
            ),
        ),
        (Shape::LetterAndDigits, format!(r"{b}[A-Z][0-9]{{7,12}}{b}")),
        (Shape::AwsSecret, r"[A-Za-z0-9/+]{40,}".into()),
    ]
}

/// The compiled pass and each identifier's keywords.
#[derive(Debug, Clone)]
pub(crate) struct ManagedMatcher {
    regex: Regex,
    shapes: Vec<Shape>,
    keywords: Vec<Keywords>,
}

/// What the validators see of a candidate's surroundings.
pub(crate) struct Surroundings<'t> {
    /// The cell's text.
    pub cell: &'t str,
    /// Offset of the cell in the batch.
    pub cell_start: usize,
    /// Column name or JSON path keys.
    pub context: &'t str,
}

impl ManagedMatcher {
    pub fn new() -> Self {
        let (shapes, sources): (Vec<_>, Vec<_>) = patterns().into_iter().unzip();
        let regex = Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build_many(&sources)
            .expect("managed identifier patterns compile");
        let keywords = MANAGED.iter().map(|m| Keywords::new(m.keywords)).collect();
        Self {
            regex,
            shapes,
            keywords,
        }
    }

    /// The first candidate starting at or after `at`, as (shape index, start, end).
    pub fn find_at(&self, text: &str, at: usize) -> Option<(usize, usize, usize)> {
        let input = Input::new(text.as_bytes()).range(at..);
        self.regex
            .find(input)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
    }

    /// Every candidate in `text`, for tests: each rejected one resumes as the scan does.
    #[cfg(test)]
    pub fn candidates<'t>(
        &'t self,
        text: &'t str,
    ) -> impl Iterator<Item = (usize, usize, usize)> + 't {
        let mut at = 0;
        std::iter::from_fn(move || {
            let found = self.find_at(text, at)?;
            at = self.resume_after_miss(found.0, text, found.1, found.2);
            Some(found)
        })
    }

    /// Where the search goes on after a candidate that was not reported. A keyword-first shape
    /// (a security code) or a greedy one (an IBAN's groups, a run of digit groups) can swallow
    /// the start of a real value that follows, e.g. `cvv 4111 1111 1111 1111` is a card, not a
    /// code: the search resumes at the next word inside the candidate, or for a security code
    /// at its digits. Long base64-like runs resume after their end, which keeps the scan linear.
    pub fn resume_after_miss(&self, shape: usize, text: &str, start: usize, end: usize) -> usize {
        match self.shapes[shape] {
            Shape::SecurityCode => {
                let digits = text.as_bytes()[start..end]
                    .iter()
                    .rev()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                end - digits
            }
            Shape::Iban
            | Shape::Number
            | Shape::LetterAndDigits
            | Shape::Date
            | Shape::Expiration
            | Shape::LatLong => next_word(text.as_bytes(), start, end),
            _ => end,
        }
    }

    /// Whether identifier `id` has a keyword within reach of `start..end` (batch offsets), or
    /// in the cell's context.
    fn keyword(&self, id: usize, around: &Surroundings<'_>, start: usize, end: usize) -> bool {
        let keywords = &self.keywords[id];
        if keywords.is_empty() {
            return true;
        }
        let (start, end) = (start - around.cell_start, end - around.cell_start);
        let cell = around.cell;
        // Windows wide enough to hold a whole keyword whose near end is within reach.
        let reach = KEYWORD_DISTANCE + keywords.longest();
        let from = cell.floor_char_boundary(start.saturating_sub(reach));
        let to = cell.ceil_char_boundary((end + reach).min(cell.len()));
        let before = &cell[from..start];
        let after = &cell[end..to];
        let chars = |s: &str| s.chars().count();
        keywords
            .spans(before)
            .any(|(_, e)| chars(&before[e..]) <= KEYWORD_DISTANCE)
            || keywords
                .spans(after)
                .any(|(s, _)| chars(&after[..s]) <= KEYWORD_DISTANCE)
            || keywords.found_in(around.context)
    }

    /// A hit for identifier `id` at `start..end` if its keyword is within reach.
    fn keyword_hit(
        &self,
        id: &str,
        around: &Surroundings<'_>,
        start: usize,
        end: usize,
    ) -> Option<Hit> {
        let identifier = index(id);
        self.keyword(identifier, around, start, end).then_some(Hit {
            identifier,
            start,
            end,
        })
    }

    /// Decides what the candidate of `shape` at `start..end` (batch offsets) is.
    pub fn validate(
        &self,
        shape: usize,
        text: &str,
        start: usize,
        end: usize,
        around: &Surroundings<'_>,
    ) -> Option<Hit> {
        let value = &text[start..end];
        let hit = |id: &str| {
            Some(Hit {
                identifier: index(id),
                start,
                end,
            })
        };
        let with_keyword = |id: &str| self.keyword_hit(id, around, start, end);
        match self.shapes[shape] {
            Shape::PemHeader => {
                if value.contains("OPENSSH") {
                    hit("OPENSSH_PRIVATE_KEY")
                } else if value.contains("PGP") {
                    hit("PGP_PRIVATE_KEY")
                } else if value.contains("PUBLIC") {
                    None
                } else {
                    hit("PKCS")
                }
            }
            Shape::Putty => hit("PUTTY_PRIVATE_KEY"),
            Shape::BasicAuth => {
                let encoded = value.rsplit([' ', '\t']).next().unwrap_or_default();
                checks::basic_auth(encoded)
                    .then(|| hit("HTTP_BASIC_AUTH_HEADER"))
                    .flatten()
            }
            Shape::Jwt => checks::jwt(value).then(|| hit("JSON_WEB_TOKEN")).flatten(),
            Shape::Stripe => hit("STRIPE_CREDENTIALS"),
            Shape::AwsKeyId => hit("AWS_CREDENTIALS"),
            Shape::Iban => self.iban(text, start, end),
            Shape::SecurityCode => {
                // The keyword is part of the pattern; the value is the trailing digits, unless
                // they begin a longer number (`cvv 4111 1111 ...` is a card).
                let rest = &text.as_bytes()[end..];
                let continues = match rest {
                    [b' ' | b'-', d, ..] | [d, ..] => d.is_ascii_digit(),
                    [] => false,
                };
                if continues {
                    return None;
                }
                let digits = value.bytes().rev().take_while(u8::is_ascii_digit).count();
                Some(Hit {
                    identifier: index("CREDIT_CARD_SECURITY_CODE"),
                    start: end - digits,
                    end,
                })
            }
            Shape::LatLong => with_keyword("LATLONG"),
            Shape::Date => date_parts(value)
                .filter(|&(y, m, d)| checks::plausible_date(y, m, d))
                .and_then(|_| with_keyword("DATE_OF_BIRTH")),
            Shape::Expiration => with_keyword("CREDIT_CARD_EXPIRATION"),
            Shape::Number => self.number(value, start, end, around),
            Shape::LetterAndDigits => {
                if value.len() == 9
                    && let Some(h) = with_keyword("USA_PASSPORT_NUMBER")
                {
                    return Some(h);
                }
                with_keyword("DRIVERS_LICENSE")
            }
            Shape::AwsSecret => checks::aws_secret_shape(value)
                .then(|| with_keyword("AWS_CREDENTIALS"))
                .flatten(),
        }
    }

    /// An IBAN candidate may have swallowed a following group of capitals or digits: try
    /// shorter spans, dropping trailing space-separated groups.
    fn iban(&self, text: &str, start: usize, mut end: usize) -> Option<Hit> {
        loop {
            let value = &text[start..end];
            if checks::iban(value) {
                return Some(Hit {
                    identifier: index("INTERNATIONAL_BANK_ACCOUNT_NUMBER"),
                    start,
                    end,
                });
            }
            end = start + value.rfind(' ')?;
        }
    }

    fn number(
        &self,
        value: &str,
        start: usize,
        end: usize,
        around: &Surroundings<'_>,
    ) -> Option<Hit> {
        let digits = checks::digits(value);
        let plain = value.bytes().all(|b| b.is_ascii_digit());
        let with_keyword = |id: &str| self.keyword_hit(id, around, start, end);
        let phone_like = value.starts_with(['+', '('])
            || (!plain && matches!(digits.len(), 10 | 11))
            || (plain && digits.len() == 10);
        let ssn_like = digits.len() == 9
            && (plain || value.len() == 11 && value.as_bytes()[3] == value.as_bytes()[6]);
        if !value.starts_with(['+', '('])
            && (13..=19).contains(&digits.len())
            && checks::luhn(&digits)
            && checks::card_issuer(&digits)
        {
            return with_keyword("CREDIT_CARD_NUMBER").or_else(|| {
                Some(Hit {
                    identifier: index("CREDIT_CARD_NUMBER_(NO_KEYWORD)"),
                    start,
                    end,
                })
            });
        }
        if ssn_like
            && checks::itin(&digits)
            && let Some(h) = with_keyword("USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER")
        {
            return Some(h);
        }
        if ssn_like
            && checks::ssn(&digits)
            && let Some(h) = with_keyword("USA_SOCIAL_SECURITY_NUMBER")
        {
            return Some(h);
        }
        if phone_like && let Some(h) = with_keyword("PHONE_NUMBER") {
            return Some(h);
        }
        if !plain {
            return None;
        }
        if (9..=17).contains(&digits.len())
            && let Some(h) = with_keyword("BANK_ACCOUNT_NUMBER")
        {
            return Some(h);
        }
        if digits.len() == 9
            && let Some(h) = with_keyword("USA_PASSPORT_NUMBER")
        {
            return Some(h);
        }
        if (7..=13).contains(&digits.len()) {
            return with_keyword("DRIVERS_LICENSE");
        }
        None
    }
}

/// The start of the first word after `start` and before `end`, else `end`.
fn next_word(bytes: &[u8], start: usize, end: usize) -> usize {
    (start + 1..end)
        .find(|&i| bytes[i].is_ascii_alphanumeric() && !bytes[i - 1].is_ascii_alphanumeric())
        .unwrap_or(end)
}

/// (year, month, day) of a date candidate; US order (month first) for slashed dates, day first
/// for dotted ones, and either order when only one is a valid month.
fn date_parts(value: &str) -> Option<(u32, u32, u32)> {
    let numbers: Vec<u32> = value
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let month_name = value
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|s| s.len() >= 3)
        .and_then(month_number);
    match (numbers.as_slice(), month_name) {
        ([day, year], Some(month)) => Some((*year, month, *day)),
        ([y, m, d], None) if value.as_bytes().get(4) == Some(&b'-') => Some((*y, *m, *d)),
        ([a, b, y], None) if value.contains('/') => {
            if *a <= 12 {
                Some((*y, *a, *b))
            } else {
                Some((*y, *b, *a))
            }
        }
        ([d, m, y], None) => Some((*y, *m, *d)),
        _ => None,
    }
}

fn month_number(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| lower.starts_with(m))
    .map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identifiers found in `text` (one plain-text cell, no context).
    pub(crate) fn found(text: &str) -> Vec<&'static str> {
        found_with_context(text, "")
    }

    fn found_with_context(text: &str, context: &str) -> Vec<&'static str> {
        let matcher = ManagedMatcher::new();
        let around = Surroundings {
            cell: text,
            cell_start: 0,
            context,
        };
        matcher
            .candidates(text)
            .filter_map(|(shape, start, end)| matcher.validate(shape, text, start, end, &around))
            .map(|hit| MANAGED[hit.identifier].id)
            .collect()
    }

    #[test]
    fn cards_need_luhn_and_an_issuer_and_the_keyword_picks_the_identifier() {
        assert_eq!(
            found("card number: 4111 1111 1111 1111"),
            ["CREDIT_CARD_NUMBER"]
        );
        assert_eq!(
            found("ref 4012888888881881"),
            ["CREDIT_CARD_NUMBER_(NO_KEYWORD)"]
        );
        assert_eq!(found("Visa 4111-1111-1111-1111 ok"), ["CREDIT_CARD_NUMBER"]);
        assert_eq!(found("amex 3782 822463 10005"), ["CREDIT_CARD_NUMBER"]);
        assert!(found("card number: 4111 1111 1111 1112").is_empty());
        assert!(found("card number: 1234 5678 1234 5670").is_empty());
    }

    #[test]
    fn a_keyword_far_away_does_not_count() {
        let far = format!("credit card{}4111111111111111", " ".repeat(31));
        assert_eq!(found(&far), ["CREDIT_CARD_NUMBER_(NO_KEYWORD)"]);
        let near = format!("credit card{}4111111111111111", " ".repeat(30));
        assert_eq!(found(&near), ["CREDIT_CARD_NUMBER"]);
    }

    #[test]
    fn ssns_need_a_valid_range_and_a_keyword() {
        assert_eq!(found("SSN: 123-45-6789"), ["USA_SOCIAL_SECURITY_NUMBER"]);
        assert_eq!(
            found("social security 123 45 6789"),
            ["USA_SOCIAL_SECURITY_NUMBER"]
        );
        for near_miss in [
            "ssn 000-12-3456",
            "ssn 666-12-3456",
            "ssn 912-12-3456",
            "ssn 123-00-4567",
            "ssn 123-45-0000",
        ] {
            assert!(found(near_miss).is_empty(), "{near_miss}");
        }
        assert!(found("order 123-45-6789").is_empty());
        assert_eq!(
            found_with_context("123-45-6789", "customer ssn"),
            ["USA_SOCIAL_SECURITY_NUMBER"]
        );
        assert_eq!(
            found("ITIN 912-78-1234"),
            ["USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER"]
        );
    }

    #[test]
    fn aws_credentials_need_their_shape() {
        assert_eq!(found("key AKIAIOSFODNN7EXAMPLE"), ["AWS_CREDENTIALS"]);
        assert_eq!(found("ASIAY34FZKBOKMUTVV7A"), ["AWS_CREDENTIALS"]);
        assert!(found("ABCDIOSFODNN7EXAMPLE").is_empty());
        assert!(found("AKIAIOSFODNN7EXAMPLE1").is_empty());
        assert_eq!(
            found("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ["AWS_CREDENTIALS"]
        );
        assert!(found("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").is_empty());
        assert!(found("secret: da39a3ee5e6b4b0d3255bfef95601890afd80709").is_empty());
    }

    #[test]
    fn private_keys_tokens_and_headers() {
        assert_eq!(found("-----BEGIN RSA PRIVATE KEY-----\nMIIE"), ["PKCS"]);
        assert_eq!(found("-----BEGIN PRIVATE KEY-----"), ["PKCS"]);
        assert_eq!(
            found("-----BEGIN OPENSSH PRIVATE KEY-----"),
            ["OPENSSH_PRIVATE_KEY"]
        );
        assert_eq!(
            found("-----BEGIN PGP PRIVATE KEY BLOCK-----"),
            ["PGP_PRIVATE_KEY"]
        );
        assert!(found("-----BEGIN PUBLIC KEY-----").is_empty());
        assert_eq!(
            found("PuTTY-User-Key-File-3: ssh-ed25519"),
            ["PUTTY_PRIVATE_KEY"]
        );
        assert_eq!(
            found("Authorization: Basic dXNlcjpwYXNzd29yZA=="),
            ["HTTP_BASIC_AUTH_HEADER"]
        );
        assert_eq!(
            found("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU"),
            ["JSON_WEB_TOKEN"]
        );
        assert_eq!(
            found("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            ["STRIPE_CREDENTIALS"]
        );
        assert!(found("sk_test_4eC39HqLyjWDarjtT1zdp7dc").is_empty());
    }

    #[test]
    fn ibans_and_bank_accounts() {
        assert_eq!(
            found("IBAN GB82 WEST 1234 5698 7654 32 paid"),
            ["INTERNATIONAL_BANK_ACCOUNT_NUMBER"]
        );
        assert_eq!(
            found("DE89370400440532013000"),
            ["INTERNATIONAL_BANK_ACCOUNT_NUMBER"]
        );
        assert!(found("GB83WEST12345698765432").is_empty());
        assert_eq!(found("bank account: 000123456789"), ["BANK_ACCOUNT_NUMBER"]);
        let far = format!("bank account{}000123456789", " ".repeat(40));
        assert!(found(&far).is_empty());
        assert!(found("bank account: 0001 2345 6789").is_empty());
    }

    #[test]
    fn card_details_need_their_keywords() {
        assert_eq!(found("exp 09/27"), ["CREDIT_CARD_EXPIRATION"]);
        assert!(found("ratio 09/27").is_empty());
        assert_eq!(found("CVV: 123"), ["CREDIT_CARD_SECURITY_CODE"]);
        // A security-code keyword before a card does not hide the card.
        assert_eq!(
            found("cvv 4111 1111 1111 1111"),
            ["CREDIT_CARD_NUMBER_(NO_KEYWORD)"]
        );
        // Nor does an IBAN whose groups run on into one.
        assert_eq!(
            found("IBAN BE68539007547034 4111 1111 1111 1111"),
            [
                "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
                "CREDIT_CARD_NUMBER_(NO_KEYWORD)"
            ]
        );
        assert!(found("room 123").is_empty());
    }

    #[test]
    fn personal_identifiers_need_keywords() {
        assert_eq!(found("DOB: 1990-04-12"), ["DATE_OF_BIRTH"]);
        assert_eq!(found("born on 12 March 1985"), ["DATE_OF_BIRTH"]);
        assert_eq!(found("date of birth 04/12/1990"), ["DATE_OF_BIRTH"]);
        assert!(found("DOB: 1990-13-12").is_empty());
        assert!(found("shipped 1990-04-12").is_empty());
        assert_eq!(found("phone: (206) 555-0100"), ["PHONE_NUMBER"]);
        assert_eq!(found("mobile +44 20 7946 0958"), ["PHONE_NUMBER"]);
        assert_eq!(found("tel 206-555-0100"), ["PHONE_NUMBER"]);
        assert!(found("hotel 206-555-0100").is_empty());
        assert_eq!(found("passport no. 912345678"), ["USA_PASSPORT_NUMBER"]);
        assert_eq!(found("passport C03005988"), ["USA_PASSPORT_NUMBER"]);
        assert_eq!(found("driver's license D1234567"), ["DRIVERS_LICENSE"]);
        assert!(found("invoice D1234567").is_empty());
        assert_eq!(found("gps 47.6062, -122.3321"), ["LATLONG"]);
        assert!(found("ratio 47.6062, -122.3321").is_empty());
    }
}
