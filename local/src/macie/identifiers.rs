//! Custom data identifiers and allow lists: their checks as Macie makes them, storage and reads.

use regex::Regex;
use serde_json::{Value, json};

use super::error::{MacieError, Result};
use super::request::strings;
use super::service::Macie;
use crate::aws::{ACCOUNT, REGION};
use crate::clock::{now_ms, rfc3339_ms};
use macie_classifier::{CustomDefinition, CustomIdentifier};

/// A stored (or requested) custom data identifier as the classifier defines it.
pub(super) fn custom_definition(c: &Value) -> CustomDefinition {
    CustomDefinition {
        id: c["id"].as_str().map(str::to_owned),
        arn: c["arn"].as_str().map(str::to_owned),
        name: c["name"].as_str().unwrap_or_default().to_owned(),
        regex: c["regex"].as_str().unwrap_or_default().to_owned(),
        keywords: strings(&c["keywords"]),
        ignore_words: strings(&c["ignoreWords"]),
        maximum_match_distance: c["maximumMatchDistance"]
            .as_u64()
            .and_then(|d| u32::try_from(d).ok()),
        severity_levels: serde_json::from_value(c["severityLevels"].clone()).unwrap_or_default(),
        description: None,
    }
}

/// Rejects what Macie's regex dialect does not support: lookaround and backreferences.
fn check_regex(pattern: &str) -> Result<Regex> {
    if pattern.is_empty() || pattern.chars().count() > 512 {
        return Err(MacieError::validation("regex must be 1 to 512 characters"));
    }
    for unsupported in ["(?=", "(?!", "(?<=", "(?<!"] {
        if pattern.contains(unsupported) {
            return Err(MacieError::validation(
                "lookahead and lookbehind are not supported in regex",
            ));
        }
    }
    if Regex::new(r"\\[1-9]").expect("valid").is_match(pattern) {
        return Err(MacieError::validation(
            "backreferences are not supported in regex",
        ));
    }
    Regex::new(pattern).map_err(|err| MacieError::validation(format!("regex is not valid: {err}")))
}

impl Macie {
    pub fn create_custom_identifier(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(MacieError::validation(
                "name is required and must be at most 128 characters",
            ));
        }
        check_regex(body["regex"].as_str().unwrap_or_default())?;
        let keywords = strings(&body["keywords"]);
        if keywords.len() > 50
            || keywords
                .iter()
                .any(|k| !(3..=90).contains(&k.chars().count()))
        {
            return Err(MacieError::validation(
                "keywords: at most 50, each 3 to 90 characters",
            ));
        }
        let ignore_words = strings(&body["ignoreWords"]);
        if ignore_words.len() > 10
            || ignore_words
                .iter()
                .any(|w| !(4..=90).contains(&w.chars().count()))
        {
            return Err(MacieError::validation(
                "ignoreWords: at most 10, each 4 to 90 characters",
            ));
        }
        if let Some(distance) = body["maximumMatchDistance"].as_i64()
            && !(1..=300).contains(&distance)
        {
            return Err(MacieError::validation(
                "maximumMatchDistance must be between 1 and 300",
            ));
        }
        let levels = body["severityLevels"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if levels.len() > 3 {
            return Err(MacieError::validation(
                "severityLevels has at most 3 entries",
            ));
        }
        let mut previous = -1i64;
        for level in &levels {
            let threshold = level["occurrencesThreshold"].as_i64().unwrap_or(-1);
            if threshold <= previous
                || !matches!(level["severity"].as_str(), Some("LOW" | "MEDIUM" | "HIGH"))
            {
                return Err(MacieError::validation(
                    "severityLevels need ascending thresholds and LOW, MEDIUM or HIGH",
                ));
            }
            previous = threshold;
        }
        // What the jobs will compile, refused now rather than skipped later.
        CustomIdentifier::new(custom_definition(body))
            .map_err(|err| MacieError::validation(err.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut stored = body.clone();
        let fields = stored
            .as_object_mut()
            .ok_or_else(|| MacieError::validation("the body must be an object"))?;
        fields.remove("clientToken");
        fields.insert("id".into(), json!(id));
        fields.insert(
            "arn".into(),
            json!(format!(
                "arn:aws:macie2:{REGION}:{ACCOUNT}:custom-data-identifier/{id}"
            )),
        );
        fields.insert("createdAt".into(), json!(rfc3339_ms(now_ms())));
        fields.insert("deleted".into(), json!(false));
        fields.entry("maximumMatchDistance").or_insert(json!(50));
        self.change_settings(|settings| settings.custom_identifiers.insert(id.clone(), stored))?;
        Ok(json!({"customDataIdentifierId": id}))
    }

    pub fn get_custom_identifier(&self, id: &str) -> Result<Value> {
        self.enabled()?;
        self.state()
            .settings
            .custom_identifiers
            .get(id)
            .cloned()
            .ok_or_else(|| {
                MacieError::not_found(format!("custom data identifier {id} does not exist"))
            })
    }

    pub fn batch_get_custom_identifiers(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let state = self.state();
        let (mut found, mut missing) = (Vec::new(), Vec::new());
        for id in strings(&body["ids"]) {
            match state.settings.custom_identifiers.get(&id) {
                Some(c) => found.push(json!({"arn": c["arn"], "createdAt": c["createdAt"], "deleted": c["deleted"],
                                             "description": c["description"], "id": c["id"], "name": c["name"]})),
                None => missing.push(id),
            }
        }
        Ok(json!({"customDataIdentifiers": found, "notFoundIdentifierIds": missing}))
    }

    pub fn list_custom_identifiers(&self) -> Result<Value> {
        self.enabled()?;
        let state = self.state();
        let items: Vec<Value> = state
            .settings
            .custom_identifiers
            .values()
            .map(|c| json!({"arn": c["arn"], "createdAt": c["createdAt"], "description": c["description"], "id": c["id"], "name": c["name"]}))
            .collect();
        Ok(json!({"items": items}))
    }

    pub fn create_allow_list(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let token = body["clientToken"].as_str().unwrap_or_default().to_owned();
        if let Some(id) = self.state().settings.allow_list_tokens.get(&token) {
            let id = id.clone();
            return Ok(
                json!({"id": id, "arn": format!("arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{id}")}),
            );
        }
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(MacieError::validation("name must be 1 to 128 characters"));
        }
        let criteria = &body["criteria"];
        check_criteria(criteria)?;
        let id: String = uuid::Uuid::new_v4().simple().to_string()[..22].to_owned();
        let arn = format!("arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{id}");
        let now = rfc3339_ms(now_ms());
        let stored = json!({"arn": arn, "id": id, "name": name, "description": body["description"],
            "criteria": criteria, "tags": body["tags"], "createdAt": now, "updatedAt": now});
        self.change_settings(|settings| {
            settings.allow_lists.insert(id.clone(), stored);
            settings.allow_list_tokens.insert(token, id.clone());
        })?;
        Ok(json!({"id": id, "arn": arn}))
    }

    /// UpdateAllowList: new criteria (of the same kind or the other), name and description.
    pub fn update_allow_list(&self, id: &str, body: &Value) -> Result<Value> {
        self.enabled()?;
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(MacieError::validation("name must be 1 to 128 characters"));
        }
        let criteria = &body["criteria"];
        check_criteria(criteria)?;
        let arn = format!("arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{id}");
        let mut found = false;
        self.change_settings(|settings| {
            if let Some(list) = settings.allow_lists.get_mut(id) {
                found = true;
                list["name"] = json!(name);
                list["criteria"] = criteria.clone();
                if !body["description"].is_null() {
                    list["description"] = body["description"].clone();
                }
                list["updatedAt"] = json!(rfc3339_ms(now_ms()));
            }
        })?;
        if !found {
            return Err(MacieError::not_found(format!(
                "allow list {id} does not exist"
            )));
        }
        Ok(json!({"id": id, "arn": arn}))
    }

    /// Creates an allow list of the deployment under its stable id, unless it exists: as
    /// CloudFormation creates the resource once and leaves it to the API afterwards.
    pub fn deploy_allow_list(
        &self,
        id: &str,
        name: &str,
        description: &str,
        criteria: &Value,
    ) -> std::result::Result<(), String> {
        check_criteria(criteria).map_err(|err| format!("allow list {name}: {err:?}"))?;
        if self.state().settings.allow_lists.contains_key(id) {
            return Ok(());
        }
        let arn = format!("arn:aws:macie2:{REGION}:{ACCOUNT}:allow-list/{id}");
        let now = rfc3339_ms(now_ms());
        let stored = json!({"arn": arn, "id": id, "name": name, "description": description,
            "criteria": criteria, "tags": {}, "createdAt": now, "updatedAt": now});
        self.change_settings(|settings| {
            settings.allow_lists.insert(id.to_owned(), stored);
        })
        .map_err(|err| format!("allow list {name}: {err:?}"))
    }

    pub fn get_allow_list(&self, id: &str) -> Result<Value> {
        self.enabled()?;
        let mut list = self
            .state()
            .settings
            .allow_lists
            .get(id)
            .cloned()
            .ok_or_else(|| MacieError::not_found(format!("allow list {id} does not exist")))?;
        let status = match list["criteria"].get("s3WordsList") {
            Some(words) => match self.inner.s3.head(
                words["bucketName"].as_str().unwrap_or_default(),
                words["objectKey"].as_str().unwrap_or_default(),
            ) {
                Ok(meta) if meta.size == 0 => "S3_OBJECT_EMPTY",
                Ok(_) => "OK",
                Err(_) => "S3_OBJECT_NOT_FOUND",
            },
            None => "OK",
        };
        list["status"] = json!({"code": status});
        Ok(list)
    }
}

/// An allow list's criteria: exactly one of a regex Macie compiles and an S3 words list.
fn check_criteria(criteria: &Value) -> Result<()> {
    match (criteria.get("regex"), criteria.get("s3WordsList")) {
        (Some(regex), None) => check_regex(regex.as_str().unwrap_or_default()).map(|_| ()),
        (None, Some(list)) => {
            if list["bucketName"].as_str().is_none() || list["objectKey"].as_str().is_none() {
                return Err(MacieError::validation(
                    "s3WordsList needs bucketName and objectKey",
                ));
            }
            Ok(())
        }
        _ => Err(MacieError::validation(
            "criteria needs exactly one of regex and s3WordsList",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_with_lookaround_or_backreferences_are_refused() {
        assert!(check_regex("(?=a)b").is_err());
        assert!(check_regex(r"(a)\1").is_err());
        assert!(check_regex("P-[A-Z]{2}[0-9]{4}").is_ok());
    }
}
