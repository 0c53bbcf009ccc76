//! The local S3: the `s3s` protocol implementation over a data directory.

pub mod service;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use s3s::service::{S3Service, S3ServiceBuilder};

pub use service::LocalS3;
pub use store::Store;

/// Opens the store under `dir` and builds the S3 service over it, path-style.
pub fn service(dir: &Path) -> Result<(Arc<Store>, S3Service), store::StoreError> {
    let store = Arc::new(Store::open(dir)?);
    let service = S3ServiceBuilder::new(LocalS3::new(Arc::clone(&store))).build();
    Ok((store, service))
}
