//! Timestamps as ASL takes them: RFC 3339 with an uppercase `T` between date and time and a
//! `Z` or an offset (the `time` crate alone would also take a space or a lowercase `t`).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn parse(text: &str) -> Option<OffsetDateTime> {
    if text.as_bytes().get(10) != Some(&b'T') || text.ends_with('z') {
        return None;
    }
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_uppercase_t_and_z_are_timestamps() {
        assert!(super::parse("2016-03-14T01:59:00Z").is_some());
        assert!(super::parse("2016-03-14T01:59:00+02:00").is_some());
        for bad in [
            "2016-12-05 21:29:29Z",
            "2016-12-05t21:29:29Z",
            "2016-12-05T21:29:29",
            "2016-13-05T21:29:29Z",
            "2016-12-05T21:29:29z",
        ] {
            assert!(super::parse(bad).is_none(), "{bad}");
        }
    }
}
