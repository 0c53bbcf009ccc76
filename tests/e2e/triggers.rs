//! What starts runs: with `TriggerMode=ObjectCreated` the raw bucket's `Object Created` events
//! go through EventBridge to the arrival queue, and the arrival pipe starts one run for each
//! batch; with `TriggerMode=EventPattern` a matching event starts a run named by its id. No
//! object is missed and none is scanned twice, however the uploads fall across batches and
//! runs; a batch that cannot start a run is retried and then kept, with its objects in raw.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use e2e::macie_pipeline_local;
use e2e::macie_pipeline_local::stack::StackConfig;
use e2e::{Bucket, Gate};
use serde_json::{Value, json};

fn parameters(config: &mut StackConfig, parameters: &[(&str, &str)]) {
    for (name, value) in parameters {
        config
            .parameters
            .insert((*name).to_owned(), (*value).to_owned());
    }
}

/// A gate whose runs start when objects land, with the schedule off.
async fn arrivals_gate(window_seconds: u32, batch_size: u32) -> Gate {
    arrivals_gate_at(window_seconds, batch_size, 0.001).await
}

async fn arrivals_gate_at(window_seconds: u32, batch_size: u32, time_scale: f64) -> Gate {
    Gate::start_with(|config| {
        config.time_scale = time_scale;
        parameters(
            config,
            &[
                ("TriggerMode", "ObjectCreated"),
                ("ScanSchedule", "disabled"),
                ("TriggerBatchWindowSeconds", &window_seconds.to_string()),
                ("TriggerBatchSize", &batch_size.to_string()),
            ],
        );
    })
    .await
}

/// Waits until scanned-data and manual-review hold `passed` and `held` objects and raw and
/// scan-stage none.
async fn settled(gate: &Gate, passed: usize, held: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        let counts = [
            gate.keys(Bucket::Raw).await.len(),
            gate.keys(Bucket::ScanStage).await.len(),
            gate.keys(Bucket::ScannedData).await.len(),
            gate.keys(Bucket::ManualReview).await.len(),
        ];
        if counts == [0, 0, passed, held] {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "raw, scan-stage, scanned-data, manual-review hold {counts:?} after {limit:?}, not [0, 0, {passed}, {held}]"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every execution's input, by ARN, once none is running but those waiting for a reviewer.
async fn runs(gate: &Gate) -> BTreeMap<String, (ExecutionStatus, Value)> {
    let mut out = BTreeMap::new();
    let executions: Vec<_> = gate
        .sfn
        .list_executions()
        .state_machine_arn(gate.stack.state_machine_arn())
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|item| item.expect("ListExecutions"))
        .collect();
    for execution in executions {
        let described = gate.describe(&execution.execution_arn).await;
        let input: Value = serde_json::from_str(described.input.as_deref().unwrap_or("null"))
            .expect("an execution's input is JSON");
        out.insert(execution.execution_arn, (described.status, input));
    }
    out
}

/// How many objects each run took from raw and had scanned, from its latest event.
fn taken_and_scanned(gate: &Gate, arn: &str) -> (u64, u64) {
    let events = gate.run_events(arn);
    let latest = events
        .last()
        .unwrap_or_else(|| panic!("{arn} put no event"));
    let detail = &latest["detail"];
    let scan = &detail["scan"];
    let scanned = ["flaggedObjects", "analysedClean", "notAnalysed"]
        .iter()
        .map(|field| scan[field].as_u64().unwrap_or(0))
        .sum();
    (detail["intake"]["taken"].as_u64().unwrap_or(0), scanned)
}

/// Every run, once none of them is running but those waiting for a reviewer: the snapshot that
/// was checked, so a run that starts afterwards (the short run each run that took objects
/// starts when it ends, which finds raw empty) is not counted half-way.
async fn ended_runs(gate: &Gate, limit: Duration) -> BTreeMap<String, (ExecutionStatus, Value)> {
    let start = Instant::now();
    loop {
        let snapshot = runs(gate).await;
        let running = snapshot
            .iter()
            .filter(|(arn, (status, _))| {
                *status == ExecutionStatus::Running
                    && !gate
                        .run_event_types(arn)
                        .iter()
                        .any(|kind| kind == "Review Requested")
            })
            .count();
        if running == 0 {
            return snapshot;
        }
        assert!(
            start.elapsed() < limit,
            "{running} runs still running after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_reach_their_buckets_with_no_run_started_by_hand() {
    let gate = arrivals_gate(60, 1000).await;
    for index in 0..8 {
        gate.upload(
            &format!("landing/clean-{index}.txt"),
            "nothing to see",
            &[],
            &[],
        )
        .await;
    }
    gate.upload("landing/ssn.txt", "ssn 123-45-6789", &[], &[])
        .await;
    gate.upload("landing/card.csv", "card 4111 1111 1111 1111", &[], &[])
        .await;
    settled(&gate, 8, 2, Duration::from_secs(60)).await;
    let runs = ended_runs(&gate, Duration::from_secs(60)).await;

    // S3's events, in AWS's shape, are what started the runs.
    let s3_events: Vec<Value> = gate
        .bus_events("default")
        .into_iter()
        .filter(|event| event["source"] == "aws.s3")
        .collect();
    assert_eq!(s3_events.len(), 10);
    let first = &s3_events[0];
    assert_eq!(first["detail-type"], "Object Created");
    assert_eq!(first["detail"]["bucket"]["name"], gate.bucket(Bucket::Raw));
    assert_eq!(first["detail"]["reason"], "PutObject");
    for field in ["key", "size", "etag", "sequencer"] {
        assert!(
            !first["detail"]["object"][field].is_null(),
            "{field}: {first}"
        );
    }
    let event_ids: std::collections::BTreeSet<&str> = s3_events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();

    // Every run was started by the pipe with a batch of those events' ids, and only their ids.
    assert!(!runs.is_empty());
    let mut batched = Vec::new();
    let (mut taken, mut scanned) = (0, 0);
    for (arn, (_, input)) in &runs {
        let batch = input.as_array().unwrap_or_else(|| panic!("{arn}: {input}"));
        for record in batch {
            assert_eq!(record.as_object().unwrap().len(), 1, "{record}");
            batched.push(record["eventId"].as_str().unwrap().to_owned());
        }
        let (run_taken, run_scanned) = taken_and_scanned(&gate, arn);
        taken += run_taken;
        scanned += run_scanned;
    }
    // Besides S3's events, the end of each run that took objects is an arrival too: what a run
    // deferred behind another is taken by the batch after that one ends.
    let run_ends: std::collections::BTreeSet<String> = gate
        .events()
        .iter()
        .filter(|event| {
            matches!(
                event["detail-type"].as_str(),
                Some("Run Succeeded" | "Run Failed")
            )
        })
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    batched.sort();
    let (from_s3, from_run_ends): (Vec<String>, Vec<String>) = batched
        .into_iter()
        .partition(|id| event_ids.contains(id.as_str()));
    let expected: Vec<String> = event_ids.iter().map(|id| (*id).to_owned()).collect();
    assert_eq!(from_s3, expected, "each arrival in exactly one batch");
    assert!(
        from_run_ends.iter().all(|id| run_ends.contains(id)),
        "{from_run_ends:?} are neither arrivals nor run ends"
    );
    assert_eq!(
        (taken, scanned),
        (10, 10),
        "each object taken and scanned once"
    );
    // The held objects wait for their reviewer.
    let requested: u64 = gate
        .events()
        .iter()
        .filter(|event| event["detail-type"] == "Review Requested")
        .map(|event| event["detail"]["request"]["held"].as_u64().unwrap())
        .sum();
    assert_eq!(requested, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_starts_a_run_per_window_and_scans_each_object_once() {
    // Time at a fiftieth: the 300 s window lasts 6 s, about what uploading the burst takes
    // here, so the burst falls in a few windows, as a burst of a minute would in AWS.
    let gate = arrivals_gate_at(300, 4000, 0.02).await;
    let started = Instant::now();
    gate.upload_many(
        (0..1000)
            .map(|i| {
                (
                    format!("burst/part-{i:04}.csv"),
                    format!("id,value\n{i},{}\n", i * 7),
                )
            })
            .collect(),
    )
    .await;
    let upload = started.elapsed();
    settled(&gate, 1000, 0, Duration::from_secs(180)).await;
    let runs = ended_runs(&gate, Duration::from_secs(60)).await;
    let windows = (upload.as_secs_f64() / 6.0).ceil() as usize + 1;
    assert!(
        runs.len() <= windows,
        "{} runs for a burst uploaded in {upload:?} ({windows} windows)",
        runs.len()
    );
    let (mut taken, mut scanned, mut jobs) = (0, 0, 0);
    for (arn, (status, _)) in &runs {
        assert_eq!(*status, ExecutionStatus::Succeeded, "{}", gate.explain(arn));
        let (run_taken, run_scanned) = taken_and_scanned(&gate, arn);
        taken += run_taken;
        scanned += run_scanned;
        if run_taken > 0 {
            jobs += 1;
        }
    }
    assert_eq!((taken, scanned), (1000, 1000));
    let listed = gate
        .macie
        .list_classification_jobs()
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(listed.len(), jobs, "one Macie job a run that took objects");
    eprintln!(
        "1,000 objects uploaded in {upload:?}: {} runs, {jobs} Macie jobs",
        runs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_that_lands_during_a_run_is_scanned_by_the_next() {
    let gate = Gate::start_with(|config| {
        parameters(
            config,
            &[
                ("TriggerMode", "ObjectCreated"),
                ("ScanSchedule", "disabled"),
                ("TriggerBatchWindowSeconds", "10"),
            ],
        );
        // A Macie job that takes long enough to land more data while it runs.
        config.macie.startup_delay_seconds = 2000.0;
    })
    .await;
    gate.upload("daily/report.csv", "day one", &[], &[]).await;
    let first = loop {
        if let Some(run) = gate.executions().await.pop() {
            break run.execution_arn;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    gate.reaches(&first, "pollForCompletionWait").await;
    // The same key rewritten, and a new one, while the first run's job runs.
    gate.upload("daily/report.csv", "day two", &[], &[]).await;
    gate.upload("daily/extra.csv", "more", &[], &[]).await;
    settled(&gate, 2, 0, Duration::from_secs(120)).await;
    let runs = ended_runs(&gate, Duration::from_secs(60)).await;
    assert!(runs.len() >= 2, "a second batch started a second run");
    let taken: u64 = runs.keys().map(|arn| taken_and_scanned(&gate, arn).0).sum();
    assert_eq!(taken, 3, "day one, day two and the new key, each once");
    assert_eq!(
        gate.body(Bucket::ScannedData, "daily/report.csv").await,
        b"day two"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_cannot_start_a_run_is_retried_then_kept_and_its_objects_stay_in_raw() {
    // The pipe's role without its StartExecution grant.
    let template = macie_pipeline_local::deployment::TEMPLATE;
    let section = template.find("  ArrivalPipeRole:").unwrap();
    let grant = template[section..]
        .find("                  - states:StartExecution\n")
        .unwrap()
        + section;
    let mut broken = template.to_owned();
    broken.replace_range(
        grant..grant + "                  - states:StartExecution\n".len(),
        "                  - states:DescribeExecution\n",
    );
    let gate = Gate::start_with(|config| {
        parameters(
            config,
            &[
                ("TriggerMode", "ObjectCreated"),
                ("ScanSchedule", "disabled"),
            ],
        );
        config.template = Some(broken);
    })
    .await;
    gate.upload("landing/a.csv", "a", &[], &[]).await;
    let log = macie_pipeline_local::triggers::pipe_log(gate.stack.data_dir(), "ArrivalPipe");
    let dead_letter = gate
        .stack
        .deployment()
        .queues
        .values()
        .find(|queue| queue.name.ends_with("ArrivalDeadLetterQueue"))
        .unwrap()
        .arn
        .clone();
    let start = Instant::now();
    // Five receives (360 s visibility timeout each, 360 ms here), then the dead-letter queue.
    loop {
        let batches = macie_pipeline_local::triggers::pipe_batches(&log);
        let failed = batches.iter().filter(|b| !b["error"].is_null()).count();
        if failed >= 5 && dead_letter_depth(&gate, &dead_letter).await == 1 {
            let error = batches[0]["error"].as_str().unwrap();
            assert!(
                error.contains("is not authorized to perform: states:StartExecution"),
                "{error}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "batches: {batches:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gate.executions().await.is_empty());
    assert_eq!(
        gate.keys(Bucket::Raw).await,
        ["landing/a.csv"],
        "nothing lost"
    );
}

/// The dead-letter queue's depth, as the AWS CLI or an alarm would read it.
async fn dead_letter_depth(gate: &Gate, arn: &str) -> usize {
    let aws = gate.stack.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let name = arn.rsplit(':').next().unwrap();
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("GetQueueUrl")
        .queue_url
        .unwrap();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    attributes[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_matching_event_starts_a_run_named_by_its_id_and_others_do_not() {
    let pattern = json!({"source": ["acme.ingest"], "detail-type": ["Batch Landed"]});
    let gate = Gate::start_with(|config| {
        parameters(
            config,
            &[
                ("TriggerMode", "EventPattern"),
                ("TriggerEventPattern", &pattern.to_string()),
            ],
        );
    })
    .await;
    gate.upload("landing/a.csv", "nothing sensitive", &[], &[])
        .await;
    let aws = gate.stack.sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&aws);
    let put = |detail_type: &'static str| {
        let events = events.clone();
        async move {
            events
                .put_events()
                .entries(
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .source("acme.ingest")
                        .detail_type(detail_type)
                        .detail(r#"{"files": 1, "secret": "not for the run"}"#)
                        .build(),
                )
                .send()
                .await
                .unwrap()
                .entries
                .unwrap()[0]
                .event_id
                .clone()
                .unwrap()
        }
    };
    put("Batch Started").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        gate.executions().await.is_empty(),
        "a non-matching event started a run"
    );
    let id = put("Batch Landed").await;
    settled(&gate, 1, 0, Duration::from_secs(60)).await;
    let runs = runs(&gate).await;
    let [(arn, (_, input))] = runs.iter().collect::<Vec<_>>()[..] else {
        panic!("one run: {runs:?}")
    };
    assert_eq!(
        *input,
        json!({"id": id, "source": "acme.ingest", "detail-type": "Batch Landed"}),
        "only the event's id, source and type reach the run"
    );
    gate.ends_with(arn, "SUCCEEDED").await;
    assert_eq!(
        gate.tags(Bucket::ScannedData, "landing/a.csv").await["WorkflowId"],
        id
    );
}
