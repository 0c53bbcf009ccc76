//! The parts of a Distributed Map that run nothing (specs/stepfunctions.md §9.2): an
//! `ItemReader`'s listing, batching items for `ItemBatcher`, and the tolerated-failure
//! threshold, each resolved against the Map's effective input.

use serde_json::{Value, json};

use crate::sfn::definition::fields::NumberField;
use crate::sfn::definition::state::{ItemBatcher, ItemReader, Map};
use crate::sfn::error::StatesError;
use crate::sfn::expr::env::Env;

/// The most a child's input may hold, as in AWS.
pub const MAX_BATCH_BYTES: usize = 262_144;

/// Concurrency when `MaxConcurrency` is absent or 0 (unbounded in AWS, where children run on
/// their own fleet; here they share the local stack).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A number field's value.
pub fn number(field: Option<&NumberField>, env: &Env) -> Result<Option<f64>, StatesError> {
    match field {
        None => Ok(None),
        Some(NumberField::Fixed(value)) => Ok(Some(*value)),
        Some(NumberField::Path { field, path }) => {
            let value = path
                .read(env)
                .map_err(|_| StatesError::runtime(path.invalid()))?;
            value
                .as_f64()
                .filter(|_| value.is_number())
                .map(Some)
                .ok_or_else(|| {
                    StatesError::runtime(format!(
                        "The {field} field refers to value {value}, which is not a number: {}",
                        path.text()
                    ))
                })
        }
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
    pub fn resolve(reader: &ItemReader, env: &Env) -> Result<Self, StatesError> {
        let parameters = reader.parameters.build(env)?;
        let bucket = parameters["Bucket"]
            .as_str()
            .filter(|bucket| !bucket.is_empty())
            .ok_or_else(|| StatesError::runtime("ItemReader Parameters need a Bucket"))?
            .to_owned();
        let prefix = parameters["Prefix"].as_str().unwrap_or_default().to_owned();
        let max_items = match number(reader.max_items.as_ref(), env)? {
            Some(max) if max < 1.0 => {
                return Err(StatesError::runtime("field MaxItems must be positive"));
            }
            other => other.map(|max| max as usize),
        };
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
    pub fn resolve(batcher: &ItemBatcher, env: &Env) -> Result<Self, StatesError> {
        let max_items = number(batcher.max_items_per_batch.as_ref(), env)?;
        let max_bytes = number(batcher.max_input_bytes_per_batch.as_ref(), env)?;
        if max_items.is_some_and(|n| n < 1.0) || max_bytes.is_some_and(|n| n < 1.0) {
            return Err(StatesError::runtime(
                "ItemBatcher limits must be at least 1",
            ));
        }
        let batch_input = batcher
            .batch_input
            .as_ref()
            .map(|template| template.build(env))
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
                return Err(StatesError::runtime(format!(
                    "an item of {size} bytes does not fit a batch of at most {} bytes",
                    self.max_bytes
                )));
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
    pub fn resolve(map: &Map, env: &Env) -> Result<Self, StatesError> {
        let percentage = number(map.tolerated_failure_percentage.as_ref(), env)?;
        if percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
            return Err(StatesError::runtime(
                "ToleratedFailurePercentage must be between 0 and 100.",
            ));
        }
        let count = number(map.tolerated_failure_count.as_ref(), env)?;
        if count.is_some_and(|c| c < 0.0) {
            return Err(StatesError::runtime(
                "ToleratedFailureCount cannot be negative.",
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
    use crate::sfn::expr::env::Variables;
    use crate::sfn::expr::template::Template;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"Key": format!("k{i}")})).collect()
    }

    fn batcher(
        max_items: Option<f64>,
        max_bytes: Option<f64>,
        batch_input: Option<Value>,
    ) -> Batcher {
        let (input, context, variables) = (json!({"id": "wf"}), json!({}), Variables::new());
        let definition = ItemBatcher {
            max_items_per_batch: max_items.map(NumberField::Fixed),
            max_input_bytes_per_batch: max_bytes.map(NumberField::Fixed),
            batch_input: batch_input.map(|b| Template::parse(&b, "BatchInput").unwrap()),
        };
        Batcher::resolve(&definition, &Env::new(&input, &context, &variables)).unwrap()
    }

    #[test]
    fn batches_hold_at_most_the_item_count_in_order_with_the_batch_input() {
        let batches = batcher(Some(2.0), None, Some(json!({"run.$": "$.id"})))
            .batch(items(5))
            .unwrap();
        assert_eq!(
            batches.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(
            batches[0].0,
            json!({"BatchInput": {"run": "wf"}, "Items": [{"Key": "k0"}, {"Key": "k1"}]})
        );
    }

    #[test]
    fn batches_stay_under_the_byte_limit() {
        let batches = batcher(None, Some(60.0), None).batch(items(10)).unwrap();
        assert!(batches.len() > 1);
        assert!(
            batches
                .iter()
                .all(|(input, _)| input.to_string().len() <= 60)
        );
        assert_eq!(batches.iter().map(|(_, n)| n).sum::<usize>(), 10);
        assert!(
            batcher(None, Some(5.0), None).batch(items(1)).is_err(),
            "an item that cannot fit"
        );
    }

    #[test]
    fn failures_are_tolerated_up_to_the_threshold_only() {
        let tolerance =
            |percentage: Option<f64>, count: Option<u64>| Tolerance { percentage, count };
        assert!(!tolerance(None, None).exceeded(0, 10));
        assert!(tolerance(None, None).exceeded(1, 10));
        assert!(!tolerance(Some(10.0), None).exceeded(1, 10));
        assert!(tolerance(Some(10.0), None).exceeded(2, 10));
        assert!(!tolerance(None, Some(2)).exceeded(2, 1000));
        assert!(tolerance(None, Some(2)).exceeded(3, 1000));
        assert!(
            tolerance(Some(50.0), Some(1)).exceeded(2, 100),
            "either threshold is enough"
        );
    }
}
