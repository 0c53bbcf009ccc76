//! Macie's restJson1 routes: method and path to operation, with path labels percent-decoded.

use http::Method;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::error::MacieError;
use super::service::Macie;

/// Dispatches one request; unknown routes are `ResourceNotFoundException` as in Macie.
pub fn route(macie: &Macie, method: &Method, path: &str, body: &[u8]) -> Result<Value, MacieError> {
    let body: Value = if body.is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|err| MacieError::validation(format!("the body is not JSON: {err}")))?
    };
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["jobs"]) => macie.create_job(&body),
        ("POST", ["jobs", "list"]) => macie.list_jobs(&body),
        ("GET", ["jobs", id]) => macie.describe_job(id),
        ("PATCH", ["jobs", id]) => macie.update_job(id, &body),
        ("POST", ["findings"]) => macie.list_findings(&body),
        ("POST", ["findings", "describe"]) => macie.get_findings(&body),
        ("POST", ["findings", "statistics"]) => macie.finding_statistics(&body),
        ("POST", ["custom-data-identifiers"]) => macie.create_custom_identifier(&body),
        ("POST", ["custom-data-identifiers", "get"]) => macie.batch_get_custom_identifiers(&body),
        ("POST", ["custom-data-identifiers", "list"]) => macie.list_custom_identifiers(),
        ("GET", ["custom-data-identifiers", id]) => macie.get_custom_identifier(id),
        ("POST", ["allow-lists"]) => macie.create_allow_list(&body),
        ("GET", ["allow-lists", id]) => macie.get_allow_list(id),
        ("PUT", ["allow-lists", id]) => macie.update_allow_list(id, &body),
        ("POST", ["findingsfilters"]) => macie.create_findings_filter(&body),
        ("GET", ["findingsfilters"]) => macie.list_findings_filters(),
        ("GET", ["findingsfilters", id]) => macie.get_findings_filter(id),
        ("PATCH", ["findingsfilters", id]) => macie.update_findings_filter(id, &body),
        ("DELETE", ["findingsfilters", id]) => macie.delete_findings_filter(id),
        ("GET", ["macie"]) => Ok(macie.session()),
        ("POST", ["macie"]) => macie.enable(&body),
        ("POST", ["managed-data-identifiers", "list"]) => Ok(macie.managed_identifiers()),
        ("PUT", ["classification-export-configuration"]) => macie.put_export_configuration(&body),
        ("GET", ["classification-export-configuration"]) => macie.get_export_configuration(),
        _ => Err(MacieError::not_found(format!(
            "no Macie operation at {method} {path}"
        ))),
    }
}
