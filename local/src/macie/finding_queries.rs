//! ListFindings, GetFindings and GetFindingStatistics over the findings jobs recorded.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::{MacieError, Result};
use super::finding;
use super::request::{paginate, strings};
use super::service::Macie;

impl Macie {
    pub fn list_findings(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let criteria = &body["findingCriteria"];
        finding::validate_criteria(criteria).map_err(MacieError::validation)?;
        let state = self.state();
        let mut findings: Vec<&Value> = state
            .findings
            .values()
            .filter(|f| finding::matches(f, criteria))
            .collect();
        sort_findings(&mut findings, &body["sortCriteria"]);
        let maximum = body["maxResults"].as_u64().map_or(50, |n| n.clamp(1, 50));
        let (page, next) = paginate(
            &findings,
            &json!({"maxResults": maximum, "nextToken": body["nextToken"]}),
            50,
        )?;
        Ok(
            json!({"findingIds": page.iter().map(|f| f["id"].clone()).collect::<Vec<_>>(), "nextToken": next}),
        )
    }

    pub fn get_findings(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let ids = strings(&body["findingIds"]);
        if ids.len() > 50 {
            return Err(MacieError::validation("findingIds can have at most 50 ids"));
        }
        let state = self.state();
        let mut findings: Vec<&Value> =
            ids.iter().filter_map(|id| state.findings.get(id)).collect();
        if !body["sortCriteria"].is_null() {
            sort_findings(&mut findings, &body["sortCriteria"]);
        }
        Ok(json!({"findings": findings}))
    }

    pub fn finding_statistics(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let group_by = body["groupBy"].as_str().unwrap_or_default();
        if ![
            "resourcesAffected.s3Bucket.name",
            "type",
            "classificationDetails.jobId",
            "severity.description",
        ]
        .contains(&group_by)
        {
            return Err(MacieError::validation(format!(
                "groupBy {group_by:?} is not valid"
            )));
        }
        finding::validate_criteria(&body["findingCriteria"]).map_err(MacieError::validation)?;
        let state = self.state();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for f in state
            .findings
            .values()
            .filter(|f| finding::matches(f, &body["findingCriteria"]))
        {
            let mut node: &Value = f;
            for part in group_by.split('.') {
                node = &node[part];
            }
            *counts
                .entry(node.as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        Ok(
            json!({"countsByGroup": counts.into_iter().map(|(k, n)| json!({"groupKey": k, "count": n})).collect::<Vec<_>>()}),
        )
    }
}

fn sort_findings(findings: &mut Vec<&Value>, sort: &Value) {
    let attribute = sort["attributeName"].as_str().unwrap_or("createdAt");
    let ascending = sort["orderBy"].as_str() == Some("ASC");
    // Keys computed once per finding: a sort compares each finding many times.
    let key = |f: &Value| -> (String, String) {
        let primary = if attribute.starts_with("severity") {
            finding::severity_of(f).to_string()
        } else {
            let mut node = f;
            for part in attribute.split('.') {
                node = &node[part];
            }
            match node {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            }
        };
        (primary, f["id"].as_str().unwrap_or_default().to_owned())
    };
    let mut keyed: Vec<((String, String), &Value)> =
        findings.iter().map(|f| (key(f), *f)).collect();
    keyed.sort_by(|a, b| {
        if ascending {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        }
    });
    *findings = keyed.into_iter().map(|(_, f)| f).collect();
}
