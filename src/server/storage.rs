//! Object storage through `aws-sdk-s3`: the same code talks to the embedded endpoint, Garage,
//! MinIO or AWS. Objects are written under fresh keys only, so a reference, once stored in
//! the database, always names the same bytes.

mod presign;

use std::sync::Arc;
use std::time::SystemTime;

use aws_sdk_s3::config::{Builder, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use aws_sdk_s3::Client;

use self::presign::UrlSigner;
use super::config::S3Config;
use super::error::AppError;

#[derive(Clone, Debug)]
pub struct ObjectStore {
    client: Client,
    /// Signs URLs with the endpoint browsers use, which may differ from the server's.
    signer: Arc<UrlSigner>,
    bucket: String,
    key_prefix: String,
}

/// Endpoint and keys the store connects with (resolved from `S3Config`, or the embedded endpoint).
pub struct Connection {
    pub endpoint: Option<String>,
    pub public_endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl ObjectStore {
    /// Refuses a presigned URL lifetime S3 does not accept.
    pub fn new(config: &S3Config, connection: Connection) -> Result<Self, String> {
        let build = |endpoint: Option<&String>| {
            let mut builder = Builder::new()
                .region(Region::new(config.s3_region.clone()))
                .credentials_provider(Credentials::new(
                    &connection.access_key_id,
                    &connection.secret_access_key,
                    None,
                    None,
                    "seglab-config",
                ))
                .behavior_version_latest()
                // No aws-chunked uploads with trailing checksums: Garage refuses their signatures
                // on streamed (file) bodies. In-memory bodies are then signed with their SHA-256;
                // files go as UNSIGNED-PAYLOAD, under TLS in production.
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
            if let Some(endpoint) = endpoint {
                // Self-hosted servers (Garage, MinIO, the embedded one) want path-style URLs.
                builder = builder.endpoint_url(endpoint).force_path_style(true);
            }
            Client::from_conf(builder.build())
        };
        let signer = UrlSigner::new(
            connection.public_endpoint.as_ref().or(connection.endpoint.as_ref()).map(String::as_str),
            &config.s3_bucket,
            &config.s3_region,
            Credentials::new(&connection.access_key_id, &connection.secret_access_key, None, None, "seglab-config"),
            config.presign_ttl(),
        )?;
        Ok(Self {
            client: build(connection.endpoint.as_ref()),
            signer: Arc::new(signer),
            bucket: config.s3_bucket.clone(),
            key_prefix: config.s3_key_prefix.clone(),
        })
    }

    fn full_key(&self, object_ref: &str) -> String {
        format!("{}{}", self.key_prefix, object_ref)
    }

    /// When the URLs [`Self::presign_get`] gives now expire, at the earliest (epoch milliseconds).
    pub(crate) fn presigned_urls_expire_at_ms(&self) -> i64 {
        self.signer.expiry_ms(SystemTime::now())
    }

    /// Creates the bucket when it does not exist yet (embedded store, first run).
    pub(crate) async fn ensure_bucket(&self) -> Result<(), AppError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        self.client.create_bucket().bucket(&self.bucket).send().await.map_err(storage_error)?;
        Ok(())
    }

    /// Lets pages from `origins` GET objects with presigned URLs (a bucket CORS rule).
    pub(crate) async fn allow_cors(&self, origins: &[String]) -> Result<(), AppError> {
        let rule = CorsRule::builder()
            .set_allowed_origins(Some(origins.to_vec()))
            .allowed_methods("GET")
            .allowed_methods("HEAD")
            .allowed_headers("*")
            .expose_headers("Content-Length")
            .expose_headers("ETag")
            .max_age_seconds(3600)
            .build()
            .map_err(AppError::internal)?;
        let cors = CorsConfiguration::builder().cors_rules(rule).build().map_err(AppError::internal)?;
        self.client
            .put_bucket_cors()
            .bucket(&self.bucket)
            .cors_configuration(cors)
            .send()
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// Readiness probe: the bucket is reachable with our credentials.
    pub(crate) async fn ping(&self) -> Result<(), AppError> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(storage_error)?;
        Ok(())
    }

    pub async fn put(&self, object_ref: &str, bytes: Vec<u8>) -> Result<(), AppError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(object_ref))
            .content_type("application/gzip")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// Stores the file at `path` as `object_ref`, streamed from disk.
    pub(crate) async fn put_file(&self, object_ref: &str, path: &std::path::Path) -> Result<(), AppError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| AppError::internal(format!("cannot read {}: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(object_ref))
            .content_type("application/gzip")
            .body(body)
            .send()
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    pub async fn get(&self, object_ref: &str) -> Result<Vec<u8>, AppError> {
        let body = self.body(object_ref).await?.collect().await.map_err(|e| {
            metrics::counter!("seglab_object_store_errors_total").increment(1);
            AppError::Unavailable { service: "object storage", detail: e.to_string() }
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// The object at `object_ref` as a stream, for reading without holding it whole.
    pub(crate) async fn get_reader(
        &self,
        object_ref: &str,
    ) -> Result<impl tokio::io::AsyncBufRead + Send + Unpin, AppError> {
        Ok(self.body(object_ref).await?.into_async_read())
    }

    async fn body(&self, object_ref: &str) -> Result<ByteStream, AppError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(object_ref))
            .send()
            .await
            .map_err(storage_error)?;
        Ok(output.body)
    }

    pub async fn delete(&self, object_ref: &str) -> Result<(), AppError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(object_ref))
            .send()
            .await
            .map_err(storage_error)?;
        Ok(())
    }

    /// A GET URL for this one object, valid for at least the configured time; the same URL
    /// for a while (see [`presign`]).
    pub(crate) fn presign_get(&self, object_ref: &str) -> Result<String, AppError> {
        Ok(self.signer.url(&self.full_key(object_ref), SystemTime::now())?.to_string())
    }

    /// References of the stored objects under `prefix` (relative to the key prefix).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, AppError> {
        Ok(self.list_with_age(prefix).await?.into_iter().map(|(r, _)| r).collect())
    }

    /// Stored objects under `prefix` with their last-modified time (epoch milliseconds).
    pub(crate) async fn list_with_age(&self, prefix: &str) -> Result<Vec<(String, i64)>, AppError> {
        let mut refs = Vec::new();
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(self.full_key(prefix)).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(storage_error)?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    let modified = object.last_modified().and_then(|t| t.to_millis().ok()).unwrap_or(0);
                    refs.push((key[self.key_prefix.len()..].to_string(), modified));
                }
            }
        }
        Ok(refs)
    }
}

fn storage_error<E, R>(err: SdkError<E, R>) -> AppError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    metrics::counter!("seglab_object_store_errors_total").increment(1);
    let detail = DisplayErrorContext(&err).to_string();
    match err {
        SdkError::ServiceError(_) => AppError::Internal(format!("object storage: {detail}")),
        _ => AppError::Unavailable { service: "object storage", detail },
    }
}
