//! The expressions of the JSONPath query language, parsed once when a definition loads: paths
//! (`$.a`, `$$.Execution.Id`, `$variable.field`), reference paths (ResultPath), payload
//! templates with `.$` keys, and intrinsic functions. Evaluating one needs only an [`Env`].

pub mod env;
pub mod intrinsics;
pub mod path;
pub mod reference;
pub mod template;
pub mod timestamp;
