//! Findings filters (Macie's suppression rules): saved finding criteria with an action. A filter
//! whose action is `ARCHIVE` archives every new finding that meets its criteria as the finding is
//! created, as Macie does; findings created before the filter stay as they are. The gate never
//! counts archived findings, so a user's own suppression rule works with it here as in AWS.

use serde_json::{Value, json};

use super::error::MacieError;
use super::finding;
use super::service::{Macie, Settings};
use crate::aws::{ACCOUNT, REGION};
use crate::clock::{now_ms, rfc3339_ms};

type Result<T> = std::result::Result<T, MacieError>;

fn arn(id: &str) -> String {
    format!("arn:aws:macie2:{REGION}:{ACCOUNT}:findings-filter/{id}")
}

/// The request's action, name, criteria and position, checked as Macie checks them.
fn check(body: &Value, existing: Option<&Value>) -> Result<(String, String, Value, i64)> {
    let action = match body["action"]
        .as_str()
        .or(existing.and_then(|e| e["action"].as_str()))
    {
        Some(action @ ("ARCHIVE" | "NOOP")) => action.to_owned(),
        Some(other) => {
            return Err(MacieError::validation(format!(
                "action must be ARCHIVE or NOOP, not {other}"
            )));
        }
        None => return Err(MacieError::validation("action is required")),
    };
    let name = body["name"]
        .as_str()
        .or(existing.and_then(|e| e["name"].as_str()))
        .unwrap_or_default()
        .to_owned();
    if !(3..=64).contains(&name.chars().count()) {
        return Err(MacieError::validation("name must be 3 to 64 characters"));
    }
    let criteria = match (&body["findingCriteria"], existing) {
        (Value::Null, Some(existing)) => existing["findingCriteria"].clone(),
        (Value::Null, None) => return Err(MacieError::validation("findingCriteria is required")),
        (criteria, _) => criteria.clone(),
    };
    finding::validate_criteria(&criteria).map_err(MacieError::validation)?;
    let position = body["position"]
        .as_i64()
        .or(existing.and_then(|e| e["position"].as_i64()))
        .unwrap_or(1);
    Ok((action, name, criteria, position))
}

impl Macie {
    pub fn create_findings_filter(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let token = body["clientToken"].as_str().unwrap_or_default().to_owned();
        if let Some(id) = self.state().settings.findings_filter_tokens.get(&token) {
            let id = id.clone();
            return Ok(json!({"id": id, "arn": arn(&id)}));
        }
        let (action, name, criteria, position) = check(body, None)?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_owned();
        let stored = json!({"id": id, "arn": arn(&id), "action": action, "name": name,
            "description": body["description"], "findingCriteria": criteria,
            "position": position, "tags": body["tags"]});
        self.change_settings(|settings| {
            settings.findings_filters.insert(id.clone(), stored);
            if !token.is_empty() {
                settings.findings_filter_tokens.insert(token, id.clone());
            }
        })?;
        Ok(json!({"id": id, "arn": arn(&id)}))
    }

    pub fn get_findings_filter(&self, id: &str) -> Result<Value> {
        self.enabled()?;
        self.state()
            .settings
            .findings_filters
            .get(id)
            .cloned()
            .ok_or_else(|| MacieError::not_found(format!("findings filter {id} does not exist")))
    }

    pub fn list_findings_filters(&self) -> Result<Value> {
        self.enabled()?;
        let items: Vec<Value> = self
            .state()
            .settings
            .findings_filters
            .values()
            .map(|f| json!({"id": f["id"], "arn": f["arn"], "action": f["action"], "name": f["name"], "tags": f["tags"]}))
            .collect();
        Ok(json!({"findingsFilterListItems": items}))
    }

    pub fn update_findings_filter(&self, id: &str, body: &Value) -> Result<Value> {
        let existing = self.get_findings_filter(id)?;
        let (action, name, criteria, position) = check(body, Some(&existing))?;
        self.change_settings(|settings| {
            if let Some(filter) = settings.findings_filters.get_mut(id) {
                filter["action"] = json!(action);
                filter["name"] = json!(name);
                filter["findingCriteria"] = criteria;
                filter["position"] = json!(position);
                if !body["description"].is_null() {
                    filter["description"] = body["description"].clone();
                }
                filter["updatedAt"] = json!(rfc3339_ms(now_ms()));
            }
        })?;
        Ok(json!({"id": id, "arn": arn(id)}))
    }

    pub fn delete_findings_filter(&self, id: &str) -> Result<Value> {
        self.get_findings_filter(id)?;
        self.change_settings(|settings| {
            settings.findings_filters.remove(id);
        })?;
        Ok(json!({}))
    }
}

/// Archives `finding` if an `ARCHIVE` filter's criteria meet it, filters taken by position.
pub(super) fn apply(settings: &Settings, finding: &mut Value) {
    let mut filters: Vec<&Value> = settings.findings_filters.values().collect();
    filters.sort_by_key(|f| f["position"].as_i64().unwrap_or(1));
    if filters
        .iter()
        .any(|f| f["action"] == "ARCHIVE" && finding::matches(finding, &f["findingCriteria"]))
    {
        finding["archived"] = json!(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_filters_archive_the_findings_they_meet_and_noop_ones_do_not() {
        let mut settings = Settings::default();
        let criteria = json!({"criterion": {"type": {"eq": ["SensitiveData:S3Object/Financial"]}}});
        settings.findings_filters.insert(
            "noop".into(),
            json!({"action": "NOOP", "findingCriteria": criteria, "position": 1}),
        );
        let mut financial = json!({"type": "SensitiveData:S3Object/Financial", "archived": false});
        apply(&settings, &mut financial);
        assert_eq!(financial["archived"], false, "NOOP only saves the criteria");
        settings.findings_filters.insert(
            "archive".into(),
            json!({"action": "ARCHIVE", "findingCriteria": criteria, "position": 2}),
        );
        apply(&settings, &mut financial);
        assert_eq!(financial["archived"], true);
        let mut personal = json!({"type": "SensitiveData:S3Object/Personal", "archived": false});
        apply(&settings, &mut personal);
        assert_eq!(personal["archived"], false);
    }

    #[test]
    fn requests_are_checked_as_macie_checks_them() {
        let criteria = json!({"criterion": {"type": {"eq": ["x"]}}});
        assert!(
            check(
                &json!({"action": "ARCHIVE", "name": "keep", "findingCriteria": criteria}),
                None
            )
            .is_ok()
        );
        for (body, problem) in [
            (
                json!({"name": "keep", "findingCriteria": criteria}),
                "action is required",
            ),
            (
                json!({"action": "DELETE", "name": "keep", "findingCriteria": criteria}),
                "ARCHIVE or NOOP",
            ),
            (
                json!({"action": "ARCHIVE", "name": "k", "findingCriteria": criteria}),
                "3 to 64",
            ),
            (
                json!({"action": "ARCHIVE", "name": "keep"}),
                "findingCriteria is required",
            ),
            (
                json!({"action": "ARCHIVE", "name": "keep", "findingCriteria": {"criterion": {"bogus": {"eq": ["x"]}}}}),
                "not a valid finding criterion",
            ),
        ] {
            let err = format!("{:?}", check(&body, None).unwrap_err());
            assert!(err.contains(problem), "{body}: {err}");
        }
    }
}
