//! Evaluation, one module per state type over the typed definition, plus the parts they share:
//! the frame a state runs in, the context object, the data flow of a state's paths and
//! templates, and Retry and Catch. `run` dispatches on the state type and runs sub-machines.

pub mod choice;
pub mod context;
pub mod dataflow;
pub mod distributed;
pub mod fail;
pub mod frame;
pub mod map;
pub mod parallel;
pub mod pass;
pub mod retry;
pub mod run;
pub mod succeed;
pub mod task;
pub mod wait;
