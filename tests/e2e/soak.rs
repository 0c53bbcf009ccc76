//! The short soak `.ci/run` runs (through the test command): fixed seeds of the randomized soak
//! in `e2e::soak`, each a full run with random objects, faults and outcome, checked against the
//! invariants. The 1,000-run soak is `cargo run -p e2e --bin soak -- --seeds 1..1001`.

use e2e::soak::{self, Sabotage};

/// Seeds covering every outcome (approve, deny, both timeouts, cancelled and paused jobs), an
/// overlapping execution, late uploads, rewritten keys, versioned buckets and the stack's KMS key;
/// see docs/RELIABILITY.md.
const SEEDS: std::ops::Range<u64> = 1..13;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fixed_seeds_keep_every_invariant() {
    let mut failures = Vec::new();
    let mut outcomes = std::collections::BTreeSet::new();
    let (mut rewriting, mut versioned, mut encrypted) = (0, 0, 0);
    for seed in SEEDS {
        let report = soak::run(seed).await;
        outcomes.insert(format!("{:?}", report.outcome));
        rewriting += usize::from(report.rewrites > 0);
        versioned += usize::from(report.versioning);
        encrypted += usize::from(report.encrypted);
        if !report.violations.is_empty() {
            failures.push(format!("seed {seed}: {:#?}", report.violations));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        outcomes.len() >= 5,
        "the seeds cover the outcomes: {outcomes:?}"
    );
    assert!(
        rewriting >= 3 && versioned >= 2 && encrypted >= 3,
        "the seeds rewrite keys ({rewriting} runs), version buckets ({versioned} runs) and use \
         the stack's KMS key ({encrypted} runs)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checks_catch_a_lost_a_duplicated_and_an_altered_object() {
    for (how, expected) in [
        (Sabotage::LoseOne, "lost"),
        (Sabotage::DuplicateOne, "places"),
        (Sabotage::AlterOne, "content changed"),
    ] {
        // Seed 3 approves a run with flagged and clean objects.
        let report = soak::run_with(3, how).await;
        assert!(
            report.violations.iter().any(|v| v.contains(expected)),
            "{how:?}: {:#?}",
            report.violations
        );
    }
    // Seed 2 runs on the stack's KMS key.
    let report = soak::run_with(2, Sabotage::UnencryptOne).await;
    assert!(report.encrypted);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains("not the stack's key")),
        "{:#?}",
        report.violations
    );
}
