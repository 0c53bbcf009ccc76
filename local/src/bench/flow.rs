//! The flow benchmark: N mixed objects (most clean, some flagged) uploaded to raw, one run of the
//! real state machine, an approval, and the wall time until every object is in its final bucket;
//! with the rate of each move phase read from the run's own history.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;

use super::{RunStack, states_entered};
use crate::client;
use crate::sfn::engine::ExecutionRecord;
use crate::stack::StackConfig;

/// What the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    pub objects: usize,
    pub flagged: usize,
    pub bytes: u64,
    pub time_scale: f64,
    /// The template's `MovePath`: `Loop` or `DistributedMap`.
    pub move_path: String,
    pub upload_seconds: f64,
    pub run_to_approval_request_seconds: f64,
    pub approval_to_end_seconds: f64,
    /// Upload start to every object in its final bucket.
    pub total_seconds: f64,
    pub raw_to_scan_stage_seconds: f64,
    pub raw_to_scan_stage_objects_per_second: f64,
    pub routing_seconds: f64,
    pub routing_objects_per_second: f64,
    pub release_seconds: f64,
    pub release_objects_per_second: f64,
    /// Invocations of the raw pass (continuations or Map batches included) and of the routing
    /// pass.
    pub raw_pass_invocations: usize,
    pub routing_invocations: usize,
    /// On the Distributed Map path: the batches (child executions) of the raw pass and of
    /// routing. Each child is billed its own transitions, one Task each, on top of
    /// `state_transitions`.
    pub raw_pass_batches: usize,
    pub routing_batches: usize,
    /// States entered: what Step Functions Standard bills.
    pub state_transitions: usize,
    /// From the run summary (getMacieFindingsCount's output).
    pub bytes_scanned: u64,
    pub estimated_macie_cost_usd: String,
    pub status: String,
}

/// The body of object `index`: every `flag_every`th holds a card number near its keyword.
fn body(index: usize, flag_every: usize) -> String {
    let filler = "region,units,revenue\nnorth,12,1440\n".repeat(1 + index % 64);
    if flag_every > 0 && index.is_multiple_of(flag_every) {
        format!("{filler}customer {index},card 4111 1111 1111 1111\n")
    } else {
        filler
    }
}

/// Seconds between the first entry of `from` and the first entry of `to` after it.
fn span(record: &ExecutionRecord, from: &str, to: &str) -> Option<f64> {
    let entered = |name: &str| -> Vec<i64> {
        record
            .history
            .iter()
            .filter(|e| e.details["stateEnteredEventDetails"]["name"] == name)
            .map(|e| e.timestamp_ms)
            .collect()
    };
    let start = *entered(from).first()?;
    let end = entered(to).into_iter().find(|at| *at >= start)?;
    Some((end - start) as f64 / 1000.0)
}

/// How many times the run entered `state`.
fn entries(record: &ExecutionRecord, state: &str) -> usize {
    states_entered(record)
        .into_iter()
        .filter(|name| *name == state)
        .count()
}

/// The Payload getMacieFindingsCount returned: the run summary.
fn run_summary(record: &ExecutionRecord) -> Option<serde_json::Value> {
    record
        .history
        .iter()
        .filter_map(|e| e.details.get("stateExitedEventDetails"))
        .filter(|details| details["name"] == "getMacieFindingsCount")
        .filter_map(|details| details["output"].as_str())
        .filter_map(|output| serde_json::from_str::<serde_json::Value>(output).ok())
        .map(|state| state["findings"]["Payload"].clone())
        .next_back()
}

/// The children each Map state started, by the Map's name.
fn map_children(record: &ExecutionRecord, map: &str) -> usize {
    let mut current = "";
    let mut children = 0;
    for event in &record.history {
        if let Some(name) = event.details["stateEnteredEventDetails"]["name"].as_str() {
            current = name;
        }
        if event.kind == "MapRunStarted" && current == map {
            children += event.details["mapRunStartedEventDetails"]["children"]
                .as_u64()
                .unwrap_or(0) as usize;
        }
    }
    children
}

/// The time the raw pass took: from the first triggerMacieScan to the call that creates the job.
fn raw_move_seconds(record: &ExecutionRecord) -> Option<f64> {
    let triggers: Vec<i64> = record
        .history
        .iter()
        .filter(|e| e.details["stateEnteredEventDetails"]["name"] == "triggerMacieScan")
        .map(|e| e.timestamp_ms)
        .collect();
    let (first, job_call) = (triggers.first()?, triggers.last()?);
    Some((job_call - first) as f64 / 1000.0)
}

fn rate(objects: usize, seconds: f64) -> f64 {
    if objects == 0 {
        0.0
    } else if seconds > 0.0 {
        objects as f64 / seconds
    } else {
        f64::INFINITY
    }
}

/// Runs the flow once with `objects` objects, one in `flag_every` flagged.
pub async fn run(
    config: StackConfig,
    objects: usize,
    flag_every: usize,
) -> Result<FlowReport, String> {
    let time_scale = config.time_scale;
    let move_path = config
        .parameters
        .get("MovePath")
        .cloned()
        .unwrap_or_else(|| "Loop".to_owned());
    let bench = RunStack::start(config).await?;
    let (s3, raw) = (&bench.s3, &bench.raw);

    let started = Instant::now();
    let mut bytes = 0u64;
    let mut uploads = tokio::task::JoinSet::new();
    let mut indices: Vec<usize> = (0..objects).collect();
    let chunk = objects.div_ceil(32).max(1);
    while !indices.is_empty() {
        let batch: Vec<usize> = indices.drain(..chunk.min(indices.len())).collect();
        bytes += batch
            .iter()
            .map(|i| body(*i, flag_every).len() as u64)
            .sum::<u64>();
        let (s3, raw) = (s3.clone(), raw.clone());
        uploads.spawn(async move {
            for index in batch {
                s3.put_object()
                    .bucket(&raw)
                    .key(format!("bench/{index:07}.csv"))
                    .body(ByteStream::from(body(index, flag_every).into_bytes()))
                    .send()
                    .await
                    .map_err(|err| format!("upload {index}: {err}"))?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = uploads.join_next().await {
        done.map_err(|err| err.to_string())??;
    }
    let upload_seconds = started.elapsed().as_secs_f64();

    let run_started = Instant::now();
    let arn = bench.start_run("bench").await?;
    let flagged = if flag_every == 0 {
        0
    } else {
        objects.div_ceil(flag_every)
    };
    let mut approval_at = run_started.elapsed().as_secs_f64();
    if flagged > 0 {
        let email = loop {
            let found = crate::sns::delivered_in(bench.stack.outbox())
                .into_iter()
                .find(|e| e.is_review_request());
            if let Some(email) = found {
                break email;
            }
            if bench
                .stack
                .engine()
                .describe(&arn)
                .is_some_and(|r| r.status != "RUNNING")
            {
                return Err(format!(
                    "the run ended before asking for approval: {:?}",
                    bench
                        .stack
                        .engine()
                        .describe(&arn)
                        .map(|r| (r.error, r.cause))
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        approval_at = run_started.elapsed().as_secs_f64();
        let link = email
            .message
            .lines()
            .skip_while(|l| !l.starts_with("Release all"))
            .find(|l| l.starts_with("http"))
            .ok_or("no Release all link in the email")?
            .to_owned();
        let decided = client::decide(&link).await;
        if !decided.status().is_success() {
            return Err(format!("approving failed: {}", decided.status()));
        }
    }
    let (status, record) = bench.finish(&arn, Duration::from_secs(24 * 3600)).await?;
    let total_seconds = started.elapsed().as_secs_f64();
    let raw_to_scan_stage_seconds = raw_move_seconds(&record).unwrap_or(0.0);
    let routing_seconds = span(&record, "prepareManualApproval", "triggerManualApproval")
        .or_else(|| span(&record, "moveAllScanStageS3Files", "finishRun"))
        .unwrap_or(0.0);
    let release_seconds = span(&record, "moveToScannedDataS3Files", "finishRun").unwrap_or(0.0);
    let summary = run_summary(&record).unwrap_or_default();
    let state_transitions = states_entered(&record).len();
    let raw_pass_batches = map_children(&record, "intakeMap");
    let routing_batches = map_children(&record, "routeMap");
    Ok(FlowReport {
        objects,
        flagged,
        bytes,
        time_scale,
        move_path,
        upload_seconds,
        run_to_approval_request_seconds: approval_at,
        approval_to_end_seconds: run_started.elapsed().as_secs_f64() - approval_at,
        total_seconds,
        raw_to_scan_stage_seconds,
        raw_to_scan_stage_objects_per_second: rate(objects, raw_to_scan_stage_seconds),
        routing_seconds,
        routing_objects_per_second: rate(objects, routing_seconds),
        release_seconds,
        release_objects_per_second: rate(flagged, release_seconds),
        // The last call of the raw pass creates the job; it moves nothing.
        raw_pass_invocations: entries(&record, "triggerMacieScan").saturating_sub(1)
            + raw_pass_batches,
        routing_invocations: entries(&record, "moveAllScanStageS3Files") + routing_batches,
        raw_pass_batches,
        routing_batches,
        state_transitions,
        bytes_scanned: summary["bytesScanned"].as_u64().unwrap_or(0),
        estimated_macie_cost_usd: summary["estimatedMacieCostUsd"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned(),
        status,
    })
}

/// The report as a table.
pub fn table(report: &FlowReport) -> String {
    let rows = [
        (
            "objects (flagged)",
            format!("{} ({})", report.objects, report.flagged),
        ),
        ("bytes", report.bytes.to_string()),
        ("time scale of waits", report.time_scale.to_string()),
        ("move path", report.move_path.clone()),
        ("upload", format!("{:.2} s", report.upload_seconds)),
        (
            "run start -> approval request",
            format!("{:.2} s", report.run_to_approval_request_seconds),
        ),
        (
            "approval -> run end",
            format!("{:.2} s", report.approval_to_end_seconds),
        ),
        (
            "run start -> run end",
            format!(
                "{:.2} s",
                report.run_to_approval_request_seconds + report.approval_to_end_seconds
            ),
        ),
        (
            "total, upload -> final buckets",
            format!("{:.2} s", report.total_seconds),
        ),
        (
            "raw -> scan-stage move",
            format!(
                "{:.2} s, {:.0} objects/s",
                report.raw_to_scan_stage_seconds, report.raw_to_scan_stage_objects_per_second
            ),
        ),
        (
            "routing (review / scanned-data)",
            format!(
                "{:.2} s, {:.0} objects/s",
                report.routing_seconds, report.routing_objects_per_second
            ),
        ),
        (
            "release of approved objects",
            format!(
                "{:.2} s, {:.0} objects/s",
                report.release_seconds, report.release_objects_per_second
            ),
        ),
        (
            "handler invocations",
            format!(
                "raw pass {}, routing {}",
                report.raw_pass_invocations, report.routing_invocations
            ),
        ),
        (
            "map batches (child executions)",
            format!(
                "raw pass {}, routing {}",
                report.raw_pass_batches, report.routing_batches
            ),
        ),
        ("state transitions", report.state_transitions.to_string()),
        (
            "Macie scanned (run summary)",
            format!(
                "{} bytes, about USD {}",
                report.bytes_scanned, report.estimated_macie_cost_usd
            ),
        ),
        ("run status", report.status.clone()),
    ];
    // The clean path has no approval and releases nothing: those rows would only read 0.
    let review_only = [
        "run start -> approval request",
        "approval -> run end",
        "release of approved objects",
    ];
    let map_only = "map batches (child executions)";
    rows.iter()
        .filter(|(name, _)| report.flagged > 0 || !review_only.contains(name))
        .filter(|(name, _)| report.move_path != "Loop" || *name != map_only)
        .map(|(name, value)| format!("{name:<34} {value}\n"))
        .collect()
}
