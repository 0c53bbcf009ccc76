//! Handler behaviour against SDK mocks: every AWS error becomes a typed error, never a success,
//! and the requests themselves carry the fixes for the reference's defects (one copy that merges
//! tags, conditional deletes, a job client token, encoded links, no decision on GET).

mod approval_api;
mod findings;
mod mocks;
mod routing;
mod status;
mod trigger;
