//! Least privilege, shown: what each principal was granted, what it used, and which grants no
//! request needed. A grant is one action pattern on one resource pattern of one statement of a
//! role's policies; it is used when an allowed request matched both. A stack records its usage
//! in its data directory (`iam-usage.json`) as it runs, and `iam report` merges any number of
//! such files, from one run or from the whole test suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::iam::evaluate::{self, Request};
use crate::iam::policy::{Effect, Patterns};
use crate::iam::{Iam, Principal};

/// Requests per action, and the grants that allowed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalUsage {
    /// Action -> [allowed, denied].
    pub actions: BTreeMap<String, [u64; 2]>,
    /// Grant keys (`action pattern | resource pattern`) that allowed a request.
    pub grants_used: BTreeSet<String>,
}

/// One stack's usage: under which template parameters, by principal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub parameters: BTreeMap<String, String>,
    pub principals: BTreeMap<String, PrincipalUsage>,
}

/// A grant's key, the same whichever parameters dropped or kept the statements around it.
pub fn grant_key(action: &str, resource: &str) -> String {
    format!("{action} | {resource}")
}

fn items(patterns: &Patterns) -> Vec<String> {
    match patterns {
        Patterns::Only(items) => items.clone(),
        Patterns::Except(items) => vec![format!("not {}", items.join(", "))],
    }
}

fn matching(patterns: &Patterns, value: &str, fold: bool) -> Vec<String> {
    match patterns {
        Patterns::Only(items) => items
            .iter()
            .filter(|item| evaluate::wildcard(item, value, fold))
            .cloned()
            .collect(),
        Patterns::Except(_) => items(patterns),
    }
}

/// A principal's grants: (grant key, the policy it is in).
pub fn grants(principal: &Principal) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, policy) in &principal.policies {
        for statement in policy
            .statements
            .iter()
            .filter(|s| s.effect == Effect::Allow)
        {
            for action in items(&statement.actions) {
                for resource in items(&statement.resources) {
                    out.push((grant_key(&action, &resource), name.clone()));
                }
            }
        }
    }
    out
}

impl Usage {
    /// Counts a request, and on an allow, the grants that matched it.
    pub fn record(&mut self, principal: &Principal, request: &Request<'_>, allowed: bool) {
        let usage = self.principals.entry(principal.name.clone()).or_default();
        let counts = usage.actions.entry(request.action.to_owned()).or_default();
        counts[usize::from(!allowed)] += 1;
        if !allowed {
            return;
        }
        for (_, policy) in &principal.policies {
            for statement in policy
                .statements
                .iter()
                .filter(|s| s.effect == Effect::Allow)
            {
                if !evaluate::applies(statement, request) {
                    continue;
                }
                for action in matching(&statement.actions, request.action, true) {
                    for resource in matching(&statement.resources, request.resource, false) {
                        usage.grants_used.insert(grant_key(&action, &resource));
                    }
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Usage) {
        for (name, theirs) in &other.principals {
            let ours = self.principals.entry(name.clone()).or_default();
            for (action, [allowed, denied]) in &theirs.actions {
                let counts = ours.actions.entry(action.clone()).or_default();
                counts[0] += allowed;
                counts[1] += denied;
            }
            ours.grants_used.extend(theirs.grants_used.iter().cloned());
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|err| err.to_string())?;
        std::fs::write(path, text).map_err(|err| format!("{}: {err}", path.display()))
    }

    pub fn read(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
    }
}

/// Why a grant stays although no request of the suite uses it.
#[derive(Debug, Clone, Deserialize)]
pub struct Reason {
    /// A principal's logical id, or `*`.
    pub principal: String,
    /// Wildcard patterns over the grant's action and resource, as written in the policy.
    pub action: String,
    #[serde(default = "any")]
    pub resource: String,
    pub reason: String,
}

fn any() -> String {
    "*".into()
}

/// The kept-but-unused grants and their reasons, from `unused-grants.yaml`.
pub fn reasons() -> Vec<Reason> {
    serde_norway::from_str(include_str!("unused-grants.yaml"))
        .expect("unused-grants.yaml is a list of principal, action, resource, reason")
}

/// One principal's lines of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalReport {
    pub principal: String,
    pub arn: String,
    /// Action -> [allowed, denied].
    pub used: BTreeMap<String, [u64; 2]>,
    /// Grants no request used, with the reason they stay where there is one.
    pub unused: Vec<UnusedGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnusedGrant {
    pub grant: String,
    pub policy: String,
    pub reason: Option<String>,
}

/// The report over `usage` for the roles of each `iam` (one per parameter set seen).
pub fn build(iams: &[Iam], usage: &Usage) -> Vec<PrincipalReport> {
    let reasons = reasons();
    let mut by_principal: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    for iam in iams {
        for principal in iam.roles() {
            let entry = by_principal
                .entry(principal.name.clone())
                .or_insert_with(|| (principal.caller.arn.clone(), BTreeMap::new()));
            for (grant, policy) in grants(principal) {
                entry.1.entry(grant).or_insert(policy);
            }
        }
    }
    let empty = PrincipalUsage::default();
    by_principal
        .into_iter()
        .map(|(name, (arn, granted))| {
            let used = usage.principals.get(&name).unwrap_or(&empty);
            let unused = granted
                .into_iter()
                .filter(|(grant, _)| !used.grants_used.contains(grant))
                .map(|(grant, policy)| {
                    let (action, resource) = grant.split_once(" | ").unwrap_or((&grant, ""));
                    let reason = reasons
                        .iter()
                        .find(|r| {
                            evaluate::wildcard(&r.principal, &name, false)
                                && evaluate::wildcard(&r.action, action, true)
                                && evaluate::wildcard(&r.resource, resource, false)
                        })
                        .map(|r| r.reason.clone());
                    UnusedGrant {
                        grant,
                        policy,
                        reason,
                    }
                })
                .collect();
            PrincipalReport {
                principal: name,
                arn,
                used: used.actions.clone(),
                unused,
            }
        })
        .collect()
}

/// The report as text.
pub fn render(reports: &[PrincipalReport]) -> String {
    let mut out = String::new();
    for report in reports {
        out.push_str(&format!("{} ({})\n", report.principal, report.arn));
        if report.used.is_empty() {
            out.push_str("  used: nothing\n");
        }
        for (action, [allowed, denied]) in &report.used {
            out.push_str(&format!("  used    {action}: {allowed} allowed"));
            if *denied > 0 {
                out.push_str(&format!(", {denied} DENIED"));
            }
            out.push('\n');
        }
        for unused in &report.unused {
            match &unused.reason {
                Some(reason) => {
                    out.push_str(&format!("  unused  {} (kept: {reason})\n", unused.grant))
                }
                None => out.push_str(&format!(
                    "  UNUSED  {} in {}: no request needed it and no reason is given\n",
                    unused.grant, unused.policy
                )),
            }
        }
    }
    out
}
