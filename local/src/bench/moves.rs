//! The move benchmark: how fast the production raw -> scan-stage pass (triggerMacieScan's loop)
//! moves N objects at concurrency C, against the local stack or any S3-compatible endpoint.
//!
//! Each measured pass runs in a child process (`bench move-worker`) that does nothing else, so its
//! peak resident memory is the handler's own: the figure that shows whether the listing streams.
//! The objects are uploaded once per size and then moved back and forth between two buckets,
//! one concurrency after the other, so upload time is never part of a figure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use aws_types::SdkConfig;
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;

use macie_pipeline::config::{MoveSettings, TriggerConfig};
use macie_pipeline::deadline::Deadline;
use macie_pipeline::handlers::fan_out::MovePath;
use macie_pipeline::handlers::trigger_macie_scan::{ScanProgress, TriggerInput, TriggerMacieScan};
use macie_pipeline::macie::job::JobSettings;
use macie_pipeline::s3::pass::Tally;

/// The S3 endpoint the objects live on.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    /// The local stack's certificate authority: its credentials are used then; otherwise the
    /// SDK's default chain (environment, profile).
    pub local: Option<String>,
}

impl Endpoint {
    pub async fn sdk_config(&self) -> SdkConfig {
        if let Some(ca_pem) = &self.local {
            return crate::stack::sdk_config(&self.url, ca_pem.as_bytes()).await;
        }
        let region = RegionProviderChain::default_provider().or_else("us-east-1");
        aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .endpoint_url(&self.url)
            .load()
            .await
    }

    /// Path-style addressing: S3-compatible servers on a bare address or `localhost` rarely
    /// resolve bucket subdomains.
    pub fn s3(&self, aws: &SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(aws)
                .force_path_style(true)
                .build(),
        )
    }
}

/// What one worker process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerReport {
    pub moved: u64,
    pub moved_bytes: u64,
    pub deferred: u64,
    pub rejected: u64,
    /// Handler invocations: more than one when the pass outlasted an invocation's budget.
    pub invocations: u32,
    pub seconds: f64,
    /// The process's peak resident set (Linux `VmHWM`), None where it cannot be read.
    pub peak_rss_bytes: Option<u64>,
    /// CPU time the process used (user and system), None where it cannot be read.
    pub cpu_seconds: Option<f64>,
}

/// Runs the production move pass from `from` to `to` until nothing is left, the way the state
/// machine drives it: one invocation after another, each with `budget` (Lambda's 15 minutes by
/// default) and the handler's own deadline margin.
pub async fn worker(
    endpoint: &Endpoint,
    from: &str,
    to: &str,
    concurrency: usize,
    budget: Duration,
) -> Result<WorkerReport, String> {
    let margin = MoveSettings::default().deadline_margin;
    if budget <= margin {
        // Every invocation would stop before starting anything, and the pass never end.
        return Err(format!(
            "an invocation's budget must be longer than the handler's {} s deadline margin",
            margin.as_secs()
        ));
    }
    let aws = endpoint.sdk_config().await;
    let config = TriggerConfig {
        raw_bucket: from.to_owned(),
        scan_stage_bucket: to.to_owned(),
        account_id: "000000000000".to_owned(),
        bucket_kms_key: String::new(),
        job: JobSettings::default(),
        moves: MoveSettings {
            concurrency,
            ..MoveSettings::default()
        },
    };
    let mut handler = TriggerMacieScan::new(&aws, config);
    handler.s3 = endpoint.s3(&aws);

    let started = Instant::now();
    let mut progress = None;
    let mut invocations = 0u32;
    let tally: Tally = loop {
        invocations += 1;
        let input = TriggerInput {
            execution_input: json!({"id": "bench-move"}),
            execution_name: "bench-move".to_owned(),
            retry_count: 0,
            progress: progress.take(),
            move_path: MovePath::Loop,
        };
        match handler
            .step(input, Deadline::after(budget))
            .await
            .map_err(|err| format!("the move failed: {err}"))?
        {
            moving @ ScanProgress::Moving { .. } => progress = Some(moving),
            ScanProgress::ReadyToScan { tally, .. } | ScanProgress::NothingToScan { tally, .. } => {
                break tally;
            }
            other @ (ScanProgress::JobStarted { .. }
            | ScanProgress::FanOut { .. }
            | ScanProgress::FannedOut { .. }) => {
                return Err(format!(
                    "the move pass answered {other:?}; it must only move and report"
                ));
            }
        }
    };
    Ok(WorkerReport {
        moved: tally.moved,
        moved_bytes: tally.moved_bytes,
        deferred: tally.deferred,
        rejected: tally.rejected,
        invocations,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        cpu_seconds: cpu_seconds(),
    })
}

/// User and system CPU time from /proc/self/stat (fields 14 and 15, in clock ticks of 1/100 s,
/// the value Linux uses on every architecture Rust targets).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
    // after_name starts at field 3, so fields 14 and 15 are at 11 and 12.
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// `VmHWM` from /proc/self/status: the most this process ever had resident.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One measured pass.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveCase {
    pub objects: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub objects_per_second: f64,
    pub invocations: u32,
    pub peak_rss_mib: Option<f64>,
    /// The handler process's CPU time per object moved, in milliseconds.
    pub cpu_ms_per_object: Option<f64>,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    pub endpoint: Endpoint,
    pub sizes: Vec<usize>,
    pub concurrencies: Vec<usize>,
    pub object_bytes: usize,
    /// This program, started as `bench move-worker` for each pass; None runs the passes in this
    /// process (for tests: no memory figure, since the process also serves the stack).
    pub worker: Option<PathBuf>,
    pub budget: Duration,
}

/// Uploads each size's objects once, then measures one pass per concurrency.
pub async fn run(options: &MoveOptions) -> Result<Vec<MoveCase>, String> {
    let aws = options.endpoint.sdk_config().await;
    let s3 = options.endpoint.s3(&aws);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut cases = Vec::new();
    for &objects in &options.sizes {
        let buckets = [
            format!("mp-bench-{}-{objects}-a", &run_id[..8]),
            format!("mp-bench-{}-{objects}-b", &run_id[..8]),
        ];
        for bucket in &buckets {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|err| format!("CreateBucket {bucket}: {}", err.into_service_error()))?;
        }
        let measured = async {
            upload(&s3, &buckets[0], objects, options.object_bytes).await?;
            let mut sizes = Vec::new();
            for (index, &concurrency) in options.concurrencies.iter().enumerate() {
                let (from, to) = (&buckets[index % 2], &buckets[(index + 1) % 2]);
                let report = match &options.worker {
                    Some(program) => spawn_worker(options, program, from, to, concurrency).await?,
                    None => {
                        let mut report =
                            worker(&options.endpoint, from, to, concurrency, options.budget)
                                .await?;
                        report.peak_rss_bytes = None;
                        report.cpu_seconds = None;
                        report
                    }
                };
                if report.moved != objects as u64 {
                    return Err(format!(
                        "{objects} objects at concurrency {concurrency}: the pass moved {} \
                         ({} deferred, {} rejected)",
                        report.moved, report.deferred, report.rejected
                    ));
                }
                sizes.push(MoveCase {
                    objects,
                    concurrency,
                    seconds: report.seconds,
                    objects_per_second: objects as f64 / report.seconds.max(f64::EPSILON),
                    invocations: report.invocations,
                    peak_rss_mib: report
                        .peak_rss_bytes
                        .map(|bytes| bytes as f64 / (1024.0 * 1024.0)),
                    cpu_ms_per_object: report.cpu_seconds.map(|cpu| cpu * 1000.0 / objects as f64),
                });
                let last = sizes.last().expect("just pushed");
                eprintln!(
                    "moved {objects} objects at concurrency {concurrency}: {:.0} objects/s",
                    last.objects_per_second
                );
            }
            Ok::<_, String>(sizes)
        }
        .await;
        // Clean up even when a pass failed: on a shared endpoint the buckets would linger.
        for bucket in &buckets {
            remove_bucket(&s3, bucket).await?;
        }
        cases.extend(measured?);
    }
    Ok(cases)
}

/// `objects` objects of `bytes` bytes each under a date prefix, 64 uploads at a time.
async fn upload(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    objects: usize,
    bytes: usize,
) -> Result<(), String> {
    let row = "2026-11-28,north,12,1440\n";
    let body: String = row.repeat(bytes.div_ceil(row.len()))[..bytes].to_owned();
    stream::iter(0..objects)
        .map(|index| {
            let body = body.clone();
            async move {
                s3.put_object()
                    .bucket(bucket)
                    .key(format!("landing/2026/11/28/part-{index:07}.csv"))
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|err| format!("PutObject {index}: {}", err.into_service_error()))
            }
        })
        .buffer_unordered(64)
        .try_collect::<()>()
        .await
}

/// Deletes every object of `bucket`, a listing page at a time, then the bucket.
async fn remove_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<(), String> {
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .map_err(|err| format!("ListObjectsV2 {bucket}: {}", err.into_service_error()))?;
        let keys: Vec<ObjectIdentifier> = page
            .contents()
            .iter()
            .filter_map(|object| object.key())
            .filter_map(|key| ObjectIdentifier::builder().key(key).build().ok())
            .collect();
        if keys.is_empty() {
            break;
        }
        let delete = Delete::builder()
            .set_objects(Some(keys))
            .quiet(true)
            .build()
            .map_err(|err| err.to_string())?;
        s3.delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|err| format!("DeleteObjects {bucket}: {}", err.into_service_error()))?;
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|err| format!("DeleteBucket {bucket}: {}", err.into_service_error()))?;
    Ok(())
}

async fn spawn_worker(
    options: &MoveOptions,
    program: &std::path::Path,
    from: &str,
    to: &str,
    concurrency: usize,
) -> Result<WorkerReport, String> {
    let mut command = tokio::process::Command::new(program);
    command
        .args([
            "bench",
            "move-worker",
            "--endpoint-url",
            &options.endpoint.url,
        ])
        .args(["--from", from, "--to", to])
        .args(["--concurrency", &concurrency.to_string()])
        .args([
            "--budget-seconds",
            &options.budget.as_secs_f64().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // The worker gets the authority by file: it is a process of its own.
    let _ca_file;
    if let Some(ca_pem) = &options.endpoint.local {
        let file = tempfile::NamedTempFile::new().map_err(|err| format!("a CA file: {err}"))?;
        std::fs::write(file.path(), ca_pem).map_err(|err| format!("a CA file: {err}"))?;
        command.arg("--local-ca").arg(file.path());
        _ca_file = file;
    }
    let output = command
        .output()
        .await
        .map_err(|err| format!("starting {}: {err}", program.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the move worker ({from} -> {to}, concurrency {concurrency}) failed: {}",
            output.status
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|err| {
        format!(
            "the move worker printed something other than its report ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The cases as a table, one row per size and concurrency.
pub fn table(cases: &[MoveCase]) -> String {
    let mut out = format!(
        "{:>9} {:>11} {:>10} {:>12} {:>11} {:>14} {:>13}\n",
        "objects",
        "concurrency",
        "seconds",
        "objects/s",
        "invocations",
        "peak RSS MiB",
        "CPU ms/object"
    );
    let figure = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
    };
    for case in cases {
        out.push_str(&format!(
            "{:>9} {:>11} {:>10.2} {:>12.0} {:>11} {:>14} {:>13}\n",
            case.objects,
            case.concurrency,
            case.seconds,
            case.objects_per_second,
            case.invocations,
            figure(case.peak_rss_mib, 1),
            figure(case.cpu_ms_per_object, 3),
        ));
    }
    out
}
