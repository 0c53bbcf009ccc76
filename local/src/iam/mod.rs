//! The template's permissions, enforced on every request the local stack serves. Each Lambda
//! function signs its requests with an access key of its own role, the state machine's calls
//! are checked against its role, and Macie's writes of discovery results against the results
//! bucket's and key's policies as Macie's service principal. Any other access key is the
//! account's local user, allowed everything its identity allows (every action), but still
//! subject to resource policies: a bucket policy that denies plain HTTP denies it too.
//!
//! What each principal was allowed and used is recorded for `iam report`.

pub mod authorization;
pub mod evaluate;
pub mod policy;
pub mod report;
pub mod s3;
pub mod sam;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::aws::{ACCOUNT, REGION};
use crate::deployment::{Deployment, PolicyTarget};
use crate::kms::Kms;
use evaluate::{Caller, Context, Decision, Request, ResourcePolicyKind};
use policy::Policy;

/// The access key id a function's role signs with locally.
pub fn access_key(logical_id: &str) -> String {
    format!("ASIA{}", logical_id.to_ascii_uppercase())
}

/// The local user's access key, as the README exports it.
pub const USER_ACCESS_KEY: &str = "local";

/// The access key of a second local user with read-only access (AWS's `ReadOnlyAccess`, as far
/// as the local services go): an auditor or operator who may look at everything and change
/// nothing, and who holds no grant on any KMS key.
pub const READ_ONLY_ACCESS_KEY: &str = "local-readonly";

/// The state machine's logical id in the template, whose role is the state machine's.
pub const STATE_MACHINE: &str = "MaciePipelineScanStateMachine";

/// Macie's service principal.
pub const MACIE_SERVICE: &str = "macie.amazonaws.com";

/// EventBridge's service principal, which sends a rule's events to targets with no role (an
/// SQS queue), allowed by the target's resource policy.
pub const EVENTS_SERVICE: &str = "events.amazonaws.com";

/// What a service principal acting for `source_arn` in this account carries as request
/// context (`aws:SourceArn`, `aws:SourceAccount`), for a resource policy's conditions.
pub fn on_behalf_of(source_arn: &str) -> Context {
    let mut context = evaluate::transport(true);
    context.insert("aws:sourcearn".into(), vec![source_arn.to_owned()]);
    context.insert("aws:sourceaccount".into(), vec![ACCOUNT.to_owned()]);
    context
}

/// The ARN of Macie's service-linked role, which it reads objects with: it exists once Macie is
/// enabled in the account.
pub fn macie_service_linked_role() -> String {
    format!(
        "arn:aws:iam::{ACCOUNT}:role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie"
    )
}

/// The request context of a KMS call Step Functions makes for a state machine encrypted with a
/// customer-managed key: through Step Functions, with the state machine's ARN as the
/// encryption context.
fn state_machine_key_context(secure: bool, machine_arn: &str) -> Context {
    let mut context = evaluate::transport(secure);
    context.insert(
        "kms:viaservice".into(),
        vec![format!("states.{REGION}.amazonaws.com")],
    );
    context.insert(
        "kms:encryptioncontext:aws:states:statemachinearn".into(),
        vec![machine_arn.to_owned()],
    );
    context
}

/// What writing an encrypted state machine's data takes: a data key, and reading what is there.
pub const ENCRYPT_AND_DECRYPT: &[&str] = &["kms:GenerateDataKey", "kms:Decrypt"];

/// The KMS actions Step Functions takes on a caller's behalf for each API operation on a state
/// machine encrypted with a customer-managed key: starting an execution and answering a task
/// encrypt new data (and read the state machine), the reads decrypt. Operations that carry no
/// execution data take none.
pub fn state_machine_key_actions(
    operation: &str,
    body: &serde_json::Value,
) -> &'static [&'static str] {
    match operation {
        "StartExecution" | "StartSyncExecution" | "SendTaskSuccess" | "SendTaskFailure"
        | "SendTaskHeartbeat" => ENCRYPT_AND_DECRYPT,
        "DescribeExecution"
        | "DescribeStateMachine"
        | "DescribeStateMachineForExecution"
        | "StopExecution"
        | "RedriveExecution" => &["kms:Decrypt"],
        // Without its data the history is readable with no key: names, types, times.
        "GetExecutionHistory" if body["includeExecutionData"].as_bool() != Some(false) => {
            &["kms:Decrypt"]
        }
        _ => &[],
    }
}

/// A principal with its identity policies.
#[derive(Debug)]
pub struct Principal {
    /// The template's logical id for a role, `local user` or the service principal.
    pub name: String,
    pub caller: Caller,
    pub policies: Vec<(String, Policy)>,
}

/// The principals of the account a key policy may name: the account itself, the template's
/// roles, the local users, and Macie's service-linked role once Macie is enabled (KMS refuses a
/// policy naming a principal that does not exist).
pub struct KnownPrincipals<'a> {
    pub iam: &'a Iam,
    pub macie_enabled: bool,
}

impl crate::kms::Principals for KnownPrincipals<'_> {
    fn exists(&self, arn: &str) -> bool {
        let iam = self.iam;
        arn == ACCOUNT
            || arn == format!("arn:aws:iam::{ACCOUNT}:root")
            || (self.macie_enabled && arn == macie_service_linked_role())
            || [&iam.user, &iam.read_only]
                .into_iter()
                .chain(iam.by_name.values())
                .any(|principal| {
                    principal
                        .caller
                        .names
                        .first()
                        .is_some_and(|name| name == arn)
                })
    }
}

/// A request IAM refused, with AWS's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub message: String,
}

/// Evaluates requests against the deployment's policies.
pub struct Iam {
    enforce: bool,
    by_key: HashMap<String, Arc<Principal>>,
    by_name: BTreeMap<String, Arc<Principal>>,
    user: Arc<Principal>,
    read_only: Arc<Principal>,
    macie: Arc<Principal>,
    macie_role: Arc<Principal>,
    events: Arc<Principal>,
    resource_policies: HashMap<PolicyTarget, (String, Arc<Policy>)>,
    /// The local KMS, once attached: key policies are then its current ones (a key policy can
    /// change, and keys made with the CLI have one), not the template's.
    kms: Option<Arc<Kms>>,
    usage: Mutex<report::Usage>,
}

fn role_principal(logical_id: &str, policies: Vec<(String, Policy)>) -> Principal {
    let role = crate::deployment::role_name(logical_id);
    let role_arn = crate::aws::role_arn(&role);
    let session = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{logical_id}");
    Principal {
        name: logical_id.to_owned(),
        caller: Caller {
            arn: session.clone(),
            names: vec![role_arn, session],
            account: ACCOUNT.into(),
            service: None,
        },
        policies,
    }
}

impl Iam {
    /// Reads every role and resource policy of the deployment; a document IAM would refuse
    /// fails the start, naming it.
    pub fn from_deployment(deployment: &Deployment, enforce: bool) -> Result<Self, String> {
        let mut by_key = HashMap::new();
        let mut by_name = BTreeMap::new();
        for (logical_id, policies) in &deployment.roles {
            let parsed = policies
                .iter()
                .map(|policy| {
                    Policy::parse(&policy.document, false)
                        .map(|parsed| (policy.name.clone(), parsed))
                        .map_err(|err| format!("{}: {err}", policy.name))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let principal = Arc::new(role_principal(logical_id, parsed));
            by_key.insert(access_key(logical_id), Arc::clone(&principal));
            by_name.insert(logical_id.clone(), principal);
        }
        let mut resource_policies = HashMap::new();
        for policy in &deployment.resource_policies {
            let parsed = Policy::parse(&policy.document, true)
                .map_err(|err| format!("{}: {err}", policy.logical_id))?;
            resource_policies.insert(
                policy.target.clone(),
                (policy.logical_id.clone(), Arc::new(parsed)),
            );
        }
        let everything = Policy::parse(
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
            false,
        )
        .expect("a valid policy");
        let user = Arc::new(Principal {
            name: "local user".into(),
            caller: Caller {
                arn: format!("arn:aws:iam::{ACCOUNT}:user/local"),
                names: vec![format!("arn:aws:iam::{ACCOUNT}:user/local")],
                account: ACCOUNT.into(),
                service: None,
            },
            policies: vec![("AdministratorAccess".into(), everything)],
        });
        let read_only_arn = format!("arn:aws:iam::{ACCOUNT}:user/local-readonly");
        let read_only = Arc::new(Principal {
            name: "local read-only user".into(),
            caller: Caller {
                arn: read_only_arn.clone(),
                names: vec![read_only_arn],
                account: ACCOUNT.into(),
                service: None,
            },
            policies: vec![(
                "ReadOnlyAccess".into(),
                Policy::parse(
                    &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                        "s3:Get*", "s3:List*", "sns:Get*", "sns:List*", "macie2:Get*",
                        "macie2:List*", "macie2:Describe*", "macie2:BatchGet*",
                        "states:Describe*", "states:Get*", "states:List*",
                        "kms:Describe*", "kms:Get*", "kms:List*",
                    ], "Resource": "*"}]}),
                    false,
                )
                .expect("a valid policy"),
            )],
        });
        let macie = Arc::new(Principal {
            name: MACIE_SERVICE.into(),
            caller: Caller {
                arn: MACIE_SERVICE.into(),
                names: Vec::new(),
                account: ACCOUNT.into(),
                service: Some(MACIE_SERVICE.into()),
            },
            policies: Vec::new(),
        });
        let events = Arc::new(Principal {
            name: EVENTS_SERVICE.into(),
            caller: Caller {
                arn: EVENTS_SERVICE.into(),
                names: Vec::new(),
                account: ACCOUNT.into(),
                service: Some(EVENTS_SERVICE.into()),
            },
            policies: Vec::new(),
        });
        // Macie analyses objects as its service-linked role, whose managed policy
        // (AmazonMacieServiceRolePolicy) reads any object and grants no KMS key: a key must allow
        // the role in its own policy.
        let macie_role = Arc::new(Principal {
            name: "AWSServiceRoleForAmazonMacie".into(),
            caller: Caller {
                arn: format!(
                    "arn:aws:sts::{ACCOUNT}:assumed-role/AWSServiceRoleForAmazonMacie/macie"
                ),
                names: vec![macie_service_linked_role()],
                account: ACCOUNT.into(),
                service: None,
            },
            policies: vec![(
                "AmazonMacieServiceRolePolicy".into(),
                Policy::parse(
                    &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                        "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging",
                        "s3:ListBucket", "s3:GetBucket*",
                    ], "Resource": "*"}]}),
                    false,
                )
                .expect("a valid policy"),
            )],
        });
        Ok(Self {
            enforce,
            by_key,
            by_name,
            user,
            read_only,
            macie,
            macie_role,
            events,
            resource_policies,
            kms: None,
            usage: Mutex::new(report::Usage {
                parameters: deployment.parameters.clone(),
                principals: BTreeMap::new(),
            }),
        })
    }

    /// The local KMS, once attached.
    pub fn kms(&self) -> Option<&Arc<Kms>> {
        self.kms.as_ref()
    }

    /// Reads key policies from `kms` from now on.
    pub fn with_kms(mut self, kms: Arc<Kms>) -> Self {
        self.kms = Some(kms);
        self
    }

    pub fn enforcing(&self) -> bool {
        self.enforce
    }

    /// The principal an access key belongs to: a role's, the read-only user's, or else the
    /// local user.
    pub fn principal_for_key(&self, access_key: Option<&str>) -> Arc<Principal> {
        if access_key == Some(READ_ONLY_ACCESS_KEY) {
            return Arc::clone(&self.read_only);
        }
        access_key
            .and_then(|key| self.by_key.get(key))
            .map_or_else(|| Arc::clone(&self.user), Arc::clone)
    }

    /// Whether this is the account's local user (any access key that is not a role's).
    pub fn is_local_user(&self, principal: &Principal) -> bool {
        std::ptr::eq(principal, Arc::as_ptr(&self.user))
    }

    /// A role by the template's logical id of its function or state machine.
    pub fn role(&self, logical_id: &str) -> Option<Arc<Principal>> {
        self.by_name.get(logical_id).cloned()
    }

    /// Macie acting as its service principal (writing discovery results).
    pub fn macie(&self) -> Arc<Principal> {
        Arc::clone(&self.macie)
    }

    /// Macie's service-linked role (analysing objects).
    pub fn macie_role(&self) -> Arc<Principal> {
        Arc::clone(&self.macie_role)
    }

    /// EventBridge acting as its service principal (sending to a queue).
    pub fn events_service(&self) -> Arc<Principal> {
        Arc::clone(&self.events)
    }

    /// Every role, for the report.
    pub fn roles(&self) -> impl Iterator<Item = &Arc<Principal>> {
        self.by_name.values()
    }

    fn resource_policy(
        &self,
        action: &str,
        resource: &str,
    ) -> Option<(Arc<Policy>, ResourcePolicyKind)> {
        let target = if let Some(rest) = resource.strip_prefix("arn:aws:s3:::") {
            PolicyTarget::Bucket(rest.split('/').next().unwrap_or_default().to_owned())
        } else if resource.starts_with("arn:aws:kms:") {
            if let Some(kms) = &self.kms {
                return kms
                    .policy(resource)
                    .map(|policy| (policy, ResourcePolicyKind::Required));
            }
            PolicyTarget::Key(resource.to_owned())
        } else if resource.starts_with("arn:aws:sns:") {
            PolicyTarget::Topic(resource.to_owned())
        } else if resource.starts_with("arn:aws:sqs:") {
            PolicyTarget::Queue(resource.to_owned())
        } else {
            return None;
        };
        let kind = if action.to_ascii_lowercase().starts_with("kms:") {
            ResourcePolicyKind::Required
        } else {
            ResourcePolicyKind::Either
        };
        self.resource_policies
            .get(&target)
            .map(|(_, policy)| (Arc::clone(policy), kind))
    }

    /// Authorizes one action on one resource. `context` holds the request's own condition
    /// keys; the principal's are added here. With enforcement off the decision is recorded and
    /// logged, and the request goes ahead.
    pub fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        mut context: Context,
    ) -> Result<(), Denied> {
        let resource = authorization::authorized_resource(action, resource);
        if let Some(role) = principal.caller.names.first() {
            context.insert("aws:principalarn".into(), vec![role.clone()]);
        }
        context.insert(
            "aws:principalaccount".into(),
            vec![principal.caller.account.clone()],
        );
        context
            .entry("aws:requestedregion".into())
            .or_insert_with(|| vec![REGION.to_owned()]);
        let identity: Vec<&Policy> = principal
            .policies
            .iter()
            .map(|(_, policy)| policy)
            .collect();
        // A key the template does not define (one named by parameter) has a policy unknown
        // here: only the identity side is checked for it.
        let resource_policy = self.resource_policy(action, resource);
        let request = Request {
            caller: &principal.caller,
            action,
            resource,
            context: &context,
        };
        let decision = evaluate::decide(
            &identity,
            resource_policy
                .as_ref()
                .map(|(policy, kind)| (policy.as_ref(), *kind)),
            &request,
        );
        let allowed = decision == Decision::Allowed;
        self.usage
            .lock()
            .expect("usage lock")
            .record(principal, &request, allowed);
        if allowed {
            return Ok(());
        }
        let denied = Denied {
            principal: principal.caller.arn.clone(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            message: format!(
                "User: {} is not authorized to perform: {action} on resource: {resource} {}",
                principal.caller.arn,
                decision.reason(action)
            ),
        };
        if self.enforce {
            tracing::warn!(principal = %principal.name, action, resource, "access denied");
            Err(denied)
        } else {
            tracing::warn!(principal = %principal.name, action, resource, "would be denied (enforcement is off)");
            Ok(())
        }
    }

    /// Authorizes `actions` on the key of the encrypted state machine `machine_arn`, which
    /// Step Functions takes on the principal's behalf.
    pub fn authorize_state_machine_key(
        &self,
        principal: &Principal,
        actions: &[&str],
        key: &str,
        machine_arn: &str,
        secure: bool,
    ) -> Result<(), Denied> {
        for action in actions {
            self.authorize(
                principal,
                action,
                key,
                state_machine_key_context(secure, machine_arn),
            )?;
        }
        Ok(())
    }

    /// What was used so far.
    pub fn usage(&self) -> report::Usage {
        self.usage.lock().expect("usage lock").clone()
    }
}
