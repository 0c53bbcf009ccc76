//! `statemachine/macie_pipeline_scan.asl.json` read as a graph: it fails closed (no default
//! branch and no error releases data, a stopped job never restarts the scan, every failure is
//! announced), it retries and catches what the handlers raise, and every task's payload is one
//! its handler accepts.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use macie_pipeline::PipelineError;
use macie_pipeline::handlers::{
    check_macie_status, delete_manual_review_files, get_findings_count, move_all_scan_stage_files,
    move_to_scanned_data_files, trigger_macie_scan, trigger_manual_approval,
};
use macie_pipeline::macie::job::JobState;
use serde_json::{Value, json};

/// States that move data towards scanned-data.
const RELEASING: &[&str] = &[
    "moveAllScanStageS3Files",
    "routeMap",
    "prepareManualApproval",
    "moveToScannedDataS3Files",
];

fn states() -> BTreeMap<String, Value> {
    common::asl()["States"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, state)| (name.clone(), state.clone()))
        .collect()
}

/// Transitions out of `state`: (target, label). Labels say why: `next`, `default`, `catch`, or
/// the Choice rule as JSON.
fn transitions(state: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(next) = state["Next"].as_str() {
        out.push((next.to_owned(), "next".to_owned()));
    }
    if let Some(default) = state["Default"].as_str() {
        out.push((default.to_owned(), "default".to_owned()));
    }
    for rule in state["Choices"].as_array().into_iter().flatten() {
        let mut condition = rule.clone();
        condition.as_object_mut().unwrap().remove("Next");
        out.push((
            rule["Next"].as_str().unwrap().to_owned(),
            condition.to_string(),
        ));
    }
    for catcher in state["Catch"].as_array().into_iter().flatten() {
        out.push((
            catcher["Next"].as_str().unwrap().to_owned(),
            "catch".to_owned(),
        ));
    }
    out
}

fn reachable_from(start: &str, states: &BTreeMap<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(name) = queue.pop_front() {
        for (target, _) in transitions(&states[&name]) {
            if seen.insert(target.clone()) {
                queue.push_back(target);
            }
        }
    }
    seen
}

/// Every (source, label) that leads into `target`.
fn into(target: &str, states: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    states
        .iter()
        .flat_map(|(name, state)| {
            transitions(state)
                .into_iter()
                .filter(|(to, _)| to == target)
                .map(move |(_, label)| (name.clone(), label))
        })
        .collect()
}

fn is_lambda_task(state: &Value) -> bool {
    state["Resource"]
        .as_str()
        .is_some_and(|r| r.starts_with("arn:aws:states:::lambda:invoke"))
}

#[test]
fn every_transition_exists_and_every_state_is_reachable() {
    let states = states();
    let start = common::asl()["StartAt"].as_str().unwrap().to_owned();
    for (name, state) in &states {
        for (target, _) in transitions(state) {
            assert!(states.contains_key(&target), "{name} -> missing {target}");
        }
        let terminal = matches!(state["Type"].as_str(), Some("Succeed" | "Fail"))
            || state["End"] == json!(true);
        assert!(
            terminal || !transitions(state).is_empty(),
            "{name} goes nowhere"
        );
    }
    let reachable = reachable_from(&start, &states);
    let all: BTreeSet<String> = states.keys().cloned().collect();
    assert_eq!(reachable, all, "unreachable states");
}

#[test]
fn no_choice_default_releases_data() {
    for (name, state) in states() {
        if let Some(default) = state["Default"].as_str() {
            assert!(
                !RELEASING.contains(&default),
                "{name}'s Default goes to {default}"
            );
        }
    }
}

#[test]
fn a_stopped_or_unknown_job_never_restarts_the_scan() {
    // The reference's Choice default sent CANCELLED and USER_PAUSED back to triggerMacieScan.
    let states = states();
    let after_status = reachable_from("checkMacieStatus", &states);
    assert!(!after_status.contains("triggerMacieScan"));
    let choice = &states["isMacieStatusCompleteChoice"];
    let stopped = choice["Choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["StringEquals"] == "STOPPED")
        .expect("an explicit branch for stopped jobs");
    assert_eq!(stopped["Next"], "notifyMacieJobStopped");
    assert_eq!(states["notifyMacieJobStopped"]["Next"], "macieJobStopped");
    assert_eq!(states["macieJobStopped"]["Type"], "Fail");
}

#[test]
fn data_is_released_only_after_a_complete_scan_or_an_approval() {
    let states = states();
    // Findings are read only after the status check said COMPLETE.
    assert_eq!(
        into("getMacieFindingsCount", &states),
        vec![(
            "isMacieStatusCompleteChoice".to_owned(),
            json!({"Variable": "$.job.Payload.status", "StringEquals": "COMPLETE"}).to_string()
        )]
    );
    // Routing starts only from the manifest of findings and discovery results (or its own loop).
    for (source, label) in into("moveAllScanStageS3Files", &states) {
        assert!(
            source == "getMacieFindingsCount"
                || (source == "moveAllScanStageChoice" && label.contains("MORE"))
                || source == "routeMapped",
            "routing entered from {source} ({label})"
        );
    }
    // The Map path routes only when routing asked for it, and reports back to routing.
    let fan_out =
        json!({"Variable": "$.routing.Payload.status", "StringEquals": "FAN_OUT"}).to_string();
    assert_eq!(
        into("routeMap", &states),
        vec![("moveAllScanStageChoice".to_owned(), fan_out)]
    );
    assert_eq!(
        into("routeMapped", &states),
        vec![("routeMap".to_owned(), "next".to_owned())]
    );
    // The approval request goes out only once routing is done and held something (after a
    // notice of older versions kept aside, if routing kept any).
    let done = json!({"Variable": "$.routing.Payload.status", "StringEquals": "DONE"}).to_string();
    for (source, label) in into("isSensitiveDataFoundChoice", &states) {
        assert!(
            (source == "moveAllScanStageChoice" && label == done)
                || source == "notifyRoutingSuperseded",
            "asked for review from {source} ({label})"
        );
    }
    for (source, label) in into("notifyRoutingSuperseded", &states) {
        assert!(
            source == "moveAllScanStageChoice" && label.contains(&done),
            "{source} ({label})"
        );
    }
    let held = json!({"Variable": "$.routing.Payload.awaitingReview", "NumericGreaterThan": 0})
        .to_string();
    assert_eq!(
        into("triggerManualApproval", &states),
        vec![("isSensitiveDataFoundChoice".to_owned(), held)]
    );
    // The release runs only after the review: every object decided, or the review timed out
    // (the function then releases only what was decided for release; see the e2e tests).
    for (source, label) in into("moveToScannedDataS3Files", &states) {
        let after_review = ["reviewDecided", "reviewTimedOutDeny", "reviewTimedOutHold"]
            .contains(&source.as_str())
            && label == "next";
        let looping = source == "moveToScannedDataChoice" && label.contains("MORE");
        assert!(after_review || looping, "released from {source} ({label})");
    }
    let decided = json!({"Variable": "$.decision.action", "StringEquals": "decided"}).to_string();
    assert_eq!(
        into("reviewDecided", &states),
        vec![("manualApprovalChoice".to_owned(), decided)]
    );
    assert_eq!(
        into("manualApprovalChoice", &states),
        vec![("triggerManualApproval".to_owned(), "next".to_owned())]
    );
    for pass in ["reviewTimedOutDeny", "reviewTimedOutHold"] {
        for (source, _) in into(pass, &states) {
            assert_eq!(source, "approvalTimeoutActionChoice", "{pass}");
        }
    }
    let timed_out = states["triggerManualApproval"]["Catch"][0].clone();
    assert_eq!(timed_out["ErrorEquals"], json!(["States.Timeout"]));
    assert_eq!(timed_out["Next"], "approvalTimeoutActionChoice");
    assert_eq!(
        into("approvalTimeoutActionChoice", &states),
        vec![("triggerManualApproval".to_owned(), "catch".to_owned())]
    );
}

/// A catch-all leads to the failure notice through a Pass that names the step which failed, so
/// the email, the event and the execution's cause can say which step it was.
fn assert_failure_notice(states: &BTreeMap<String, Value>, next: &Value, step: &str) {
    let next = next.as_str().expect("a Next");
    let named = &states[next];
    assert_eq!(named["Type"], "Pass", "{step} is caught by {next}");
    assert_eq!(named["Result"]["name"], step, "{next}");
    assert!(named["Result"]["doing"].is_string(), "{next}");
    assert_eq!(named["ResultPath"], "$.failedStep", "{next}");
    assert_eq!(named["Next"], "describeFailure", "{next}");
}

#[test]
fn every_failure_is_described_in_a_sentence_before_it_is_announced() {
    let states = states();
    // Every way out of describeFailure sets $.failure and reaches notifyFailure.
    let mut pending = vec!["describeFailure".to_owned()];
    let mut described = BTreeSet::new();
    while let Some(name) = pending.pop() {
        let state = &states[&name];
        match state["Type"].as_str().unwrap() {
            "Choice" => {
                for rule in state["Choices"].as_array().unwrap() {
                    pending.push(rule["Next"].as_str().unwrap().to_owned());
                }
                pending.push(state["Default"].as_str().unwrap().to_owned());
            }
            "Pass" if state["ResultPath"] == "$.failure" => {
                assert_eq!(state["Next"], "notifyFailure", "{name}");
                let message = state["Parameters"]["message.$"].as_str().unwrap();
                assert!(message.starts_with("States.Format("), "{name}");
                assert!(message.contains("$.failedStep.name"), "{name}");
                described.insert(name);
            }
            "Pass" => pending.push(state["Next"].as_str().unwrap().to_owned()),
            other => panic!("{name} is a {other} between describeFailure and notifyFailure"),
        }
    }
    assert_eq!(described.len(), 3, "{described:?}");
    let notice = states["notifyFailure"]["Parameters"]["Message.$"]
        .as_str()
        .unwrap();
    assert!(notice.contains("$.failure.message"), "{notice}");
    assert!(!notice.contains("JsonToString($.error)"), "{notice}");
    assert_eq!(states["runFailed"]["CausePath"], "$.failure.message");
}

#[test]
fn every_lambda_task_retries_transient_errors_and_catches_the_rest() {
    for (name, state) in states().into_iter().filter(|(_, s)| is_lambda_task(s)) {
        let retried: BTreeSet<&str> = state["Retry"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no Retry"))
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
            .map(|e| e.as_str().unwrap())
            .collect();
        for needed in PipelineError::RETRYABLE_NAMES
            .iter()
            .chain(&["Lambda.ServiceException", "Lambda.TooManyRequestsException"])
        {
            assert!(retried.contains(needed), "{name} does not retry {needed}");
        }
        let catchers = state["Catch"].as_array().unwrap();
        let last = catchers.last().unwrap();
        assert_eq!(last["ErrorEquals"], json!(["States.ALL"]), "{name}");
        assert_failure_notice(&states(), &last["Next"], &name);
        assert_eq!(last["ResultPath"], "$.error", "{name}");
    }
}

#[test]
fn late_discovery_results_are_waited_for_a_bounded_time_then_fail_the_run() {
    let states = states();
    let state = &states["getMacieFindingsCount"];
    let retriers = state["Retry"].as_array().unwrap();
    let wait = retriers
        .iter()
        .find(|r| r["ErrorEquals"] == json!([PipelineError::RESULTS_PENDING_NAME]))
        .expect("a retrier of its own for results not written yet");
    let (interval, attempts) = (
        wait["IntervalSeconds"].as_u64().unwrap(),
        wait["MaxAttempts"].as_u64().unwrap(),
    );
    assert_eq!(wait["BackoffRate"], 1.0);
    let total = interval * attempts;
    assert!((60..=1800).contains(&total), "waits {total} s in all");
    // After the last attempt the error reaches the catch-all and the failure notification.
    assert_eq!(state["Catch"][0]["ErrorEquals"], json!(["States.ALL"]));
    assert_failure_notice(&states, &state["Catch"][0]["Next"], "getMacieFindingsCount");
}

#[test]
fn error_names_in_retry_and_catch_exist() {
    for (name, state) in states() {
        for field in ["Retry", "Catch"] {
            for entry in state[field].as_array().into_iter().flatten() {
                for error in entry["ErrorEquals"].as_array().unwrap() {
                    let error = error.as_str().unwrap();
                    assert!(
                        error.starts_with("States.")
                            || error.starts_with("Lambda.")
                            || PipelineError::ALL_NAMES.contains(&error),
                        "{name} names unknown error {error}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_failure_is_announced_before_the_run_fails() {
    let states = states();
    for (name, state) in &states {
        if state["Type"] != "Fail" {
            continue;
        }
        for (source, _) in into(name, &states) {
            assert_eq!(
                states[&source]["Resource"], "arn:aws:states:::sns:publish",
                "{name} is reached from {source} without a notification"
            );
        }
    }
}

#[test]
fn the_approval_waits_for_a_callback_with_a_timeout_and_a_default() {
    let states = states();
    let approval = &states["triggerManualApproval"];
    assert_eq!(
        approval["Resource"],
        "arn:aws:states:::lambda:invoke.waitForTaskToken"
    );
    assert_eq!(
        approval["Parameters"]["Payload"]["taskToken.$"],
        "$$.Task.Token"
    );
    assert_eq!(
        approval["TimeoutSecondsPath"],
        "$.config.approvalTimeoutSeconds"
    );
    let timeout = &approval["Catch"].as_array().unwrap()[0];
    assert_eq!(timeout["ErrorEquals"], json!(["States.Timeout"]));
    assert_eq!(timeout["Next"], "approvalTimeoutActionChoice");
    // An unknown configured action holds the objects nobody decided.
    assert_eq!(
        states["approvalTimeoutActionChoice"]["Default"],
        "reviewTimedOutHold"
    );
    assert_eq!(states["reviewTimedOutHold"]["Result"], "keep");
    assert_eq!(states["reviewTimedOutDeny"]["Result"], "delete");
    // Objects still undecided after a timeout that holds fail the run, after the notice.
    assert_eq!(
        states["notifyApprovalTimeoutHold"]["Next"],
        "approvalTimedOut"
    );
    assert_eq!(states["approvalTimedOut"]["Type"], "Fail");
}

#[test]
fn settings_come_from_definition_substitutions() {
    let text = common::asl_text();
    assert!(text.contains("States.StringToJson('${PollIntervalSeconds}')"));
    assert!(text.contains("States.StringToJson('${ApprovalTimeoutSeconds}')"));
    assert!(text.contains("\"approvalTimeoutAction\": \"${ApprovalTimeoutAction}\""));
    let states = states();
    assert_eq!(
        states["pollForCompletionWait"]["SecondsPath"],
        "$.config.pollIntervalSeconds"
    );
}

/// A plausible value for each path a task's Parameters read.
fn sample(path: &str) -> Value {
    let tally = json!({"moved": 3, "movedBytes": 30, "heldForReview": 1, "deleted": 0,
        "deferred": 0, "vanished": 0, "rejected": 0, "rejections": []});
    match path {
        "$$.Execution.Input" => json!({"id": "wf-1", "source": "aws.events"}),
        "$$.Execution.Name" => json!("exec-1"),
        "$$.State.RetryCount" => json!(0),
        "$$.Task.Token" => json!("AAAA+/token=="),
        "$$.State.EnteredTime" => json!("2026-11-28T10:00:00.000Z"),
        "$.scan.Payload" | "$.routing.Payload" | "$.release.Payload" | "$.deletion.Payload" => {
            Value::Null
        }
        "$.undecided" => json!("keep"),
        "$.scan.Payload.workflowId" => json!("wf-1"),
        "$.scan.Payload.jobId" => json!("0123456789abcdef0123456789abcdef"),
        "$.findings.Payload.manifest" => {
            json!({"bucket": "manifests", "key": "workflows/wf-1/j/findings.json"})
        }
        "$.routing.Payload.tally" => tally,
        "$.config.approvalTimeoutSeconds" => json!(432000),
        "$.config.approvalTimeoutAction" => json!("hold"),
        "$.config.movePath" => json!("Loop"),
        other => panic!("no sample for {other}; add one"),
    }
}

/// The payload a task sends, with sample values for its paths.
fn payload(template: &Value) -> Value {
    match template {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| match key.strip_suffix(".$") {
                    Some(key) => (key.to_owned(), sample(value.as_str().unwrap())),
                    None => (key.clone(), payload(value)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn accepts<T: serde::de::DeserializeOwned>(state: &str) {
    let states = states();
    let template = &states[state]["Parameters"]["Payload"];
    let body = payload(template);
    if let Err(err) = serde_json::from_value::<T>(body.clone()) {
        panic!(
            "{state}'s payload {body} is not a {}: {err}",
            std::any::type_name::<T>()
        );
    }
}

#[test]
fn every_task_payload_is_accepted_by_its_handler() {
    accepts::<trigger_macie_scan::TriggerInput>("triggerMacieScan");
    accepts::<check_macie_status::StatusInput>("checkMacieStatus");
    accepts::<get_findings_count::FindingsInput>("getMacieFindingsCount");
    accepts::<move_all_scan_stage_files::RouteInput>("moveAllScanStageS3Files");
    accepts::<trigger_manual_approval::ApprovalInput>("triggerManualApproval");
    accepts::<move_to_scanned_data_files::ReleaseInput>("moveToScannedDataS3Files");
    accepts::<delete_manual_review_files::DeleteInput>("deleteManualReviewS3Files");
}

/// Values a Choice compares `variable` with.
fn choice_values(variable: &str) -> BTreeSet<String> {
    fn collect(rule: &Value, variable: &str, out: &mut BTreeSet<String>) {
        if rule["Variable"] == variable
            && let Some(value) = rule["StringEquals"].as_str()
        {
            out.insert(value.to_owned());
        }
        for nested in rule["Or"]
            .as_array()
            .into_iter()
            .chain(rule["And"].as_array())
            .flatten()
        {
            collect(nested, variable, out);
        }
    }
    let mut out = BTreeSet::new();
    for state in states().values() {
        for rule in state["Choices"].as_array().into_iter().flatten() {
            collect(rule, variable, &mut out);
        }
    }
    out
}

#[test]
fn choices_compare_with_the_statuses_handlers_emit() {
    use macie_pipeline::s3::pass::Tally;
    use macie_pipeline::workflow::WorkflowId;
    use trigger_macie_scan::ScanProgress;
    let id = WorkflowId::parse("wf").unwrap();
    let emitted = |values: Vec<Value>| -> BTreeSet<String> {
        values
            .iter()
            .map(|v| v["status"].as_str().unwrap().to_owned())
            .collect()
    };
    let scan = emitted(vec![
        serde_json::to_value(ScanProgress::Moving {
            workflow_id: id.clone(),
            resume_after: None,
            tally: Tally::default(),
        })
        .unwrap(),
        serde_json::to_value(ScanProgress::ReadyToScan {
            workflow_id: id.clone(),
            tally: Tally::default(),
        })
        .unwrap(),
        serde_json::to_value(ScanProgress::JobStarted {
            workflow_id: id.clone(),
            job_id: "j".into(),
            tally: Tally::default(),
        })
        .unwrap(),
        serde_json::to_value(ScanProgress::NothingToScan {
            workflow_id: id.clone(),
            tally: Tally::default(),
        })
        .unwrap(),
        serde_json::to_value(ScanProgress::FanOut {
            workflow_id: id,
            tally: Tally::default(),
        })
        .unwrap(),
    ]);
    assert_eq!(choice_values("$.scan.Payload.status"), scan);
    let job = emitted(vec![
        serde_json::to_value(JobState::Complete {
            job_status: "COMPLETE".into(),
        })
        .unwrap(),
        serde_json::to_value(JobState::InProgress {
            job_status: "RUNNING".into(),
        })
        .unwrap(),
        serde_json::to_value(JobState::Stopped {
            job_status: "CANCELLED".into(),
            reason: "r".into(),
        })
        .unwrap(),
    ]);
    assert_eq!(choice_values("$.job.Payload.status"), job);
    let steps: BTreeSet<String> = ["MORE", "DONE"].map(str::to_owned).into();
    assert_eq!(choice_values("$.release.Payload.status"), steps);
    let routing = emitted(vec![
        json!({"status": "MORE"}),
        json!({"status": "DONE"}),
        serde_json::to_value(macie_pipeline::handlers::steps::StepProgress::fan_out()).unwrap(),
    ]);
    assert_eq!(choice_values("$.routing.Payload.status"), routing);
    assert_eq!(choice_values("$.deletion.Payload.status"), steps);
    let decisions: BTreeSet<String> =
        [macie_pipeline::handlers::receive_approval_decision::DECIDED_ACTION.to_owned()].into();
    assert_eq!(choice_values("$.decision.action"), decisions);
    // What the Pass states put in $.undecided is what the deletion accepts.
    use macie_pipeline::handlers::delete_manual_review_files::Undecided;
    let states = states();
    for (name, state) in &states {
        if state["ResultPath"] == "$.undecided" {
            serde_json::from_value::<Undecided>(state["Result"].clone()).unwrap_or_else(|err| {
                panic!("{name} sets $.undecided to {}: {err}", state["Result"])
            });
        }
    }
    let undecided: BTreeSet<String> = ["delete".to_owned()].into();
    assert_eq!(choice_values("$.undecided"), undecided);
}

/// The Distributed Map path: each Map lists one pipeline bucket, hands batches to the same
/// function as the loop (which accepts them), retries like every Lambda task plus an unfinished
/// batch, lets a failed batch fail the Map (never tolerated), announces that failure, and hands
/// the outcomes back to the looping task as `FANNED_OUT`.
#[test]
fn each_distributed_map_moves_one_bucket_in_batches_and_fails_closed() {
    use macie_pipeline::handlers::fan_out::Request;
    let states = states();
    let maps = [
        ("intakeMap", "sub-RawBucket", "triggerMacieScan", "$.scan"),
        (
            "routeMap",
            "sub-ScanStageBucket",
            "moveAllScanStageS3Files",
            "$.routing",
        ),
    ];
    let distributed: BTreeSet<&String> = states
        .iter()
        .filter(|(_, state)| state["Type"] == "Map")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(distributed.len(), maps.len(), "{distributed:?}");
    for (name, bucket, looping, result) in maps {
        let map = &states[name];
        let processor = &map["ItemProcessor"];
        assert_eq!(
            processor["ProcessorConfig"]["Mode"], "DISTRIBUTED",
            "{name}"
        );
        assert_eq!(
            map["ItemReader"],
            json!({"Resource": "arn:aws:states:::s3:listObjectsV2",
                   "Parameters": {"Bucket": bucket}}),
            "{name}"
        );
        for field in [
            "ToleratedFailurePercentage",
            "ToleratedFailureCount",
            "ResultWriter",
        ] {
            assert!(map.get(field).is_none(), "{name} sets {field}");
        }
        assert_eq!(map["MaxConcurrencyPath"], "$.config.mapMaxConcurrency");
        assert_eq!(
            map["ItemBatcher"]["MaxItemsPerBatchPath"],
            "$.config.mapItemsPerBatch"
        );
        let catchers = map["Catch"].as_array().unwrap();
        assert_eq!(
            catchers.last().unwrap()["ErrorEquals"],
            json!(["States.ALL"])
        );
        assert_failure_notice(&states, &catchers.last().unwrap()["Next"], name);
        assert_eq!(map["ResultPath"], format!("{result}.Payload.batches"));

        let children = processor["States"].as_object().unwrap();
        assert_eq!(children.len(), 1, "{name}: one task per batch");
        let (child, task) = children.iter().next().unwrap();
        assert_eq!(processor["StartAt"], child.as_str());
        assert!(is_lambda_task(task), "{name}.{child}");
        assert_eq!(
            task["Parameters"]["FunctionName"], states[looping]["Parameters"]["FunctionName"],
            "{name}: batches go to the looping step's own function"
        );
        assert_eq!(task["Parameters"]["Payload.$"], "$");
        assert!(
            task.get("Catch").is_none(),
            "{name}.{child} must fail the Map"
        );
        let retried: BTreeSet<&str> = task["Retry"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ErrorEquals"].as_array().unwrap())
            .map(|e| e.as_str().unwrap())
            .collect();
        for needed in PipelineError::RETRYABLE_NAMES.iter().chain(&[
            "BatchUnfinished",
            "Lambda.ServiceException",
            "Lambda.TooManyRequestsException",
            "Lambda.Unknown",
        ]) {
            assert!(
                retried.contains(needed),
                "{name}.{child} does not retry {needed}"
            );
        }

        // The batch a child sends, as ItemBatcher builds it, is one its function accepts.
        let batch = json!({
            "BatchInput": payload(&map["ItemBatcher"]["BatchInput"]),
            "Items": [{"Etag": "\"e\"", "Key": "a/b c.csv", "LastModified": 1_700_000_000,
                       "Size": 12, "StorageClass": "STANDARD"}],
        });
        let accepted = match looping {
            "triggerMacieScan" => matches!(
                serde_json::from_value::<
                    Request<trigger_macie_scan::IntakeBatchInput, trigger_macie_scan::TriggerInput>,
                >(batch.clone()),
                Ok(Request::Batch(_))
            ),
            _ => matches!(
                serde_json::from_value::<
                    Request<
                        move_all_scan_stage_files::RouteBatchInput,
                        move_all_scan_stage_files::RouteInput,
                    >,
                >(batch.clone()),
                Ok(Request::Batch(_))
            ),
        };
        assert!(accepted, "{name}'s batch {batch} is refused");

        // Back to the looping step with the outcomes.
        let mapped = &states[map["Next"].as_str().unwrap()];
        assert_eq!(mapped["Type"], "Pass");
        assert_eq!(mapped["Result"], "FANNED_OUT");
        assert_eq!(mapped["ResultPath"], format!("{result}.Payload.status"));
        assert_eq!(mapped["Next"], looping);
    }
    assert_eq!(
        common::asl()["States"]["startRun"]["Parameters"]["config"]["movePath"],
        "sub-MovePath"
    );
}
