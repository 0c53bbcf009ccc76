//! The parts of a Distributed Map that run nothing (specs/stepfunctions.md §9.2): reading an
//! `ItemReader`'s settings, batching items for `ItemBatcher`, and the tolerated-failure
//! threshold. The engine runs the children.

use serde_json::{Value, json};

use super::paths::{self, StatesError};

/// The only reader the gate needs: every object under a prefix.
pub const LIST_OBJECTS_V2: &str = "arn:aws:states:::s3:listObjectsV2";

/// The most a child's input may hold, as in AWS.
pub const MAX_BATCH_BYTES: usize = 262_144;

/// Concurrency when `MaxConcurrency` is absent or 0 (unbounded in AWS, where children run on
/// their own fleet; here they share the local stack).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A number from `Name` or `NamePath` (resolved against the Map's effective input).
pub(super) fn number(
    state: &Value,
    name: &str,
    input: &Value,
    ctx: &Value,
) -> Result<Option<f64>, StatesError> {
    let invalid = |why: String| StatesError::new("States.Runtime", why);
    if let Some(value) = state.get(name) {
        return value
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} must be a number")));
    }
    let path_name = format!("{name}Path");
    match state.get(&path_name).and_then(Value::as_str) {
        None => Ok(None),
        Some(path) => paths::read(path, input, ctx)
            .map_err(invalid)?
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{path_name} {path} is not a number"))),
    }
}

/// Where an `ItemReader` lists: bucket, prefix and the most items to take.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub bucket: String,
    pub prefix: String,
    pub max_items: Option<usize>,
}

impl Listing {
    pub fn from_reader(reader: &Value, input: &Value, ctx: &Value) -> Result<Self, StatesError> {
        let resource = reader["Resource"].as_str().unwrap_or_default();
        if resource != LIST_OBJECTS_V2 {
            return Err(StatesError::new(
                "States.Runtime",
                format!(
                    "ItemReader resource {resource:?} is not supported locally; use {LIST_OBJECTS_V2}"
                ),
            ));
        }
        let parameters =
            paths::build(reader.get("Parameters").unwrap_or(&Value::Null), input, ctx)?;
        let bucket = parameters["Bucket"]
            .as_str()
            .filter(|bucket| !bucket.is_empty())
            .ok_or_else(|| {
                StatesError::new("States.Runtime", "ItemReader Parameters need a Bucket")
            })?
            .to_owned();
        let prefix = parameters["Prefix"].as_str().unwrap_or_default().to_owned();
        let max_items = number(
            reader.get("ReaderConfig").unwrap_or(&Value::Null),
            "MaxItems",
            input,
            ctx,
        )?
        .map(|max| max as usize);
        Ok(Self {
            bucket,
            prefix,
            max_items,
        })
    }
}

/// How `ItemBatcher` groups items into child inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Batcher {
    max_items: Option<usize>,
    max_bytes: usize,
    batch_input: Option<Value>,
}

impl Batcher {
    pub fn from_state(batcher: &Value, input: &Value, ctx: &Value) -> Result<Self, StatesError> {
        let max_items = number(batcher, "MaxItemsPerBatch", input, ctx)?;
        let max_bytes = number(batcher, "MaxInputBytesPerBatch", input, ctx)?;
        if max_items.is_some_and(|n| n < 1.0) || max_bytes.is_some_and(|n| n < 1.0) {
            return Err(StatesError::new(
                "States.Runtime",
                "ItemBatcher limits must be at least 1",
            ));
        }
        let batch_input = batcher
            .get("BatchInput")
            .map(|template| paths::build(template, input, ctx))
            .transpose()?;
        Ok(Self {
            max_items: max_items.map(|n| n as usize),
            max_bytes: max_bytes.map_or(MAX_BATCH_BYTES, |n| (n as usize).min(MAX_BATCH_BYTES)),
            batch_input,
        })
    }

    fn child_input(&self, items: Vec<Value>) -> Value {
        match &self.batch_input {
            Some(batch_input) => json!({"BatchInput": batch_input, "Items": items}),
            None => json!({"Items": items}),
        }
    }

    /// Child inputs, each with how many items it carries. Items keep their order.
    pub fn batch(&self, items: Vec<Value>) -> Result<Vec<(Value, usize)>, StatesError> {
        let overhead = self.child_input(Vec::new()).to_string().len();
        let mut batches = Vec::new();
        let mut current: Vec<Value> = Vec::new();
        let mut bytes = overhead;
        for item in items {
            let size = item.to_string().len() + 1;
            if overhead + size > self.max_bytes {
                return Err(StatesError::new(
                    "States.Runtime",
                    format!(
                        "an item of {size} bytes does not fit a batch of at most {} bytes",
                        self.max_bytes
                    ),
                ));
            }
            let full = self.max_items.is_some_and(|max| current.len() == max)
                || bytes + size > self.max_bytes;
            if full && !current.is_empty() {
                let count = current.len();
                batches.push((self.child_input(std::mem::take(&mut current)), count));
                bytes = overhead;
            }
            bytes += size;
            current.push(item);
        }
        if !current.is_empty() {
            let count = current.len();
            batches.push((self.child_input(current), count));
        }
        Ok(batches)
    }
}

/// How many failed items a Distributed Map tolerates.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    percentage: Option<f64>,
    count: Option<u64>,
}

impl Tolerance {
    pub fn from_state(state: &Value, input: &Value, ctx: &Value) -> Result<Self, StatesError> {
        let percentage = number(state, "ToleratedFailurePercentage", input, ctx)?;
        if percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
            return Err(StatesError::new(
                "States.Runtime",
                "ToleratedFailurePercentage must be between 0 and 100",
            ));
        }
        let count = number(state, "ToleratedFailureCount", input, ctx)?;
        if count.is_some_and(|c| c < 0.0) {
            return Err(StatesError::new(
                "States.Runtime",
                "ToleratedFailureCount must not be negative",
            ));
        }
        Ok(Self {
            percentage,
            count: count.map(|c| c as u64),
        })
    }

    /// Whether `failed` of `total` items is past the threshold; with neither setting, any
    /// failure is (both default to 0). With both, exceeding either is enough.
    pub fn exceeded(&self, failed: u64, total: u64) -> bool {
        if failed == 0 {
            return false;
        }
        let by_percentage = self
            .percentage
            .is_some_and(|p| failed as f64 * 100.0 > p * total.max(1) as f64);
        let by_count = self.count.is_some_and(|c| failed > c);
        match (self.percentage, self.count) {
            (None, None) => true,
            _ => by_percentage || by_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"Key": format!("k{i}")})).collect()
    }

    #[test]
    fn a_reader_lists_the_bucket_and_prefix_it_names() {
        let reader = json!({"Resource": LIST_OBJECTS_V2,
            "Parameters": {"Bucket.$": "$.bucket", "Prefix": "in/"},
            "ReaderConfig": {"MaxItems": 5}});
        let listing = Listing::from_reader(&reader, &json!({"bucket": "raw"}), &json!({})).unwrap();
        assert_eq!(
            listing,
            Listing {
                bucket: "raw".into(),
                prefix: "in/".into(),
                max_items: Some(5)
            }
        );
        let other =
            json!({"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b"}});
        assert!(Listing::from_reader(&other, &json!({}), &json!({})).is_err());
        let nameless = json!({"Resource": LIST_OBJECTS_V2, "Parameters": {}});
        assert!(Listing::from_reader(&nameless, &json!({}), &json!({})).is_err());
    }

    #[test]
    fn batches_hold_at_most_the_item_count_in_order_with_the_batch_input() {
        let batcher = Batcher::from_state(
            &json!({"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$.id"}}),
            &json!({"id": "wf"}),
            &json!({}),
        )
        .unwrap();
        let batches = batcher.batch(items(5)).unwrap();
        assert_eq!(
            batches.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(
            batches[0].0,
            json!({"BatchInput": {"run": "wf"}, "Items": [{"Key": "k0"}, {"Key": "k1"}]})
        );
        assert_eq!(
            batches[2].0,
            json!({"BatchInput": {"run": "wf"}, "Items": [{"Key": "k4"}]})
        );
    }

    #[test]
    fn batches_stay_under_the_byte_limit() {
        let batcher = Batcher::from_state(
            &json!({"MaxInputBytesPerBatch": 60}),
            &json!({}),
            &json!({}),
        )
        .unwrap();
        let batches = batcher.batch(items(10)).unwrap();
        assert!(batches.len() > 1);
        assert!(
            batches
                .iter()
                .all(|(input, _)| input.to_string().len() <= 60)
        );
        assert_eq!(batches.iter().map(|(_, n)| n).sum::<usize>(), 10);
        let tiny =
            Batcher::from_state(&json!({"MaxInputBytesPerBatch": 5}), &json!({}), &json!({}))
                .unwrap();
        assert!(
            tiny.batch(items(1)).is_err(),
            "an item that cannot fit is an error"
        );
    }

    #[test]
    fn failures_are_tolerated_up_to_the_threshold_only() {
        let none = Tolerance::from_state(&json!({}), &json!({}), &json!({})).unwrap();
        assert!(!none.exceeded(0, 10));
        assert!(none.exceeded(1, 10));
        let ten_percent = Tolerance::from_state(
            &json!({"ToleratedFailurePercentage": 10}),
            &json!({}),
            &json!({}),
        )
        .unwrap();
        assert!(!ten_percent.exceeded(1, 10));
        assert!(ten_percent.exceeded(2, 10));
        let two = Tolerance::from_state(
            &json!({"ToleratedFailureCountPath": "$.n"}),
            &json!({"n": 2}),
            &json!({}),
        )
        .unwrap();
        assert!(!two.exceeded(2, 1000));
        assert!(two.exceeded(3, 1000));
        let both = Tolerance::from_state(
            &json!({"ToleratedFailurePercentage": 50, "ToleratedFailureCount": 1}),
            &json!({}),
            &json!({}),
        )
        .unwrap();
        assert!(both.exceeded(2, 100), "either threshold is enough");
        assert!(
            Tolerance::from_state(
                &json!({"ToleratedFailurePercentage": 101}),
                &json!({}),
                &json!({})
            )
            .is_err()
        );
    }
}
