//! SAM's `DefinitionSubstitutions`, applied to the definition text before it is parsed.

use std::collections::{BTreeMap, HashSet};

/// Replaces each `${Name}` with its value, as SAM's `DefinitionSubstitutions` do. A name without a
/// value is an error.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut missing = HashSet::new();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|end| start + end)
            .ok_or("an unterminated ${ in the definition")?;
        let name = &rest[start + 2..end];
        match values.get(name) {
            Some(value) => out.push_str(value),
            None => {
                missing.insert(name.to_owned());
            }
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    if !missing.is_empty() {
        let mut missing: Vec<_> = missing.into_iter().collect();
        missing.sort();
        return Err(format!(
            "no value for the substitutions {}",
            missing.join(", ")
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_must_all_resolve() {
        let values = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        assert_eq!(substitute("x${A}y", &values).unwrap(), "x1y");
        assert!(substitute("${A}${B}", &values).unwrap_err().contains("B"));
    }
}
