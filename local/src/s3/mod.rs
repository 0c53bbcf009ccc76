//! The local S3: the `s3s` protocol implementation over a data directory.

pub mod encryption;
pub mod service;
pub mod store;
pub mod versions;

use std::path::Path;
use std::sync::Arc;

use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};

pub use service::LocalS3;
pub use store::Store;

/// The secret access key every local request is signed with. Any access key id is accepted;
/// S3 requests are verified with this secret (the other services only read the signing scope).
pub const SECRET_ACCESS_KEY: &str = "local-secret";

/// Accepts any access key id with [`SECRET_ACCESS_KEY`], so S3 signatures are really checked.
struct LocalAuth;

#[async_trait::async_trait]
impl S3Auth for LocalAuth {
    async fn get_secret_key(&self, _access_key: &str) -> S3Result<SecretKey> {
        Ok(SecretKey::from(SECRET_ACCESS_KEY))
    }
}

/// Opens the store under `dir` and builds the S3 service over it, path-style.
pub fn service(
    dir: &Path,
    kms: Arc<crate::kms::Kms>,
) -> Result<(Arc<Store>, S3Service), store::StoreError> {
    let store = Arc::new(Store::open(dir)?);
    let mut builder = S3ServiceBuilder::new(LocalS3::new(Arc::clone(&store), kms));
    builder.set_auth(LocalAuth);
    Ok((store, builder.build()))
}
