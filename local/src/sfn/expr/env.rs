//! What an expression is evaluated against.

use std::collections::BTreeMap;

use serde_json::Value;

/// Workflow variables in scope: the execution's, plus (inside a Parallel branch or a Map
/// iteration) the ones assigned there, which the outer scope never sees.
pub type Variables = BTreeMap<String, Value>;

/// What an expression reads: `$` the value at hand, `$$` the context object, `$name` variables.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub input: &'a Value,
    pub context: &'a Value,
    pub variables: &'a Variables,
}

impl<'a> Env<'a> {
    pub fn new(input: &'a Value, context: &'a Value, variables: &'a Variables) -> Self {
        Self {
            input,
            context,
            variables,
        }
    }

    /// The same context and variables over another `$`.
    pub fn with_input(self, input: &'a Value) -> Self {
        Self { input, ..self }
    }
}
