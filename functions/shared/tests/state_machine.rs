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
        condition.as_object_mut().unwrap().remove("Assign");
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
    assert_eq!(stopped["Next"], "macieJobStopped");
    let failure = &states["macieJobStopped"];
    assert_eq!(failure["ResultPath"], "$.failure");
    assert_eq!(failure["Parameters"]["error"], "MacieJobStopped");
    assert_eq!(failure["Next"], "composeFailureNotice");
    assert!(!reachable_from("macieJobStopped", &states).contains("runSucceeded"));
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
    assert_eq!(
        into("notifyRoutingSuperseded", &states),
        vec![(
            "composeRoutingSupersededNotice".to_owned(),
            "next".to_owned()
        )]
    );
    for (source, label) in into("composeRoutingSupersededNotice", &states) {
        assert!(
            source == "moveAllScanStageChoice" && label.contains(&done),
            "{source} ({label})"
        );
    }
    // Announced first, then requested: only when routing held something.
    let held = json!({"Variable": "$.routing.Payload.awaitingReview", "NumericGreaterThan": 0})
        .to_string();
    assert_eq!(
        into("announceObjectsHeld", &states),
        vec![("isSensitiveDataFoundChoice".to_owned(), held)]
    );
    assert_eq!(
        into("triggerManualApproval", &states),
        vec![("announceObjectsHeld".to_owned(), "next".to_owned())]
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
                assert_eq!(state["Next"], "composeFailureNotice", "{name}");
                let message = state["Parameters"]["message.$"].as_str().unwrap();
                assert!(message.starts_with("States.Format("), "{name}");
                assert!(message.contains("$.failedStep.name"), "{name}");
                assert_eq!(state["Parameters"]["error"], "PipelineRunFailed", "{name}");
                assert_eq!(
                    state["Parameters"]["details.$"], "$.failedStep.objects",
                    "{name}"
                );
                described.insert(name);
            }
            "Pass" => pending.push(state["Next"].as_str().unwrap().to_owned()),
            other => panic!("{name} is a {other} between describeFailure and notifyFailure"),
        }
    }
    assert_eq!(described.len(), 4, "{described:?}");
    // The other failures (a stopped job, objects left in raw, a review that timed out with
    // objects held) describe themselves the same way, each with its own error.
    let mut errors = BTreeSet::new();
    for (name, state) in &states {
        if state["ResultPath"] != "$.failure" {
            continue;
        }
        let failure = &state["Parameters"];
        for field in ["cause", "step", "message", "details", "subject"] {
            assert!(
                failure
                    .get(field)
                    .or(failure.get(format!("{field}.$")))
                    .is_some(),
                "{name} sets no failure {field}"
            );
        }
        assert_eq!(state["Next"], "composeFailureNotice", "{name}");
        errors.insert(failure["error"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        errors,
        BTreeSet::from(
            [
                "PipelineRunFailed",
                "MacieJobStopped",
                "ObjectsRejected",
                "ApprovalTimedOut"
            ]
            .map(str::to_owned)
        )
    );
    assert_eq!(
        into("composeFailureNotice", &states).len(),
        described.len() + errors.len() - 1
    );
    let notice = &states["notifyFailure"]["Parameters"]["Message"];
    let text = notice["default.$"].as_str().unwrap();
    assert!(text.contains("$.failure.message"), "{text}");
    assert!(text.contains("$.failure.details"), "{text}");
    assert!(!text.contains("JsonToString($.error)"), "{text}");
    assert_eq!(states["runFailed"]["ErrorPath"], "$.failure.error");
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
fn every_failure_is_notified_and_announced_before_the_run_fails() {
    let states = states();
    let fails: Vec<&String> = states
        .iter()
        .filter(|(_, state)| state["Type"] == "Fail")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(fails, ["runFailed"], "one Fail state, named by $.failure");
    // The alert, then the event, then the Fail; a failed alert or event changes nothing more.
    let chain = [
        ("runFailed", "announceRunFailed"),
        ("announceRunFailed", "notifyFailure"),
        ("notifyFailure", "composeFailureNotice"),
    ];
    for (state, only_from) in chain {
        for (source, label) in into(state, &states) {
            assert_eq!(
                source, only_from,
                "{state} is reached from {source} ({label})"
            );
        }
    }
    assert_eq!(
        states["notifyFailure"]["Resource"],
        "arn:aws:states:::sns:publish"
    );
    let announce = &states["announceRunFailed"];
    assert_eq!(announce["Resource"], "arn:aws:states:::events:putEvents");
    assert_eq!(
        announce["Parameters"]["Entries"][0]["DetailType"],
        "Run Failed"
    );
    for catcher in announce["Catch"]
        .as_array()
        .unwrap()
        .iter()
        .chain(states["notifyFailure"]["Catch"].as_array().unwrap())
    {
        assert_ne!(catcher["ResultPath"], "$.failure", "{catcher}");
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
    // Objects still undecided after a timeout that holds fail the run, after the review's
    // outcome is announced.
    let undecided =
        json!({"Variable": "$.deletion.Payload.undecided", "NumericGreaterThan": 0}).to_string();
    assert_eq!(
        into("approvalTimedOut", &states),
        vec![("reviewEndChoice".to_owned(), undecided)]
    );
    assert_eq!(
        states["approvalTimedOut"]["Parameters"]["error"],
        "ApprovalTimedOut"
    );
    assert_eq!(
        into("reviewEndChoice", &states),
        vec![("announceReviewDecided".to_owned(), "next".to_owned())]
    );
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
        "$$.Execution.Id" => json!("arn:aws:states:us-east-1:123456789012:execution:gate:exec-1"),
        "$$.StateMachine.Id" => json!("arn:aws:states:us-east-1:123456789012:stateMachine:gate"),
        "$workflowId" => json!("wf-1"),
        "$macieJobId" => json!("0123456789abcdef0123456789abcdef"),
        "$intake" | "$scan" | "$routing" | "$review" => json!({}),
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

/// The states that put events, by detail type.
fn announcers(states: &BTreeMap<String, Value>) -> BTreeMap<String, String> {
    states
        .iter()
        .filter(|(_, state)| state["Resource"] == "arn:aws:states:::events:putEvents")
        .map(|(name, state)| {
            let kind = state["Parameters"]["Entries"][0]["DetailType"]
                .as_str()
                .unwrap()
                .to_owned();
            (kind, name.clone())
        })
        .collect()
}

#[test]
fn the_state_machine_announces_its_events_with_the_runs_detail() {
    use macie_pipeline::events::{DETAIL_VERSION, DetailType, SOURCE};
    let states = states();
    let announcers = announcers(&states);
    // Every detail type but the one only the approval function can put (its links need the
    // task token), each from one state.
    let expected: BTreeSet<String> = DetailType::ALL
        .into_iter()
        .filter(|kind| *kind != DetailType::ReviewRequested)
        .map(|kind| kind.name().to_owned())
        .collect();
    assert_eq!(
        announcers.keys().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    // The run's detail is the same everywhere, and it is what the approval function extends.
    let run = &states["triggerManualApproval"]["Parameters"]["Payload"]["event"];
    assert_eq!(run["version"], DETAIL_VERSION);
    for (kind, name) in &announcers {
        let state = &states[name];
        let entries = state["Parameters"]["Entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{name}");
        assert_eq!(entries[0]["EventBusName"], "sub-EventBusName", "{name}");
        assert_eq!(entries[0]["Source"], SOURCE, "{name}");
        let detail = entries[0]["Detail"].as_object().unwrap();
        for (field, value) in run.as_object().unwrap() {
            assert_eq!(detail.get(field), Some(value), "{name}: {field}");
        }
        let extra: Vec<&String> = detail
            .keys()
            .filter(|field| !run.as_object().unwrap().contains_key(*field))
            .collect();
        let allowed: &[&str] = if kind == "Run Failed" {
            &["failure"]
        } else {
            &[]
        };
        assert_eq!(extra, allowed, "{name}");
        assert_eq!(state["ResultPath"], Value::Null, "{name}");
        let retried = &state["Retry"][0];
        assert_eq!(
            retried["ErrorEquals"],
            json!(["States.TaskFailed"]),
            "{name}"
        );
        let catcher = state["Catch"].as_array().unwrap().last().unwrap();
        assert_eq!(catcher["ErrorEquals"], json!(["States.ALL"]), "{name}");
        if kind == "Run Failed" {
            // The run fails either way; the failure itself is kept, not overwritten.
            assert_eq!(catcher["Next"], "runFailed");
            assert_eq!(catcher["ResultPath"], "$.eventError");
        } else {
            assert_failure_notice(&states, &catcher["Next"], name);
        }
    }
    // A run succeeds only after saying so, and a Run Failed event names the execution's error.
    assert_eq!(
        into("runSucceeded", &states),
        vec![("announceRunSucceeded".to_owned(), "next".to_owned())]
    );
    assert_eq!(
        into("announceRunSucceeded", &states),
        vec![("finishRun".to_owned(), "default".to_owned())]
    );
    assert_eq!(
        states["announceRunFailed"]["Parameters"]["Entries"][0]["Detail"]["failure"]["error.$"],
        "$.failure.error"
    );
}

/// Every `$name` a state reads in its fields.
fn variables_read(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, nested) in fields {
                if key.ends_with(".$")
                    && let Some(path) = nested.as_str()
                    && let Some(name) = path.strip_prefix('$')
                    && name.starts_with(|c: char| c.is_ascii_alphabetic())
                {
                    out.insert(name.split('.').next().unwrap().to_owned());
                }
                variables_read(nested, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| variables_read(item, out)),
        _ => {}
    }
}

#[test]
fn every_variable_read_is_set_when_the_run_starts() {
    let states = states();
    let mut read = BTreeSet::new();
    for state in states.values() {
        variables_read(state, &mut read);
    }
    let set: BTreeSet<String> = states["startRun"]["Assign"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        read.is_subset(&set),
        "read {read:?}, set at the start {set:?}"
    );
    assert!(
        read.contains("workflowId") && read.contains("review"),
        "{read:?}"
    );
}

/// Reads a `$.a.b` path of `value`; `None` when a step of it is missing.
fn at<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let rest = path.strip_prefix("$.")?;
    rest.split('.')
        .try_fold(value, |value, field| value.as_object()?.get(field))
}

/// Checks every `.$` path an `Assign` reads against `input`: a path that is missing fails the
/// execution with `States.Runtime`, which no Catch sees, so none may be.
fn assigns_read_from(assign: &Value, input: &Value, context: &str) {
    let Value::Object(fields) = assign else {
        return;
    };
    for (key, value) in fields {
        match (key.strip_suffix(".$"), value.as_str()) {
            (Some(_), Some(path)) if path.starts_with("$.") => {
                assert!(
                    at(input, path).is_some(),
                    "{context}: {key} reads {path}, which is not in {input}"
                );
            }
            _ => assigns_read_from(value, input, context),
        }
    }
}

#[test]
fn assignments_read_only_what_the_handlers_always_write() {
    use macie_pipeline::handlers::get_findings_count::{BySeverity, FindingsSummary};
    use macie_pipeline::handlers::steps::{StepProgress, StepStatus};
    use macie_pipeline::manifest::ManifestRef;
    use macie_pipeline::s3::pass::Tally;
    use macie_pipeline::workflow::WorkflowId;
    use trigger_macie_scan::ScanProgress;
    let states = states();
    let id = WorkflowId::parse("wf").unwrap();
    let done = |awaiting_review, undecided| StepProgress {
        status: StepStatus::Done,
        resume_after: None,
        tally: Tally::default(),
        awaiting_review,
        undecided,
        batches: Vec::new(),
    };
    let payload = |value: Value| json!({"Payload": value});
    let findings = FindingsSummary {
        manifest: ManifestRef {
            bucket: "b".into(),
            key: "k".into(),
        },
        finding_count: 0,
        flagged_objects: 0,
        review_objects: 0,
        pass_tagged_objects: 0,
        not_analysed_objects: 0,
        analysed_clean_objects: 0,
        highest_severity: None,
        flagged_by_severity: BySeverity::default(),
        bytes_scanned: 0,
        estimated_macie_cost_usd: "0.0000".into(),
    };
    // Each task's Assign reads its result; each Choice rule's, the state it was given.
    for progress in [
        ScanProgress::Moving {
            workflow_id: id.clone(),
            resume_after: None,
            tally: Tally::default(),
        },
        ScanProgress::FanOut {
            workflow_id: id.clone(),
            tally: Tally::default(),
        },
    ] {
        let result = payload(serde_json::to_value(progress).unwrap());
        assigns_read_from(
            &states["triggerMacieScan"]["Assign"],
            &result,
            "triggerMacieScan",
        );
    }
    assigns_read_from(
        &states["getMacieFindingsCount"]["Assign"],
        &payload(serde_json::to_value(findings).unwrap()),
        "getMacieFindingsCount",
    );
    let started = json!({"scan": payload(serde_json::to_value(ScanProgress::JobStarted {
        workflow_id: id.clone(), job_id: "j".into(), tally: Tally::default() }).unwrap())});
    let nothing = json!({"scan": payload(serde_json::to_value(ScanProgress::NothingToScan {
        workflow_id: id, tally: Tally::default() }).unwrap())});
    let routed = json!({"routing": payload(serde_json::to_value(done(Some(1), None)).unwrap())});
    let deleted = json!({
        "config": {"approvalTimeoutAction": "hold"},
        "release": payload(serde_json::to_value(done(None, None)).unwrap()),
        "deletion": payload(serde_json::to_value(done(None, Some(0))).unwrap()),
    });
    let mut checked = 0;
    for (name, input) in [
        ("scanProgressChoice", &started),
        ("scanProgressChoice", &nothing),
        ("isSensitiveDataFoundChoice", &routed),
        ("deleteManualReviewChoice", &deleted),
    ] {
        for rule in states[name]["Choices"].as_array().unwrap() {
            let status = rule["StringEquals"].as_str();
            let applies = match name {
                "scanProgressChoice" => status == input["scan"]["Payload"]["status"].as_str(),
                _ => true,
            };
            if applies && let Some(assign) = rule.get("Assign") {
                assigns_read_from(assign, input, name);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 5, "every Choice rule that assigns was checked");
    // No other state assigns from its input or result.
    for (name, state) in &states {
        let assigns_from_paths = state["Assign"]
            .as_object()
            .is_some_and(|fields| fields.values().any(|v| v.is_object() || v.is_string()))
            || state["Assign"]
                .as_object()
                .is_some_and(|fields| fields.keys().any(|k| k.ends_with(".$")));
        if assigns_from_paths {
            assert!(
                ["triggerMacieScan", "getMacieFindingsCount"].contains(&name.as_str()),
                "{name} assigns from paths no test checks"
            );
        }
    }
}
