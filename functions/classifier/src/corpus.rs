//! A labelled corpus: deterministic (seeded) documents in text, CSV and JSON Lines with known
//! planted sensitive values, near-misses that must not be reported (Luhn-invalid cards, SSNs in
//! never-issued ranges, IBANs with a wrong checksum, key-id look-alikes, keyword-bound values
//! with the keyword out of reach), and neutral filler. The accuracy bench compares the
//! classifier's counts with the labels; the throughput and memory benches use it as input.

use std::collections::BTreeMap;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// One generated document and what is planted in it: identifier (a managed id, or a custom
/// identifier's name from [`example_custom_identifiers`]) -> occurrences.
#[derive(Debug, Clone)]
pub struct Document {
    pub name: String,
    pub body: Vec<u8>,
    pub planted: BTreeMap<&'static str, u64>,
    /// Near-misses and look-alikes planted, none of which may be reported.
    pub decoys: u64,
}

/// The custom data identifiers the corpus plants values for (an internal part number, the
/// Brazilian CPF, the French SIRET), in CreateCustomDataIdentifier's JSON shape; the same file
/// is the `scan --custom-identifiers` example.
pub const EXAMPLE_CUSTOM_IDENTIFIERS: &str = include_str!("../examples/custom-identifiers.json");

/// [`EXAMPLE_CUSTOM_IDENTIFIERS`], compiled.
pub fn example_custom_identifiers() -> Vec<crate::CustomIdentifier> {
    let definitions: Vec<crate::CustomDefinition> =
        serde_json::from_str(EXAMPLE_CUSTOM_IDENTIFIERS).expect("the example parses");
    definitions
        .into_iter()
        .map(|d| crate::CustomIdentifier::new(d).expect("the example is valid"))
        .collect()
}

/// The document formats the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Csv,
    JsonLines,
}

const WORDS: &[&str] = &[
    "the",
    "order",
    "was",
    "shipped",
    "to",
    "warehouse",
    "north",
    "quarterly",
    "report",
    "shows",
    "growth",
    "in",
    "region",
    "team",
    "meeting",
    "notes",
    "about",
    "the",
    "new",
    "product",
    "launch",
    "inventory",
    "levels",
    "remain",
    "stable",
    "after",
    "review",
    "of",
    "supplier",
    "contracts",
    "and",
    "delivery",
    "schedules",
    "for",
    "next",
    "season",
    "customer",
    "feedback",
    "was",
    "positive",
    "overall",
    "with",
    "minor",
    "issues",
    "reported",
    "by",
    "users",
];

const NAMES: &[&str] = &[
    "Jane Doe",
    "John Roe",
    "Ana Silva",
    "Li Wei",
    "Omar Haddad",
    "Eva Novak",
    "Raj Patel",
];

/// A seeded generator: the same seed gives the same documents.
pub struct Generator {
    rng: Xoshiro256PlusPlus,
    serial: u64,
}

/// A planted value: its text, and the identifier it must be reported as (None for a
/// near-miss that must not be reported).
struct Value {
    text: String,
    label: Option<&'static str>,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            serial: 0,
        }
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect()
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    /// A Luhn-valid Visa or Mastercard number; `valid` false changes the check digit.
    fn card(&mut self, valid: bool) -> String {
        let prefix = if self.rng.random_bool(0.5) { "4" } else { "5" };
        let mut number = format!(
            "{prefix}{}",
            if prefix == "5" {
                self.rng.random_range(1..6u8).to_string()
            } else {
                String::new()
            }
        );
        number.push_str(&self.digits(15 - number.len()));
        let digits = crate::checks::digits(&number);
        let check = (0..10u8)
            .find(|c| {
                let mut all = digits.clone();
                all.push(*c);
                crate::checks::luhn(&all)
            })
            .expect("one check digit fits");
        let check = if valid { check } else { (check + 1) % 10 };
        number.push(char::from(b'0' + check));
        if self.rng.random_bool(0.5) {
            number
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).expect("ascii"))
                .collect::<Vec<_>>()
                .join(if self.rng.random_bool(0.5) { " " } else { "-" })
        } else {
            number
        }
    }

    fn ssn(&mut self, valid: bool) -> String {
        let area = if valid {
            loop {
                let a = self.rng.random_range(1..900u32);
                if a != 666 {
                    break a;
                }
            }
        } else {
            *[0u32, 666, 900 + self.rng.random_range(0..100u32)]
                .get(self.rng.random_range(0..3usize))
                .expect("in range")
        };
        format!(
            "{area:03}-{:02}-{:04}",
            self.rng.random_range(1..100u32),
            self.rng.random_range(1..10000u32)
        )
    }

    fn iban(&mut self, valid: bool) -> String {
        let bban = format!("WEST{}", self.digits(14));
        let check = (2..=98u32)
            .find(|c| crate::checks::iban(&format!("GB{c:02}{bban}")))
            .expect("a check pair fits");
        let check = if valid {
            check
        } else if check == 98 {
            2
        } else {
            check + 1
        };
        format!("GB{check:02}{bban}")
    }

    fn key_id(&mut self, valid: bool) -> String {
        const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let body: String = (0..16)
            .map(|_| char::from(BASE32[self.rng.random_range(0..32usize)]))
            .collect();
        format!("{}{body}", if valid { "AKIA" } else { "ABCD" })
    }

    fn secret(&mut self) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+";
        loop {
            let s: String = (0..40)
                .map(|_| char::from(B64[self.rng.random_range(0..64usize)]))
                .collect();
            if crate::checks::aws_secret_shape(&s) {
                return s;
            }
        }
    }

    fn alphanumeric(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| char::from(CHARS[self.rng.random_range(0..CHARS.len())]))
            .collect()
    }

    fn part_number(&mut self) -> String {
        let letter = |g: &mut Self| char::from(b'A' + g.rng.random_range(0..23u8));
        format!("P-{}{}{}", letter(self), letter(self), self.digits(4))
    }

    fn filler(&mut self, words: usize) -> String {
        (0..words)
            .map(|_| self.pick(WORDS))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A sentence carrying one planted value or near-miss.
    fn sentence(&mut self) -> Value {
        // Filler longer than Macie's 30-character keyword reach.
        let mut far = self.filler(6);
        while far.len() <= 36 {
            far.push(' ');
            far.push_str(self.pick(WORDS));
        }
        let (text, label) = match self.rng.random_range(0..35u32) {
            28 => (
                "-----BEGIN OPENSSH PRIVATE KEY-----".into(),
                Some("OPENSSH_PRIVATE_KEY"),
            ),
            29 => (
                format!("sk_live_{}", self.alphanumeric(24)),
                Some("STRIPE_CREDENTIALS"),
            ),
            30 => (format!("sk_test_{}", self.alphanumeric(24)), None),
            31 => (
                format!(
                    "ITIN 9{}-{}-{}",
                    self.digits(2),
                    self.rng.random_range(70..89u32),
                    self.digits(4)
                ),
                Some("USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER"),
            ),
            32 => (
                format!(
                    "driver's license {}{}",
                    char::from(b'A' + self.rng.random_range(0..26u8)),
                    self.digits(7)
                ),
                Some("DRIVERS_LICENSE"),
            ),
            33 => (
                format!(
                    "gps {}.{}, -{}.{}",
                    self.rng.random_range(10..60u32),
                    self.digits(5),
                    self.rng.random_range(10..150u32),
                    self.digits(5)
                ),
                Some("LATLONG"),
            ),
            34 => (
                format!(
                    "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI{}In0.{}",
                    self.alphanumeric(8),
                    self.alphanumeric(20)
                ),
                Some("JSON_WEB_TOKEN"),
            ),
            22 => (format!("part {}", self.part_number()), Some("part number")),
            23 => (format!("part {far} {}", self.part_number()), None),
            24 => ("part P-XX0000".into(), None),
            25 => (
                format!(
                    "CPF {}.{}.{}-{}",
                    self.digits(3),
                    self.digits(3),
                    self.digits(3),
                    self.digits(2)
                ),
                Some("Brazil CPF"),
            ),
            26 => (
                format!(
                    "SIRET {} {} {} {}",
                    self.digits(3),
                    self.digits(3),
                    self.digits(3),
                    self.digits(5)
                ),
                Some("France SIRET"),
            ),
            27 => (
                format!(
                    "tracking {}.{}.{}-{}",
                    self.digits(3),
                    self.digits(3),
                    self.digits(3),
                    self.digits(2)
                ),
                None,
            ),
            0 => (
                format!("card number: {}", self.card(true)),
                Some("CREDIT_CARD_NUMBER"),
            ),
            1 => (
                format!("reference {}", self.card(true)),
                Some("CREDIT_CARD_NUMBER_(NO_KEYWORD)"),
            ),
            2 => (format!("card number: {}", self.card(false)), None),
            3 => (
                format!("SSN: {}", self.ssn(true)),
                Some("USA_SOCIAL_SECURITY_NUMBER"),
            ),
            4 => (format!("ssn {}", self.ssn(false)), None),
            5 => (format!("order id {}", self.ssn(true)), None),
            6 => (
                format!("access key {}", self.key_id(true)),
                Some("AWS_CREDENTIALS"),
            ),
            7 => (format!("batch {}", self.key_id(false)), None),
            8 => (
                format!("aws_secret_access_key = {}", self.secret()),
                Some("AWS_CREDENTIALS"),
            ),
            9 => ("-----BEGIN RSA PRIVATE KEY-----".into(), Some("PKCS")),
            10 => (
                format!("IBAN {}", self.iban(true)),
                Some("INTERNATIONAL_BANK_ACCOUNT_NUMBER"),
            ),
            11 => (format!("IBAN {}", self.iban(false)), None),
            12 => (
                format!("bank account: {}", self.digits(12)),
                Some("BANK_ACCOUNT_NUMBER"),
            ),
            13 => (format!("bank account {far} {}", self.digits(12)), None),
            14 => (
                format!(
                    "phone: ({}) 555-{}",
                    self.rng.random_range(201..990u32),
                    self.digits(4)
                ),
                Some("PHONE_NUMBER"),
            ),
            15 => (
                format!(
                    "date of birth {}-{:02}-{:02}",
                    self.rng.random_range(1940..2005u32),
                    self.rng.random_range(1..13u32),
                    self.rng.random_range(1..29u32)
                ),
                Some("DATE_OF_BIRTH"),
            ),
            16 => (
                format!(
                    "shipped {}-{:02}-{:02}",
                    self.rng.random_range(1990..2030u32),
                    self.rng.random_range(1..13u32),
                    self.rng.random_range(1..29u32)
                ),
                None,
            ),
            17 => (
                format!("passport {}", self.digits(9)),
                Some("USA_PASSPORT_NUMBER"),
            ),
            18 => (
                format!(
                    "exp {:02}/{}",
                    self.rng.random_range(1..13u32),
                    self.rng.random_range(26..35u32)
                ),
                Some("CREDIT_CARD_EXPIRATION"),
            ),
            19 => (
                format!("cvv {}", self.digits(3)),
                Some("CREDIT_CARD_SECURITY_CODE"),
            ),
            20 => (
                format!("sha1 {}", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                None,
            ),
            _ => (
                format!(
                    "{} units at {}.{:02}",
                    self.rng.random_range(1..500u32),
                    self.rng.random_range(1..999u32),
                    self.rng.random_range(0..100u32)
                ),
                None,
            ),
        };
        Value { text, label }
    }

    /// A document of roughly `size` bytes; `sensitive` is the share of lines carrying a value.
    pub fn document(&mut self, kind: Kind, size: usize, sensitive: f64) -> Document {
        self.serial += 1;
        let mut planted = BTreeMap::new();
        let mut body = String::with_capacity(size + 256);
        let name = match kind {
            Kind::Text => format!("doc-{}.txt", self.serial),
            Kind::Csv => format!("table-{}.csv", self.serial),
            Kind::JsonLines => format!("events-{}.jsonl", self.serial),
        };
        if kind == Kind::Csv {
            body.push_str("id,name,card number,ssn,notes\n");
        }
        let mut row = 0u64;
        let mut decoys = 0u64;
        while body.len() < size {
            row += 1;
            let value = self.rng.random_bool(sensitive).then(|| self.sentence());
            let words = self.rng.random_range(4..14);
            let mut filler = self.filler(words);
            // Over 30 characters, so no keyword on one line reaches the previous line's value
            // (Macie's reach spans line breaks in text): the labels stay unambiguous.
            while filler.len() <= 31 {
                filler.push(' ');
                filler.push_str(self.pick(WORDS));
            }
            match value.as_ref().map(|v| v.label) {
                Some(Some(label)) => *planted.entry(label).or_insert(0) += 1,
                Some(None) => decoys += 1,
                None => {}
            }
            let note = value.map_or(filler.clone(), |v| format!("{filler} {}", v.text));
            match kind {
                Kind::Text => {
                    body.push_str(&note);
                    body.push('\n');
                }
                Kind::Csv => {
                    // The card and ssn columns hold neutral codes: their header keywords must
                    // not make a filler value sensitive.
                    let name = self.pick(NAMES);
                    body.push_str(&format!(
                        "{row},{name},n/a,none,\"{}\"\n",
                        note.replace('"', "'")
                    ));
                }
                Kind::JsonLines => {
                    let event =
                        serde_json::json!({"id": row, "type": "note", "body": {"text": note}});
                    body.push_str(&event.to_string());
                    body.push('\n');
                }
            }
        }
        Document {
            name,
            body: body.into_bytes(),
            planted,
            decoys,
        }
    }

    /// A mix of the three kinds, `count` documents of about `size` bytes each.
    pub fn mixed(&mut self, count: usize, size: usize, sensitive: f64) -> Vec<Document> {
        (0..count)
            .map(|i| {
                let kind = [Kind::Text, Kind::Csv, Kind::JsonLines][i % 3];
                self.document(kind, size, sensitive)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_corpus() {
        let a = Generator::new(7).mixed(3, 2000, 0.3);
        let b = Generator::new(7).mixed(3, 2000, 0.3);
        let c = Generator::new(8).mixed(3, 2000, 0.3);
        assert_eq!(
            a.iter().map(|d| &d.body).collect::<Vec<_>>(),
            b.iter().map(|d| &d.body).collect::<Vec<_>>()
        );
        assert_ne!(a[0].body, c[0].body);
        assert!(a.iter().all(|d| d.body.len() >= 2000));
    }

    #[test]
    fn the_classifier_finds_exactly_what_was_planted() {
        let classifier = crate::Classifier::new(crate::Config {
            custom: example_custom_identifiers(),
            ..crate::Config::default()
        });
        for doc in Generator::new(42).mixed(6, 20_000, 0.5) {
            let report = classifier.classify(&doc.name, None, doc.body.as_slice());
            let found: BTreeMap<&str, u64> = report
                .detections
                .iter()
                .map(|d| (d.identifier.label(), d.count))
                .collect();
            assert_eq!(found, doc.planted, "{}", doc.name);
        }
    }
}
