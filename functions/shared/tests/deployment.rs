//! `template.yaml` against the code: every function the table knows is deployed from its crate,
//! gets exactly the environment it reads and exactly the IAM grants its calls need, and the state
//! machine's substitutions line up with the ASL.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use macie_pipeline::deployment::{Addendum, Bucket, Grant, Resource, functions};
use serde_norway::Value as Yaml;

use common::{asl_text, resources, root, tagged, template};

fn bucket(logical_id: &str) -> Bucket {
    [
        Bucket::Raw,
        Bucket::ScanStage,
        Bucket::ManualReview,
        Bucket::ScannedData,
        Bucket::Manifests,
    ]
    .into_iter()
    .find(|b| b.logical_id() == logical_id)
    .unwrap_or_else(|| panic!("{logical_id} is not a pipeline bucket"))
}

/// A bucket or key the stack creates unless a parameter names an existing one:
/// `!If [<condition>, <the created resource>, !Ref <parameter>]`.
fn created_unless_given(value: &Yaml, condition: &str, created: &str, given: &str) -> bool {
    let Some((tag, branches)) = tagged(value) else {
        return false;
    };
    if tag != "If" {
        return false;
    }
    let branches = branches.as_sequence().expect("!If takes a list");
    let name = |branch: &Yaml| tagged(branch).map(|(_, v)| v.as_str().unwrap().to_owned());
    branches[0].as_str() == Some(condition)
        && name(&branches[1]).is_some_and(|n| n == created)
        && name(&branches[2]).is_some_and(|n| n == given)
}

/// The discovery results bucket or key: the created resource, or else the parameter naming an
/// existing one.
fn created_or_given(value: &Yaml, created: &str, given: &str) -> bool {
    created_unless_given(value, "CreateDiscoveryResults", created, given)
}

/// Reads a policy `Resource` entry of the template into the table's terms.
fn resource(value: &Yaml) -> Resource {
    if value.as_str() == Some("*") {
        return Resource::Everything;
    }
    if is_bucket_key(value) {
        return Resource::BucketKey;
    }
    if created_or_given(
        value,
        "DiscoveryResultsKey.Arn",
        "DiscoveryResultsKmsKeyArn",
    ) {
        return Resource::DiscoveryResultsKey;
    }
    let (tag, inner) = tagged(value).unwrap_or_else(|| panic!("unexpected resource {value:?}"));
    if tag == "Sub"
        && let Some([text, variables]) = inner.as_sequence().map(Vec::as_slice)
    {
        // The raw bucket: the stack's, or the landing bucket RawBucketName names.
        if !variables["Raw"].is_null() {
            assert!(
                created_unless_given(
                    &variables["Raw"],
                    "CreateRawBucket",
                    "DataPipelineRawBucket",
                    "RawBucketName"
                ),
                "{variables:?}"
            );
            return match text.as_str().unwrap() {
                "arn:${AWS::Partition}:s3:::${Raw}" => Resource::Bucket(Bucket::Raw),
                "arn:${AWS::Partition}:s3:::${Raw}/*" => Resource::Objects(Bucket::Raw),
                other => panic!("unexpected raw bucket resource !Sub {other}"),
            };
        }
        assert!(
            created_or_given(
                &variables["Bucket"],
                "DiscoveryResultsBucket",
                "DiscoveryResultsBucketName"
            ),
            "{variables:?}"
        );
        return match text.as_str().unwrap() {
            "arn:${AWS::Partition}:s3:::${Bucket}" => Resource::DiscoveryResultsBucket,
            "arn:${AWS::Partition}:s3:::${Bucket}/*AWSLogs/${AWS::AccountId}/Macie/${AWS::Region}/*" => {
                Resource::DiscoveryResultsObjects
            }
            other => panic!("unexpected resource !Sub {other}"),
        };
    }
    let text = inner.as_str().expect("a string under the tag");
    match tag.as_str() {
        "GetAtt" if text == "FalsePositivePatterns.Arn" => return Resource::PatternAllowList,
        "GetAtt" if text == "StateMachineKey.Arn" => return Resource::StateMachineKey,
        "GetAtt" => bucket(text.strip_suffix(".Arn").expect("X.Arn")),
        "Ref" if text == "NotificationTopic" => return Resource::NotificationTopic,
        "Sub" => {
            for kind in Addendum::ALL {
                if text
                    == format!(
                        "${{DataPipelineManifestBucket.Arn}}/workflows/*/{}/*",
                        kind.directory()
                    )
                {
                    return Resource::ManifestAddenda(kind);
                }
            }
            if text == "${DataPipelineManifestBucket.Arn}/approvals/*" {
                return Resource::ApprovalRecords;
            }
            if text == "${DataPipelineManifestBucket.Arn}/false-positives/rules/*" {
                return Resource::FalsePositiveRules;
            }
            if text == "${DataPipelineManifestBucket.Arn}/false-positives/*" {
                return Resource::FalsePositiveRecords;
            }
            if let Some(id) = text
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix(".Arn}/*"))
            {
                return Resource::Objects(bucket(id));
            }
            if text.ends_with(":classification-job/*") {
                return Resource::MacieJobs;
            }
            if text
                == "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
            {
                return Resource::EventBus;
            }
            panic!("unexpected resource !Sub {text}")
        }
        _ => panic!("unexpected resource !{tag} {text}"),
    };
    Resource::Bucket(bucket(text.strip_suffix(".Arn").unwrap()))
}

fn function_resources() -> BTreeMap<String, Yaml> {
    resources(&template(), "AWS::Serverless::Function")
        .into_iter()
        .collect()
}

#[test]
fn the_template_deploys_exactly_the_functions_of_the_table() {
    let deployed: BTreeSet<String> = function_resources().into_keys().collect();
    let known: BTreeSet<String> = functions()
        .iter()
        .map(|f| f.logical_id.to_owned())
        .collect();
    assert_eq!(deployed, known);
}

#[test]
fn each_function_is_built_from_its_own_workspace_crate() {
    let workspace: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let members: Vec<&str> = workspace["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let deployed = function_resources();
    for function in functions() {
        let resource = &deployed[function.logical_id];
        assert_eq!(
            resource["Properties"]["CodeUri"].as_str(),
            Some(format!("./functions/{}", function.crate_dir).as_str()),
            "{}",
            function.logical_id
        );
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda")
        );
        assert!(members.contains(&format!("functions/{}", function.crate_dir).as_str()));
        let manifest: toml::Table = toml::from_str(
            &std::fs::read_to_string(
                root()
                    .join("functions")
                    .join(function.crate_dir)
                    .join("Cargo.toml"),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            manifest["package"]["name"].as_str(),
            Some(function.crate_dir)
        );
        let bins = manifest["bin"].as_array().expect("a [[bin]] section");
        assert_eq!(bins.len(), 1);
        assert_eq!(bins[0]["name"].as_str(), Some(function.crate_dir));
    }
}

#[test]
fn each_function_gets_exactly_the_environment_it_reads() {
    let deployed = function_resources();
    for function in functions() {
        let set: BTreeSet<String> =
            deployed[function.logical_id]["Properties"]["Environment"]["Variables"]
                .as_mapping()
                .map(|vars| {
                    vars.keys()
                        .map(|k| k.as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default();
        let read: BTreeSet<String> = function.variables.iter().map(|v| (*v).to_owned()).collect();
        assert_eq!(
            set, read,
            "{}: template environment vs variables read",
            function.logical_id
        );
    }
}

/// When a statement applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applies {
    Always,
    /// `!If [VersioningEnabled, statement, !Ref AWS::NoValue]`
    Versioned,
    /// `!If [EncryptWithKms, statement, !Ref AWS::NoValue]`
    Encrypted,
}

/// A policy statement, unconditional or under one of the two conditions a grant may take.
fn statement(entry: &Yaml) -> (&Yaml, Applies) {
    let Some((tag, branches)) = tagged(entry) else {
        return (entry, Applies::Always);
    };
    assert_eq!(tag, "If", "{entry:?}");
    let branches = branches.as_sequence().expect("!If takes a list");
    let applies = match branches[0].as_str() {
        Some("VersioningEnabled") => Applies::Versioned,
        Some("EncryptWithKms") => Applies::Encrypted,
        other => panic!("a grant under an unexpected condition {other:?}"),
    };
    let otherwise = tagged(&branches[2]).map(|(tag, value)| (tag, value.as_str()));
    assert_eq!(
        otherwise,
        Some(("Ref".to_owned(), Some("AWS::NoValue"))),
        "a conditional statement grants nothing without its condition"
    );
    (&branches[1], applies)
}

/// The pipeline buckets' key: the stack's, else the one given.
fn is_bucket_key(value: &Yaml) -> bool {
    let Some((tag, branches)) = tagged(value) else {
        return false;
    };
    if tag != "If" {
        return false;
    }
    let branches = branches.as_sequence().expect("!If takes a list");
    let name = |branch: &Yaml| tagged(branch).map(|(_, v)| v.as_str().unwrap().to_owned());
    branches[0].as_str() == Some("CreateBucketKey")
        && name(&branches[1]).is_some_and(|n| n == "BucketKey.Arn")
        && name(&branches[2]).is_some_and(|n| n == "BucketKmsKeyArn")
}

#[test]
fn each_function_is_granted_exactly_what_its_calls_need() {
    let deployed = function_resources();
    for function in functions() {
        let mut granted: BTreeSet<Grant> = BTreeSet::new();
        let mut granted_versioned: BTreeSet<Grant> = BTreeSet::new();
        let mut granted_encrypted: BTreeSet<Grant> = BTreeSet::new();
        for policy in deployed[function.logical_id]["Properties"]["Policies"]
            .as_sequence()
            .expect("inline policies")
        {
            for entry in policy["Statement"].as_sequence().expect("statements") {
                let (statement, applies) = statement(entry);
                assert_eq!(statement["Effect"].as_str(), Some("Allow"));
                if applies == Applies::Encrypted {
                    // S3 uses the key on the function's behalf; nothing else may.
                    let (tag, service) =
                        tagged(&statement["Condition"]["StringEquals"]["kms:ViaService"])
                            .expect("the bucket key is granted through S3 only");
                    assert_eq!(
                        (tag.as_str(), service.as_str()),
                        ("Sub", Some("s3.${AWS::Region}.amazonaws.com"))
                    );
                }
                let on_state_machine_key = statement["Resource"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|target| resource(target) == Resource::StateMachineKey);
                if on_state_machine_key {
                    let (tag, machine) = tagged(
                        &statement["Condition"]["StringEquals"]
                            ["kms:EncryptionContext:aws:states:stateMachineArn"],
                    )
                    .expect("the key is granted for the gate's state machine only");
                    assert_eq!(tag, "Sub");
                    assert_eq!(
                        machine.as_str(),
                        Some(
                            "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${StepFunctionName}"
                        )
                    );
                }
                let on_event_bus = statement["Resource"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|target| resource(target) == Resource::EventBus);
                if on_event_bus {
                    // The gate's own source, and the detail type the function puts, only.
                    let condition = &statement["Condition"]["StringEquals"];
                    assert_eq!(
                        condition["events:source"].as_str(),
                        Some(macie_pipeline::events::SOURCE),
                        "{}",
                        function.logical_id
                    );
                    assert_eq!(
                        condition["events:detail-type"].as_str(),
                        Some(macie_pipeline::events::DetailType::ReviewRequested.name()),
                        "{}",
                        function.logical_id
                    );
                }
                for action in statement["Action"].as_sequence().unwrap() {
                    for target in statement["Resource"].as_sequence().unwrap() {
                        let action: &'static str =
                            Box::leak(action.as_str().unwrap().to_owned().into_boxed_str());
                        let grants = match applies {
                            Applies::Always => &mut granted,
                            Applies::Versioned => &mut granted_versioned,
                            Applies::Encrypted => &mut granted_encrypted,
                        };
                        grants.insert((action, resource(target)));
                    }
                }
            }
        }
        let needed: BTreeSet<Grant> = function
            .calls
            .iter()
            .flat_map(|call| call.grants.iter().copied())
            .collect();
        assert_eq!(
            granted, needed,
            "{}: template grants vs what its calls need",
            function.logical_id
        );
        let needed_versioned: BTreeSet<Grant> = function
            .calls
            .iter()
            .flat_map(|call| call.versioned.iter().copied())
            .filter(|grant| !needed.contains(grant))
            .collect();
        assert_eq!(
            granted_versioned, needed_versioned,
            "{}: template grants under VersioningEnabled vs what its calls need on versioned \
             buckets",
            function.logical_id
        );
        let needed_encrypted: BTreeSet<Grant> = function.encrypted_grants().into_iter().collect();
        assert_eq!(
            granted_encrypted, needed_encrypted,
            "{}: template grants under EncryptWithKms vs what S3 needs of the key for its calls",
            function.logical_id
        );
    }
}

/// Every bucket the stack creates for the pipeline is versioned exactly when the parameter says
/// so, and then expires noncurrent versions and leftover delete markers.
#[test]
fn bucket_versioning_follows_the_parameter() {
    let template = template();
    let parameter = &template["Parameters"]["BucketVersioning"];
    assert_eq!(parameter["Default"].as_str(), Some("Disabled"));
    for bucket in [
        Bucket::Raw,
        Bucket::ScanStage,
        Bucket::ManualReview,
        Bucket::ScannedData,
        Bucket::Manifests,
    ] {
        let properties = &template["Resources"][bucket.logical_id()]["Properties"];
        let (tag, branches) = tagged(&properties["VersioningConfiguration"])
            .unwrap_or_else(|| panic!("{bucket:?} has no VersioningConfiguration"));
        assert_eq!(tag, "If");
        assert_eq!(branches[0].as_str(), Some("VersioningEnabled"));
        assert_eq!(branches[1]["Status"].as_str(), Some("Enabled"));
        let rules = properties["LifecycleConfiguration"]["Rules"]
            .as_sequence()
            .unwrap();
        let rule = |id: &str| {
            rules
                .iter()
                .find(|r| r["Id"].as_str() == Some(id))
                .unwrap_or_else(|| panic!("{bucket:?} has no lifecycle rule {id}"))
        };
        let noncurrent = rule("ExpireNoncurrentVersions");
        let (tag, days) =
            tagged(&noncurrent["NoncurrentVersionExpiration"]["NoncurrentDays"]).expect("a !Ref");
        assert_eq!(
            (tag.as_str(), days.as_str()),
            ("Ref", Some("NoncurrentVersionExpirationDays"))
        );
        assert_eq!(
            rule("RemoveExpiredDeleteMarkers")["ExpiredObjectDeleteMarker"].as_bool(),
            Some(true)
        );
    }
}

fn substitutions_in_asl() -> BTreeSet<String> {
    let text = asl_text();
    text.match_indices("${")
        .map(|(start, _)| {
            let end = text[start..].find('}').unwrap() + start;
            text[start + 2..end].to_owned()
        })
        .collect()
}

/// Every statement of the state machine's role, which the state machine names as its own.
fn state_machine_statements() -> Vec<Yaml> {
    let template = template();
    let machines = resources(&template, "AWS::StepFunctions::StateMachine");
    let (tag, role) = tagged(&machines[0].1["Properties"]["RoleArn"]).expect("a role");
    assert_eq!(tag, "GetAtt");
    let role = role.as_str().unwrap().trim_end_matches(".Arn");
    template["Resources"][role]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|policy| {
            policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .unwrap()
                .clone()
        })
        .collect()
}

#[test]
fn asl_substitutions_and_the_template_define_the_same_names() {
    let machines = resources(&template(), "AWS::StepFunctions::StateMachine");
    assert_eq!(machines.len(), 1);
    let properties = &machines[0].1["Properties"];
    assert_eq!(
        properties["DefinitionS3Location"].as_str(),
        Some("statemachine/macie_pipeline_scan.asl.json")
    );
    let defined: BTreeSet<String> = properties["DefinitionSubstitutions"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(substitutions_in_asl(), defined);
}

#[test]
fn the_state_machine_may_invoke_exactly_the_functions_it_uses() {
    let asl = common::asl();
    let invoked: BTreeSet<String> = asl["States"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|state| state["Parameters"]["FunctionName"].as_str())
        .map(|name| name.trim_start_matches("sub-").to_owned())
        .collect();
    let allowed: BTreeSet<String> = state_machine_statements()
        .into_iter()
        .filter(|s| {
            s["Action"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|a| a.as_str() == Some("lambda:InvokeFunction"))
        })
        .flat_map(|s| s["Resource"].as_sequence().unwrap().clone())
        .map(|resource| {
            let (tag, text) = tagged(&resource).expect("a !GetAtt");
            assert_eq!(tag, "GetAtt");
            text.as_str().unwrap().trim_end_matches(".Arn").to_owned()
        })
        .collect();
    assert_eq!(invoked, allowed);
    let deployed: BTreeSet<String> = functions()
        .iter()
        .map(|f| f.logical_id.to_owned())
        .filter(|id| id != "ReceiveApprovalDecision")
        .collect();
    assert_eq!(
        invoked, deployed,
        "every step function is used by the state machine"
    );
}

/// The Distributed Maps run as this state machine's own child executions and list buckets with
/// its role: it may list exactly the buckets their ItemReaders name, and start, describe and
/// stop executions of itself, by the name the template gives it.
#[test]
fn the_state_machine_may_list_what_its_maps_read_and_run_its_own_children() {
    let asl = common::asl();
    let machines = resources(&template(), "AWS::StepFunctions::StateMachine");
    let properties = &machines[0].1["Properties"];
    let substitutions = &properties["DefinitionSubstitutions"];
    let read: BTreeSet<Bucket> = asl["States"]
        .as_object()
        .unwrap()
        .values()
        .filter(|state| state["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED")
        .map(|state| {
            let name = state["ItemReader"]["Parameters"]["Bucket"]
                .as_str()
                .unwrap()
                .trim_start_matches("sub-");
            let value = &substitutions[name];
            if created_unless_given(
                value,
                "CreateRawBucket",
                "DataPipelineRawBucket",
                "RawBucketName",
            ) {
                return Bucket::Raw;
            }
            let (tag, bucket) = tagged(value).expect("a !Ref to a bucket");
            assert_eq!(tag, "Ref");
            self::bucket(bucket.as_str().unwrap())
        })
        .collect();
    assert_eq!(read.len(), 2, "{read:?}");

    let statements = state_machine_statements();
    let granted = |action: &str| -> Vec<&Yaml> {
        statements
            .iter()
            .filter(|s| {
                s["Action"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|a| a.as_str() == Some(action))
            })
            .flat_map(|s| s["Resource"].as_sequence().unwrap())
            .collect()
    };
    let listed: BTreeSet<Bucket> = granted("s3:ListBucket")
        .into_iter()
        .map(|target| match resource(target) {
            Resource::Bucket(bucket) => bucket,
            other => panic!("the state machine lists {other:?}"),
        })
        .collect();
    assert_eq!(listed, read);

    let (tag, name) = tagged(&properties["StateMachineName"]).expect("a named state machine");
    assert_eq!(
        (tag.as_str(), name.as_str()),
        ("Ref", Some("StepFunctionName"))
    );
    let sub = |resources: Vec<&Yaml>| -> Vec<String> {
        resources
            .into_iter()
            .map(|r| {
                let (tag, text) = tagged(r).unwrap();
                assert_eq!(tag, "Sub");
                text.as_str().unwrap().to_owned()
            })
            .collect()
    };
    let prefix = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}";
    assert_eq!(
        sub(granted("states:StartExecution")),
        vec![format!("{prefix}:stateMachine:${{StepFunctionName}}")]
    );
    for action in ["states:DescribeExecution", "states:StopExecution"] {
        assert_eq!(
            sub(granted(action)),
            vec![format!("{prefix}:execution:${{StepFunctionName}}/*")],
            "{action}"
        );
    }
}

#[test]
fn the_approval_api_routes_exactly_the_paths_the_handler_answers() {
    use macie_pipeline::approval::links::Entry;
    let template = template();
    let function = &template["Resources"]["ReceiveApprovalDecision"];
    let routes: BTreeSet<(String, String)> = function["Properties"]["Events"]
        .as_mapping()
        .expect("Events")
        .values()
        .filter(|event| event["Type"].as_str() == Some("Api"))
        .map(|event| {
            let properties = &event["Properties"];
            (
                properties["Method"].as_str().unwrap().to_owned(),
                properties["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [Entry::Review, Entry::ReleaseAll, Entry::DeleteAll]
        .into_iter()
        .map(Entry::path_segment)
        .chain([macie_pipeline::approval::false_positives::PATH_SEGMENT])
        .flat_map(|segment| {
            ["get", "post"].map(|method| (method.to_owned(), format!("/{segment}")))
        })
        .collect();
    assert_eq!(routes, expected);
}

#[test]
fn the_manifest_bucket_expires_records_by_prefix_and_never_the_false_positive_rules() {
    use macie_pipeline::approval::record::PREFIX as APPROVALS;
    use macie_pipeline::false_positives::rules::PREFIX as RULES;
    let template = template();
    let rules =
        template["Resources"]["DataPipelineManifestBucket"]["Properties"]["LifecycleConfiguration"]
            ["Rules"]
            .as_sequence()
            .expect("lifecycle rules");
    let expiring: Vec<&Yaml> = rules
        .iter()
        .filter(|rule| !rule["ExpirationInDays"].is_null())
        .collect();
    let prefixes: BTreeSet<&str> = expiring
        .iter()
        .map(|rule| {
            rule["Prefix"]
                .as_str()
                .expect("every expiring rule names its prefix: one without would expire the rules")
        })
        .collect();
    assert_eq!(prefixes, BTreeSet::from(["workflows/", APPROVALS]));
    assert!(prefixes.iter().all(|p| !RULES.starts_with(p)));
    let decisions = expiring
        .iter()
        .find(|rule| rule["Prefix"].as_str() == Some(APPROVALS))
        .unwrap();
    assert_eq!(
        tagged(&decisions["ExpirationInDays"])
            .map(|(tag, v)| (tag, v.as_str().unwrap().to_owned())),
        Some(("Ref".to_owned(), "DecisionRecordRetentionDays".to_owned()))
    );
}
