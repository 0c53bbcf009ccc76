//! Helpers shared by the integration tests: the repository's files, parsed.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn template() -> Yaml {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    serde_norway::from_str(&text).expect("template.yaml parses")
}

pub fn asl_text() -> String {
    std::fs::read_to_string(root().join("statemachine/macie_pipeline_scan.asl.json"))
        .expect("the ASL file")
}

/// The ASL with every `${Name}` replaced by a plausible value, as Step Functions sees it.
pub fn asl() -> Json {
    let mut text = asl_text();
    for (name, value) in [
        ("${PollIntervalSeconds}", "60"),
        ("${ApprovalTimeoutSeconds}", "432000"),
        ("${MapMaxConcurrency}", "10"),
        ("${MapItemsPerBatch}", "1000"),
    ] {
        text = text.replace(name, value);
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closed substitution") + start;
        out.push_str(&format!("sub-{}", &rest[start + 2..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    serde_json::from_str(&out).expect("the ASL is JSON once substituted")
}

/// The template's resources of `kind`, by logical id.
pub fn resources(template: &Yaml, kind: &str) -> Vec<(String, Yaml)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(id, resource)| (id.as_str().unwrap().to_owned(), resource.clone()))
        .collect()
}

/// A `!Tag value` node as (tag without `!`, value).
pub fn tagged(value: &Yaml) -> Option<(String, &Yaml)> {
    match value {
        Yaml::Tagged(tagged) => Some((
            tagged.tag.to_string().trim_start_matches('!').to_owned(),
            &tagged.value,
        )),
        _ => None,
    }
}
