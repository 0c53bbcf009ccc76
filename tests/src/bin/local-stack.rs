//! A local stack with the end-to-end settings (waits scaled to a thousandth), served until the
//! process is killed: the restart tests kill it mid-run and start it again on the same data
//! directory, as a crash of the real process would. Prints one JSON line describing the stack.
//!
//! `local-stack DATA_DIR PORT [--slow-macie] [--move-latency-ms N]`

use macie_pipeline::deployment::Bucket;
use macie_pipeline_local::faults::{FaultError, FaultRule};
use macie_pipeline_local::stack::LocalStack;

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, port, flags @ ..] = args.as_slice() else {
        return Err("usage: local-stack DATA_DIR PORT [--slow-macie] [--move-latency-ms N]".into());
    };
    let mut config = e2e::test_config(std::path::Path::new(dir));
    config.port = port.parse().map_err(|_| format!("{port}: not a port"))?;
    let mut latency = None;
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            // Macie jobs stay RUNNING, so the run keeps polling.
            "--slow-macie" => config.macie.startup_delay_seconds = 1e9,
            // Slows each copy, so a test can stop the process in the middle of a move.
            "--move-latency-ms" => {
                let value = flags.next().ok_or("--move-latency-ms needs a value")?;
                latency = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("{value}: not a number"))?,
                );
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let stack = LocalStack::start(config).await?;
    if let Some(latency_ms) = latency {
        stack.faults().add(FaultRule {
            service: "s3".into(),
            operation: Some("CopyObject".into()),
            error: FaultError::None,
            count: None,
            probability: None,
            latency_ms: Some(latency_ms),
        })?;
    }
    let bucket = |b: Bucket| stack.deployment().bucket(b.logical_id()).to_owned();
    println!(
        "{}",
        serde_json::json!({
            "endpoint": stack.endpoint(),
            "caPem": stack.ca_pem(),
            "stateMachineArn": stack.state_machine_arn(),
            "outbox": stack.outbox(),
            "raw": bucket(Bucket::Raw),
            "scanStage": bucket(Bucket::ScanStage),
            "manualReview": bucket(Bucket::ManualReview),
            "scannedData": bucket(Bucket::ScannedData),
        })
    );
    std::future::pending::<()>().await;
    Ok(())
}
