//! The Macie session (GetMacieSession, EnableMacie, turning it off), the managed data
//! identifiers, and the classification export configuration.

use serde_json::{Value, json};

use super::error::{MacieError, Result};
use super::service::Macie;
use crate::aws::ACCOUNT;
use crate::clock::rfc3339_ms;
use macie_classifier::MANAGED;

impl Macie {
    pub fn session(&self) -> Value {
        let state = self.state();
        json!({"createdAt": rfc3339_ms(state.settings.session_created_ms), "updatedAt": rfc3339_ms(state.settings.session_created_ms),
               "findingPublishingFrequency": "FIFTEEN_MINUTES", "status": state.settings.session_status,
               "serviceRole": format!("arn:aws:iam::{ACCOUNT}:role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie")})
    }

    /// EnableMacie; also turns a disabled Macie back on.
    pub fn enable(&self, body: &Value) -> Result<Value> {
        let status = body["status"].as_str().unwrap_or("ENABLED").to_owned();
        self.change_settings(|settings| settings.session_status = status)?;
        Ok(json!({}))
    }

    /// Turns Macie off: every operation then fails with AccessDeniedException.
    pub fn disable(&self) -> Result<()> {
        self.change_settings(|settings| settings.session_status = "PAUSED".into())
    }

    pub fn managed_identifiers(&self) -> Value {
        json!({"items": MANAGED.iter().map(|m| json!({"id": m.id, "category": m.category.as_str()})).collect::<Vec<_>>()})
    }

    pub fn put_export_configuration(&self, body: &Value) -> Result<Value> {
        self.enabled()?;
        let destination = &body["configuration"]["s3Destination"];
        if destination["bucketName"].as_str().is_none()
            || destination["kmsKeyArn"].as_str().is_none()
        {
            return Err(MacieError::validation(
                "s3Destination needs bucketName and kmsKeyArn",
            ));
        }
        let configuration = body["configuration"].clone();
        self.change_settings(|settings| settings.export_configuration = Some(configuration))?;
        Ok(json!({"configuration": body["configuration"]}))
    }

    pub fn get_export_configuration(&self) -> Result<Value> {
        self.enabled()?;
        // Macie answers `{}` when no location is configured.
        Ok(match &self.state().settings.export_configuration {
            Some(configuration) => json!({"configuration": configuration}),
            None => json!({}),
        })
    }
}
