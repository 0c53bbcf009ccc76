//! What a run's scan costs. Macie bills sensitive data discovery jobs by the bytes it analyses
//! (`sizeClassified` in each discovery result), per GB (2^30 bytes, as AWS bills storage and
//! data). The price is a deployment parameter: USD 1.00 per GB is the list price for the first
//! 50 TB a month in most regions; larger volumes and some regions pay less, and the monthly free
//! tier and the per-bucket monitoring fee are not part of a run's figure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

const GIB: f64 = (1u64 << 30) as f64;

/// A price in millionths of a US dollar per GB: whole numbers keep the manifest comparable and
/// exact, and a micro-dollar is finer than any Macie price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MicroUsdPerGb(pub u64);

impl MicroUsdPerGb {
    /// The list price in most regions for the first 50 TB a month.
    pub const LIST_PRICE: Self = Self(1_000_000);

    /// The estimated cost of analysing `bytes`, in US dollars.
    pub fn cost_usd(self, bytes: u64) -> f64 {
        bytes as f64 / GIB * self.0 as f64 / 1e6
    }

    /// The estimate as the run summary shows it: dollars with four decimals.
    pub fn cost_text(self, bytes: u64) -> String {
        format!("{:.4}", self.cost_usd(bytes))
    }
}

impl fmt::Display for MicroUsdPerGb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "USD {:.2} per GB", self.0 as f64 / 1e6)
    }
}

impl FromStr for MicroUsdPerGb {
    type Err = String;

    /// Dollars per GB, e.g. `1.00` or `0.5`: finite, not negative, at most 1,000.
    fn from_str(text: &str) -> Result<Self, String> {
        let usd: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a price in US dollars per GB, like 1.00"))?;
        if !usd.is_finite() || !(0.0..=1000.0).contains(&usd) {
            return Err(format!(
                "{text:?} is not a price between 0 and 1000 US dollars per GB"
            ));
        }
        Ok(Self((usd * 1e6).round() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_from_dollars() {
        assert_eq!("1.00".parse(), Ok(MicroUsdPerGb(1_000_000)));
        assert_eq!(" 0.5 ".parse(), Ok(MicroUsdPerGb(500_000)));
        assert_eq!("0".parse(), Ok(MicroUsdPerGb(0)));
        for bad in ["", "free", "-1", "NaN", "inf", "1001"] {
            assert!(bad.parse::<MicroUsdPerGb>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_gigabyte_at_list_price_costs_a_dollar() {
        let price = MicroUsdPerGb::LIST_PRICE;
        assert_eq!(price.cost_text(1 << 30), "1.0000");
        assert_eq!(price.cost_text(0), "0.0000");
        assert_eq!(MicroUsdPerGb(250_000).cost_text(4 << 30), "1.0000");
        assert_eq!(price.to_string(), "USD 1.00 per GB");
    }
}
