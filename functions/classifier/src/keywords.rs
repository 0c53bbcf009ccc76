//! Keyword search: case-insensitive, whole words (a keyword inside a longer word, like `tel` in
//! `hotel`, does not count).

use aho_corasick::{AhoCorasick, MatchKind};

#[derive(Debug, Clone)]
pub(crate) struct Keywords {
    automaton: Option<AhoCorasick>,
    lengths: Vec<usize>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

impl Keywords {
    pub fn new<S: AsRef<str>>(keywords: &[S]) -> Self {
        let automaton = (!keywords.is_empty()).then(|| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .build(keywords.iter().map(AsRef::as_ref))
                .expect("keyword automaton builds")
        });
        let lengths = keywords.iter().map(|k| k.as_ref().len()).collect();
        Self { automaton, lengths }
    }

    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    /// The longest keyword's length in bytes.
    pub fn longest(&self) -> usize {
        self.lengths.iter().copied().max().unwrap_or(0)
    }

    /// Spans (in `text`) of the whole-word keywords found in `text`.
    pub fn spans<'t>(&'t self, text: &'t str) -> impl Iterator<Item = (usize, usize)> + 't {
        let bytes = text.as_bytes();
        self.automaton.iter().flat_map(move |automaton| {
            automaton.find_iter(bytes).filter_map(move |m| {
                let keyword_starts_word = m.start() == 0
                    || !is_word_byte(bytes[m.start() - 1])
                    || !is_word_byte(bytes[m.start()]);
                let keyword_ends_word = m.end() == bytes.len()
                    || !is_word_byte(bytes[m.end()])
                    || !is_word_byte(bytes[m.end() - 1]);
                (keyword_starts_word && keyword_ends_word).then_some((m.start(), m.end()))
            })
        })
    }

    /// Whether a whole-word keyword occurs in `text`.
    pub fn found_in(&self, text: &str) -> bool {
        self.spans(text).next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_whole_words_in_any_case() {
        let keywords = Keywords::new(&["tel", "ssn", "card number"]);
        assert!(keywords.found_in("Tel: 555"));
        assert!(keywords.found_in("customer_SSN"));
        assert!(keywords.found_in("Card Number"));
        assert!(!keywords.found_in("hotel 555"));
        assert!(!keywords.found_in("telescope"));
        assert!(!Keywords::new::<&str>(&[]).found_in("anything"));
    }
}
