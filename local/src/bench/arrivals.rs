//! The arrivals benchmark: with `TriggerMode=ObjectCreated`, objects uploaded to raw and nobody
//! starting a run. It measures upload to final bucket for each object (the batching window,
//! Macie's start-up delay and the run, at the stack's time scale), and counts the runs and Macie
//! jobs the uploads started.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;

use super::RunStack;
use crate::stack::StackConfig;

/// What one case measured.
#[derive(Debug, Clone, Serialize)]
pub struct ArrivalsReport {
    pub objects: usize,
    pub batch_window_seconds: u64,
    pub batch_size: usize,
    pub time_scale: f64,
    /// Macie's job start-up delay, in workflow seconds (scaled like every wait).
    pub macie_delay_seconds: f64,
    pub upload_seconds: f64,
    /// Upload of an object to its arrival in scanned-data: median and slowest.
    pub latency_median_seconds: f64,
    pub latency_max_seconds: f64,
    /// First upload to the last object in scanned-data.
    pub total_seconds: f64,
    /// Executions the arrivals (and the ends of runs that took objects) started.
    pub executions: usize,
    /// Those that took objects from raw: one Macie job each.
    pub executions_that_scanned: usize,
    pub macie_jobs: usize,
}

/// Uploads `objects` clean objects to raw, sixteen at a time, and waits until every one is in
/// scanned-data.
pub async fn run(mut config: StackConfig, objects: usize) -> Result<ArrivalsReport, String> {
    config
        .parameters
        .entry("TriggerMode".into())
        .or_insert_with(|| "ObjectCreated".into());
    config
        .parameters
        .entry("ScanSchedule".into())
        .or_insert_with(|| "disabled".into());
    let (time_scale, macie_delay_seconds) = (config.time_scale, config.macie.startup_delay_seconds);
    let bench = RunStack::start(config).await?;
    let pipe = bench
        .stack
        .deployment()
        .pipes
        .first()
        .cloned()
        .ok_or("the deployment has no arrival pipe (TriggerMode must be ObjectCreated)")?;
    let scanned = bench
        .stack
        .deployment()
        .bucket("DataPipelineScannedDataBucket")
        .to_owned();

    let started = Instant::now();
    let mut uploads = tokio::task::JoinSet::new();
    let per_task = objects.div_ceil(16).max(1);
    let mut indices = (0..objects).peekable();
    while indices.peek().is_some() {
        let chunk: Vec<usize> = indices.by_ref().take(per_task).collect();
        let (s3, raw) = (bench.s3.clone(), bench.raw.clone());
        uploads.spawn(async move {
            let mut uploaded = Vec::with_capacity(chunk.len());
            for index in chunk {
                let key = format!("arrivals/{index:06}.csv");
                s3.put_object()
                    .bucket(&raw)
                    .key(&key)
                    .body(ByteStream::from(
                        format!("id,units\n{index},{}\n", index % 97).into_bytes(),
                    ))
                    .send()
                    .await
                    .map_err(|err| format!("upload {key}: {err}"))?;
                uploaded.push((key, started.elapsed().as_secs_f64()));
            }
            Ok::<_, String>(uploaded)
        });
    }
    let mut uploaded_at = BTreeMap::new();
    while let Some(done) = uploads.join_next().await {
        uploaded_at.extend(done.map_err(|err| err.to_string())??);
    }
    let upload_seconds = started.elapsed().as_secs_f64();

    // Each object's arrival in scanned-data, seen by listing it every 50 ms.
    let mut arrived_at: BTreeMap<String, f64> = BTreeMap::new();
    let limit = Duration::from_secs(1800);
    while arrived_at.len() < objects {
        if started.elapsed() > limit {
            return Err(format!(
                "{} of {objects} objects reached scanned-data in {limit:?}",
                arrived_at.len()
            ));
        }
        let now = started.elapsed().as_secs_f64();
        let mut after = None;
        loop {
            let listing = bench
                .stack
                .store()
                .list(&scanned, "arrivals/", after.as_deref(), None, 1000)
                .map_err(|err| err.to_string())?;
            for object in &listing.objects {
                arrived_at.entry(object.key.clone()).or_insert(now);
            }
            match (listing.truncated, listing.last) {
                (true, Some(last)) => after = Some(last),
                _ => break,
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total_seconds = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = arrived_at
        .iter()
        .map(|(key, at)| at - uploaded_at.get(key).copied().unwrap_or(0.0))
        .collect();
    latencies.sort_by(f64::total_cmp);

    let executions = bench
        .stack
        .engine()
        .list(bench.stack.state_machine_arn())
        .map_err(|err| format!("{err:?}"))?;
    // The listing holds summaries; each history says whether the run had a job to wait for.
    let executions_that_scanned = executions
        .iter()
        .filter_map(|summary| bench.stack.engine().describe(&summary.arn))
        .filter(|record| super::states_entered(record).contains(&"pollForCompletionWait"))
        .count();
    let macie_jobs = bench
        .stack
        .macie()
        .list_jobs(&serde_json::json!({}))
        .map_err(|err| err.message.clone())?["items"]
        .as_array()
        .map_or(0, Vec::len);
    bench.stack.shutdown().await;
    Ok(ArrivalsReport {
        objects,
        batch_window_seconds: pipe.batching_window_seconds,
        batch_size: pipe.batch_size,
        time_scale,
        macie_delay_seconds,
        upload_seconds,
        latency_median_seconds: latencies[latencies.len() / 2],
        latency_max_seconds: *latencies.last().unwrap_or(&0.0),
        total_seconds,
        executions: executions.len(),
        executions_that_scanned,
        macie_jobs,
    })
}

pub fn table(reports: &[ArrivalsReport]) -> String {
    let mut out = String::from(
        "objects | window s | batch | time scale | Macie delay s | upload s | latency median s | latency max s | total s | runs | runs that scanned | Macie jobs\n",
    );
    out.push_str("---|---|---|---|---|---|---|---|---|---|---|---\n");
    for r in reports {
        out.push_str(&format!(
            "{} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {}\n",
            r.objects,
            r.batch_window_seconds,
            r.batch_size,
            r.time_scale,
            r.macie_delay_seconds,
            r.upload_seconds,
            r.latency_median_seconds,
            r.latency_max_seconds,
            r.total_seconds,
            r.executions,
            r.executions_that_scanned,
            r.macie_jobs,
        ));
    }
    out
}
