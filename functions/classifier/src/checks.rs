//! Checksums and range rules that tell a real identifier from a number of the same shape. They
//! come from the public standards (ISO/IEC 7812 for cards, ISO 13616/7064 for IBANs, the SSA's
//! rules for SSNs and ITINs); whether Macie applies exactly these was not verifiable
//! (specs/macie2.md §9.1 `[?]`), so each function says which rule it chose.

use base64::Engine as _;

/// The decimal digits of `text`, ignoring separators.
pub fn digits(text: &str) -> Vec<u8> {
    text.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Luhn mod 10 (ISO/IEC 7812-1).
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    !digits.is_empty() && sum.is_multiple_of(10)
}

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits
        .iter()
        .take(n)
        .fold(0, |acc, &d| acc * 10 + u32::from(d))
}

/// Whether a card number has an issuer prefix and a length that issuer uses: Visa (4, 13/16/19),
/// Mastercard (51–55, 2221–2720; 16), American Express (34, 37; 15), Discover (6011, 644–649,
/// 65; 16–19), Diners (300–305, 36, 38; 14–19), JCB (3528–3589; 16–19), UnionPay (62; 16–19).
/// A Luhn-valid number without a known prefix is not reported: random 16-digit ids pass Luhn
/// one time in ten.
pub fn card_issuer(digits: &[u8]) -> bool {
    let len = digits.len();
    let p = |n| prefix(digits, n);
    match digits.first() {
        Some(4) => matches!(len, 13 | 16 | 19),
        Some(5) => (51..=55).contains(&p(2)) && len == 16,
        Some(2) => (2221..=2720).contains(&p(4)) && len == 16,
        Some(3) => {
            (matches!(p(2), 34 | 37) && len == 15)
                || ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38))
                    && (14..=19).contains(&len)
                || (3528..=3589).contains(&p(4)) && (16..=19).contains(&len)
        }
        Some(6) => {
            (p(4) == 6011 || (644..=649).contains(&p(3)) || p(2) == 65 || p(2) == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// A US SSN `AAA-GG-SSSS`: area not 000, 666 or 900–999, group not 00, serial not 0000. The
/// 900–999 areas are ITINs (see [`itin`]).
pub fn ssn(digits: &[u8]) -> bool {
    digits.len() == 9 && {
        let (area, group, serial) = (
            prefix(digits, 3),
            prefix(&digits[3..], 2),
            prefix(&digits[5..], 4),
        );
        area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
    }
}

/// A US ITIN: `9XX-GG-SSSS` with the group in 50–65, 70–88, 90–92 or 94–99 (IRS ranges).
pub fn itin(digits: &[u8]) -> bool {
    digits.len() == 9 && digits[0] == 9 && {
        let group = prefix(&digits[3..], 2);
        matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
    }
}

/// IBAN lengths by country (ISO 13616 registry, the SEPA and common non-SEPA countries).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VG", 24),
    ("XK", 20),
];

/// An IBAN (spaces allowed): a registered country, that country's length, and ISO 7064
/// mod-97 equal to 1.
pub fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let Some(country) = compact.get(..2).and_then(|c| std::str::from_utf8(c).ok()) else {
        return false;
    };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != length || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for &b in rearranged {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

/// An AWS secret access key: 40 characters of base64 that mix upper case, lower case and digits
/// (a 40-character hex digest or a word does not).
pub fn aws_secret_shape(text: &str) -> bool {
    text.len() == 40
        && text.bytes().any(|b| b.is_ascii_uppercase())
        && text.bytes().any(|b| b.is_ascii_lowercase())
        && text.bytes().any(|b| b.is_ascii_digit())
}

/// A JSON Web Token: its header decodes (base64url) to a JSON object naming an `alg`.
pub fn jwt(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.get("alg").is_some())
}

/// HTTP basic credentials: the base64 decodes to `user:password` in printable text.
pub fn basic_auth(encoded: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .is_some_and(|s| {
            s.split_once(':').is_some_and(|(user, _)| !user.is_empty())
                && !s.chars().any(char::is_control)
        })
}

/// A calendar date that a date of birth can be: month 1–12, day valid for the month, year
/// 1900–2099 (two-digit years accepted).
pub fn plausible_date(year: u32, month: u32, day: u32) -> bool {
    let year_ok = year < 100 || (1900..=2099).contains(&year);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => 29,
        _ => return false,
    };
    year_ok && (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_one_digit_off() {
        assert!(luhn(&digits("4111 1111 1111 1111")));
        assert!(!luhn(&digits("4111 1111 1111 1112")));
        assert!(luhn(&digits("378282246310005")));
        assert!(!luhn(&[]));
    }

    #[test]
    fn issuers_need_their_prefix_and_length() {
        assert!(card_issuer(&digits("4111111111111111")));
        assert!(card_issuer(&digits("5555555555554444")));
        assert!(card_issuer(&digits("2223003122003222")));
        assert!(card_issuer(&digits("378282246310005")));
        assert!(card_issuer(&digits("6011111111111117")));
        assert!(card_issuer(&digits("3530111333300000")));
        assert!(!card_issuer(&digits("1234567812345670")));
        assert!(!card_issuer(&digits("41111111111111"))); // Visa with 14 digits
        assert!(!card_issuer(&digits("5655555555554444")));
    }

    #[test]
    fn ssn_ranges_exclude_what_the_ssa_never_issues() {
        assert!(ssn(&digits("123-45-6789")));
        for invalid in [
            "000-45-6789",
            "666-45-6789",
            "912-45-6789",
            "123-00-6789",
            "123-45-0000",
        ] {
            assert!(!ssn(&digits(invalid)), "{invalid}");
        }
        assert!(itin(&digits("912-70-1234")));
        assert!(!itin(&digits("912-45-1234")));
        assert!(!itin(&digits("123-70-1234")));
    }

    #[test]
    fn ibans_need_country_length_and_mod_97() {
        assert!(iban("GB82WEST12345698765432"));
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(iban("FR1420041010050500013M02606"));
        assert!(!iban("GB83WEST12345698765432"));
        assert!(!iban("GB82WEST1234569876543"));
        assert!(!iban("ZZ82WEST12345698765432"));
    }

    #[test]
    fn secrets_tokens_and_headers_are_checked_by_content() {
        assert!(aws_secret_shape("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        assert!(!aws_secret_shape(
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        ));
        assert!(jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc"));
        assert!(!jwt("eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.abc"));
        assert!(basic_auth("dXNlcjpwYXNzd29yZA=="));
        assert!(!basic_auth("bm9jb2xvbg=="));
    }

    #[test]
    fn dates_must_exist() {
        assert!(plausible_date(1990, 2, 28));
        assert!(!plausible_date(1990, 13, 1));
        assert!(!plausible_date(1990, 4, 31));
        assert!(!plausible_date(1700, 1, 1));
        assert!(plausible_date(90, 1, 1));
    }
}
