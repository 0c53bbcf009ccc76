//! Map: runs the item processor for each item, at most `MaxConcurrency` at once, and returns
//! the outputs in item order. Inline, items come from ItemsPath and the first failure fails the
//! Map. Distributed (`ProcessorConfig.Mode` DISTRIBUTED), items may come from an `ItemReader`
//! listing and be grouped by `ItemBatcher`, and failures count against the tolerated threshold.
//! Locally the children run inside the parent execution rather than as child executions, and a
//! tolerated failure leaves `{"Error", "Cause"}` where its output would be.

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use super::context;
use super::dataflow;
use super::distributed::{self, Batcher, Listing, Tolerance};
use super::frame::{Frame, Outcome, Scope, Visit};
use super::retry;
use crate::sfn::definition::state::{Map, Node};
use crate::sfn::error::{EXCEED_TOLERATED_FAILURE_THRESHOLD, StatesError};
use crate::sfn::expr::env::{Env, Variables};

/// Inline concurrency when `MaxConcurrency` is absent or 0 (about what AWS runs).
const INLINE_CONCURRENCY: usize = 40;

pub async fn run(
    frame: Frame<'_>,
    node: &Node,
    map: &Map,
    visit: &Visit<'_>,
) -> Result<Outcome, StatesError> {
    retry::recover(frame, node, &map.recovery, visit, 0, |retry_count| {
        attempt(frame, node, map, visit, retry_count)
    })
    .await
}

/// The items: a listing for a reader, else the array at ItemsPath.
async fn items(frame: Frame<'_>, map: &Map, env: &Env<'_>) -> Result<Vec<Value>, StatesError> {
    if let Some(reader) = &map.item_reader {
        let listing = Listing::resolve(reader, env)?;
        let mut objects = frame
            .runtime
            .integrations
            .list_objects(listing.bucket, listing.prefix)
            .await?;
        if let Some(max) = listing.max_items {
            objects.truncate(max);
        }
        return Ok(objects);
    }
    let items = match &map.items_path {
        Some(path) => path
            .read(env)
            .map_err(|_| StatesError::runtime(path.invalid()))?,
        None => env.input.clone(),
    };
    match items {
        Value::Array(items) => Ok(items),
        other => Err(StatesError::runtime(format!(
            "Map state input must be an array but was: {other}"
        ))),
    }
}

async fn attempt(
    frame: Frame<'_>,
    node: &Node,
    map: &Map,
    visit: &Visit<'_>,
    retry_count: u32,
) -> Result<(Value, Variables), StatesError> {
    let ctx = context::object(
        frame.execution,
        &node.name,
        visit.entered_ms,
        Some(retry_count),
    );
    let env = Env::new(&visit.input, &ctx, visit.variables);
    let effective = dataflow::select(&node.common.input_path, &visit.input, env)?;
    let env_effective = env.with_input(&effective);
    let items = items(frame, map, &env_effective).await?;
    let unbounded = if map.distributed {
        distributed::DEFAULT_CONCURRENCY
    } else {
        INLINE_CONCURRENCY
    };
    let concurrency = match distributed::number(map.max_concurrency.as_ref(), &env_effective)? {
        Some(n) if n < 0.0 || n.fract() != 0.0 => {
            return Err(StatesError::runtime(format!(
                "MaxConcurrency must be a non-negative integer, not {n}"
            )));
        }
        None | Some(0.0) => unbounded,
        Some(n) => n as usize,
    };
    // ItemSelector applies to each item, then ItemBatcher groups the results.
    let mut inputs = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let item_ctx = context::with_item(&ctx, index, item);
        inputs.push(match &map.item_selector {
            Some(template) => template.build(&Env::new(&effective, &item_ctx, visit.variables))?,
            None => item_ctx["Map"]["Item"]["Value"].clone(),
        });
    }
    let total_items = inputs.len();
    let children: Vec<(Value, usize)> = match &map.item_batcher {
        Some(batcher) => Batcher::resolve(batcher, &env_effective)?.batch(inputs)?,
        None => inputs.into_iter().map(|input| (input, 1)).collect(),
    };
    let tolerance = if map.distributed {
        Some(Tolerance::resolve(map, &env_effective)?)
    } else {
        None
    };
    frame.event(
        "MapStateStarted",
        json!({"mapStateStartedEventDetails": {"length": children.len()}}),
    );
    // A Distributed Map's children are child executions of the same state machine, which its
    // role must be allowed to start and describe (and stop, when the Map fails).
    let map_run = format!(
        "{}/{}",
        frame
            .execution
            .machine_arn
            .replace(":stateMachine:", ":execution:"),
        uuid::Uuid::new_v4()
    );
    let integrations = &frame.runtime.integrations;
    if map.distributed {
        integrations.authorize("states:StartExecution", &frame.execution.machine_arn)?;
        frame.event("MapRunStarted", json!({"mapRunStartedEventDetails": {"items": total_items, "children": children.len()}}));
    }
    let scope = if map.distributed {
        Scope::Child
    } else {
        Scope::Nested
    };
    let runs = stream::iter(children.into_iter().enumerate())
        .map(|(index, (input, weight))| {
            let map_run = &map_run;
            let run = async move {
                if map.distributed {
                    integrations.authorize("states:DescribeExecution", &format!("{map_run}:{index}"))?;
                } else {
                    frame.event("MapIterationStarted", json!({"mapIterationStartedEventDetails": {"index": index, "name": node.name}}));
                }
                let output = frame
                    .interpreter
                    .run_machine(frame.nested(scope), &map.processor, input, visit.variables.clone())
                    .await;
                if !map.distributed {
                    let kind = if output.is_ok() { "MapIterationSucceeded" } else { "MapIterationFailed" };
                    let key = if output.is_ok() { "mapIterationSucceededEventDetails" } else { "mapIterationFailedEventDetails" };
                    frame.event(kind, json!({ key: {"index": index, "name": node.name} }));
                }
                output
            };
            async move { (run.await, weight) }
        })
        .buffered(concurrency.max(1));
    let outputs: Vec<Value> = match &tolerance {
        // Inline: the first failure fails the Map and stops the other iterations.
        None => match runs.map(|(outcome, _)| outcome).try_collect().await {
            Ok(outputs) => outputs,
            Err(err) => {
                frame.event("MapStateFailed", json!({}));
                return Err(err);
            }
        },
        // Distributed: every child runs; failures count against the threshold, and a
        // tolerated failure leaves its error in the output where its result would be.
        Some(tolerance) => {
            let finished: Vec<(Result<Value, StatesError>, usize)> = runs.collect().await;
            let failed: usize = finished
                .iter()
                .filter(|(outcome, _)| outcome.is_err())
                .map(|(_, weight)| weight)
                .sum();
            if tolerance.exceeded(failed as u64, total_items as u64) {
                integrations.authorize("states:StopExecution", &format!("{map_run}:0"))?;
                frame.event("MapRunFailed", json!({"mapRunFailedEventDetails": {"failedItems": failed, "items": total_items}}));
                frame.event("MapStateFailed", json!({}));
                let first = finished
                    .iter()
                    .find_map(|(outcome, _)| outcome.as_ref().err())
                    .map_or_else(String::new, |err| {
                        format!(
                            "; first: {}: {}",
                            err.error,
                            err.cause.clone().unwrap_or_default()
                        )
                    });
                return Err(StatesError::new(
                    EXCEED_TOLERATED_FAILURE_THRESHOLD,
                    format!("{failed} of {total_items} items failed{first}"),
                ));
            }
            frame.event("MapRunSucceeded", json!({"mapRunSucceededEventDetails": {"failedItems": failed, "items": total_items}}));
            finished
                .into_iter()
                .map(|(outcome, _)| outcome.unwrap_or_else(|err| err.output()))
                .collect()
        }
    };
    frame.event("MapStateSucceeded", json!({}));
    dataflow::finish(
        &node.common,
        map.result_selector.as_ref(),
        &map.result_path,
        visit.input.clone(),
        Value::Array(outputs),
        env,
    )
}
