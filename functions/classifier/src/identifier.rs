//! Macie's managed data identifiers this classifier implements: their ids, categories and the
//! keywords that must appear near a match (specs/macie2.md §9.1).

use serde::Serialize;

/// Macie's categories of sensitive data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Credentials,
    FinancialInformation,
    PersonalInformation,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "CREDENTIALS",
            Self::FinancialInformation => "FINANCIAL_INFORMATION",
            Self::PersonalInformation => "PERSONAL_INFORMATION",
        }
    }
}

/// One managed data identifier.
#[derive(Debug)]
pub struct Managed {
    /// Macie's id, as `ListManagedDataIdentifiers` returns it and findings report it.
    pub id: &'static str,
    pub category: Category,
    /// Lower-case keywords; empty when the identifier needs none. Macie requires one within
    /// [`KEYWORD_DISTANCE`] characters of the match, or in the column name or JSON path.
    pub keywords: &'static [&'static str],
}

/// Macie: a required keyword must be within 30 characters (inclusive) of the match.
pub const KEYWORD_DISTANCE: usize = 30;

const CARD_KEYWORDS: &[&str] = &[
    "card",
    "credit card",
    "card number",
    "card no",
    "card #",
    "card_number",
    "cardnumber",
    "creditcard",
    "credit_card",
    "cc number",
    "ccn",
    "pan",
    "visa",
    "mastercard",
    "master card",
    "amex",
    "american express",
    "discover",
    "payment card",
    "debit card",
];

/// Every managed identifier the classifier emits. `NAME` and `ADDRESS` are machine-learning
/// models in Macie; a regex stand-in would flood reviewers with false positives, so they are not
/// emitted (specs/macie2.md §9.1). `EMAIL_ADDRESS` is not a confirmed Macie identifier: use a
/// custom data identifier for it. The per-country BBAN identifiers and magnetic stripe data are
/// not implemented yet: IBANs (which contain the BBAN) are.
pub const MANAGED: &[Managed] = &[
    Managed {
        id: "AWS_CREDENTIALS",
        category: Category::Credentials,
        keywords: &[
            "aws_secret_access_key",
            "aws secret access key",
            "secret access key",
            "secret_access_key",
            "secretaccesskey",
            "aws_secret",
            "aws secret",
            "secret_key",
            "secret key",
            "credentials",
        ],
    },
    Managed {
        id: "OPENSSH_PRIVATE_KEY",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "PGP_PRIVATE_KEY",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "PKCS",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "PUTTY_PRIVATE_KEY",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "HTTP_BASIC_AUTH_HEADER",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "JSON_WEB_TOKEN",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "STRIPE_CREDENTIALS",
        category: Category::Credentials,
        keywords: &[],
    },
    Managed {
        id: "CREDIT_CARD_NUMBER",
        category: Category::FinancialInformation,
        keywords: CARD_KEYWORDS,
    },
    Managed {
        id: "CREDIT_CARD_NUMBER_(NO_KEYWORD)",
        category: Category::FinancialInformation,
        keywords: &[],
    },
    Managed {
        id: "CREDIT_CARD_EXPIRATION",
        category: Category::FinancialInformation,
        keywords: &[
            "exp",
            "expiration",
            "expiry",
            "expires",
            "valid thru",
            "valid through",
            "good thru",
        ],
    },
    Managed {
        id: "CREDIT_CARD_SECURITY_CODE",
        category: Category::FinancialInformation,
        keywords: &[
            "cvv",
            "cvc",
            "cvv2",
            "cvc2",
            "cid",
            "security code",
            "card verification",
        ],
    },
    Managed {
        id: "BANK_ACCOUNT_NUMBER",
        category: Category::FinancialInformation,
        keywords: &[
            "bank account",
            "account number",
            "account no",
            "acct number",
            "acct no",
            "account_number",
            "bank_account",
            "checking account",
            "checking acct",
            "savings account",
            "savings acct",
            "deposit account",
        ],
    },
    Managed {
        id: "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        category: Category::FinancialInformation,
        keywords: &[],
    },
    Managed {
        id: "USA_SOCIAL_SECURITY_NUMBER",
        category: Category::PersonalInformation,
        keywords: &[
            "ssn",
            "social security",
            "social sec",
            "soc sec",
            "ss#",
            "ss number",
        ],
    },
    Managed {
        id: "USA_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        category: Category::PersonalInformation,
        keywords: &["itin", "taxpayer identification", "tax id"],
    },
    Managed {
        id: "USA_PASSPORT_NUMBER",
        category: Category::PersonalInformation,
        keywords: &["passport"],
    },
    Managed {
        id: "DRIVERS_LICENSE",
        category: Category::PersonalInformation,
        keywords: &[
            "driver's license",
            "drivers license",
            "driver license",
            "driver's licence",
            "drivers licence",
            "driver licence",
            "driving licence",
            "drivers_license",
            "driver_license",
            "dl#",
            "dl number",
            "dln",
        ],
    },
    Managed {
        id: "DATE_OF_BIRTH",
        category: Category::PersonalInformation,
        keywords: &[
            "bday",
            "b-day",
            "birth date",
            "birthdate",
            "birth_date",
            "birthday",
            "date of birth",
            "dob",
            "born",
        ],
    },
    Managed {
        id: "PHONE_NUMBER",
        category: Category::PersonalInformation,
        keywords: &[
            "phone",
            "tel",
            "mobile",
            "cell",
            "fax",
            "contact number",
            "call",
        ],
    },
    Managed {
        id: "LATLONG",
        category: Category::PersonalInformation,
        keywords: &[
            "gps",
            "coordinates",
            "coords",
            "latitude",
            "longitude",
            "lat/long",
            "latlong",
            "lat",
            "location",
        ],
    },
];

/// The managed identifier with this id.
pub fn managed(id: &str) -> Option<&'static Managed> {
    MANAGED.iter().find(|m| m.id == id)
}

/// Index of a managed identifier in [`MANAGED`]; panics on an unknown id, which is a bug here.
pub(crate) fn index(id: &str) -> usize {
    MANAGED
        .iter()
        .position(|m| m.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the managed identifier table"))
}

/// Which managed identifiers a job uses (`managedDataIdentifierSelector`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `ALL` and `RECOMMENDED` (every identifier here is in Macie's recommended set).
    All,
    None,
    Include(Vec<String>),
    Exclude(Vec<String>),
}

impl Selection {
    pub fn includes(&self, id: &str) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::Include(ids) => ids.iter().any(|i| i == id),
            Self::Exclude(ids) => !ids.iter().any(|i| i == id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_keywords_lower_case() {
        for (i, m) in MANAGED.iter().enumerate() {
            assert_eq!(index(m.id), i, "{} appears twice", m.id);
            for k in m.keywords {
                assert_eq!(*k, k.to_lowercase(), "{}: keyword {k}", m.id);
            }
        }
    }

    #[test]
    fn selections_follow_macies_selector() {
        assert!(Selection::All.includes("PKCS"));
        assert!(!Selection::None.includes("PKCS"));
        assert!(Selection::Include(vec!["PKCS".into()]).includes("PKCS"));
        assert!(!Selection::Include(vec!["PKCS".into()]).includes("LATLONG"));
        assert!(!Selection::Exclude(vec!["PKCS".into()]).includes("PKCS"));
    }
}
