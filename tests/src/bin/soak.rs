//! `cargo run -p e2e --bin soak -- [--seeds FIRST..END | --seed N] [--jobs N]`: the randomized
//! soak (see `e2e::soak`), N runs at a time, each on its own local stack. Prints one line per
//! run and a summary; exits 1 if any invariant was violated, naming the seeds (replay one with
//! `--seed N`).

use std::process::ExitCode;

use futures::FutureExt;

struct Options {
    seeds: std::ops::Range<u64>,
    jobs: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        seeds: 1..21,
        jobs: 1,
    };
    let mut args = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
        value
            .parse()
            .map_err(|_| format!("{flag} {value}: not a number"))
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--seed" => {
                let seed = number("--seed", args.next())?;
                options.seeds = seed..seed + 1;
            }
            "--seeds" => {
                let value = args.next().ok_or("--seeds needs FIRST..END")?;
                let (first, end) = value
                    .split_once("..")
                    .ok_or_else(|| format!("--seeds {value}: expected FIRST..END"))?;
                options.seeds =
                    number("--seeds", Some(first.into()))?..number("--seeds", Some(end.into()))?;
            }
            "--jobs" => options.jobs = number("--jobs", args.next())?.max(1) as usize,
            other => {
                return Err(format!(
                    "{other}: usage: soak [--seeds FIRST..END | --seed N] [--jobs N]"
                ));
            }
        }
    }
    Ok(options)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let (mut runs, mut faults, mut crashes, mut objects, mut executions, mut continued) =
        (0u64, 0u64, 0u64, 0usize, 0usize, 0u64);
    let mut loops = 0usize;
    let mut mapped = 0u64;
    let (mut versioned, mut rewriting, mut rewrites, mut versions) = (0u64, 0u64, 0usize, 0usize);
    let mut encrypted = 0u64;
    let (mut superseded, mut held_aside, mut waited) = (0u64, 0usize, 0u64);
    let mut failing = Vec::new();
    let mut seeds = options.seeds.clone();
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < options.jobs {
            let Some(seed) = seeds.next() else { break };
            // A run that panics (say, the harness's own upload failing for good) is a failing
            // seed in the summary, not the end of the soak.
            running.spawn(async move {
                let outcome = std::panic::AssertUnwindSafe(e2e::soak::run(seed))
                    .catch_unwind()
                    .await;
                (seed, outcome)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (seed, outcome) = joined.expect("soak tasks are not cancelled");
        let report = match outcome {
            Ok(report) => report,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("seed {seed:>5}: the run panicked: {message}");
                runs += 1;
                failing.push(seed);
                continue;
            }
        };
        runs += 1;
        faults += report.faults_injected;
        crashes += report.crashes;
        continued += u64::from(report.continuations);
        mapped += u64::from(report.map_path);
        loops += report.continuation_loops;
        objects += report.objects;
        executions += report.executions;
        versioned += u64::from(report.versioning);
        encrypted += u64::from(report.encrypted);
        rewriting += u64::from(report.rewrites > 0);
        rewrites += report.rewrites;
        versions += report.versions;
        superseded += report.superseded;
        held_aside += report.held_aside;
        waited += report.waited;
        println!(
            "seed {seed:>5}: {:<12}{}{}{} {} object(s) ({} flagged), {} fault(s) injected ({} crash(es)), {} -> {}",
            format!("{:?}", report.outcome),
            if report.continuations {
                format!(" +{} continuation(s)", report.continuation_loops)
            } else if report.map_path {
                " via Distributed Maps".to_owned()
            } else {
                String::new()
            },
            match (report.versioning, report.encrypted) {
                (true, true) => " versioned SSE-KMS",
                (true, false) => " versioned",
                (false, true) => " SSE-KMS",
                (false, false) => "",
            },
            if report.rewrites > 0 {
                format!(
                    " {} rewrite(s) ({} kept aside, {} held aside, {} waited)",
                    report.rewrites, report.superseded, report.held_aside, report.waited
                )
            } else {
                String::new()
            },
            report.objects,
            report.flagged,
            report.faults_injected,
            report.crashes,
            report.statuses.join(", "),
            if report.violations.is_empty() {
                "ok".to_owned()
            } else {
                format!("{} VIOLATION(S)", report.violations.len())
            }
        );
        for violation in &report.violations {
            println!("    seed {seed}: {violation}");
        }
        if !report.violations.is_empty() {
            failing.push(seed);
        }
    }
    failing.sort_unstable();
    println!(
        "{runs} run(s) ({continued} with short deadlines: {loops} continuations; {mapped} through Distributed Maps; {versioned} with versioned buckets; {encrypted} under the stack's KMS key; {rewriting} rewriting keys: {rewrites} rewrite(s), {superseded} version(s) kept aside, {held_aside} review(s) holding a version aside, {waited} version(s) waiting behind an earlier one), {executions} execution(s), {objects} key(s), {versions} version(s), {faults} fault(s) injected of which {crashes} crash(es), {} violating seed(s){} in {:.0} s",
        failing.len(),
        if failing.is_empty() {
            String::new()
        } else {
            format!(": {failing:?}")
        },
        started.elapsed().as_secs_f64()
    );
    if failing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
