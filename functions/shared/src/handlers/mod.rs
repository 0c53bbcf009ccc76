//! One module per Lambda function. The binaries under `functions/` only wire these up, so tests
//! and the local stack call the same code.

pub mod check_macie_status;
pub mod delete_manual_review_files;
pub mod fan_out;
pub mod get_findings_count;
pub mod move_all_scan_stage_files;
pub mod move_to_scanned_data_files;
pub mod receive_approval_decision;
pub mod steps;
pub mod trigger_macie_scan;
pub mod trigger_manual_approval;
