//! The embedded default's object storage: a real S3 endpoint (the s3s protocol library over a
//! local folder) served from this process, so the app always goes through `aws-sdk-s3` and
//! browsers get real SigV4 presigned URLs, with no external service to install.
//!
//! The store keeps the few operations seglab uses (bucket create/head, object put, get with
//! ranges, head, delete, list) and makes two promises an S3 provider makes: a PUT is answered
//! only once its bytes and their directory entries are on disk (fsync), and several
//! processes may use the same folder at once: each upload is written to a uniquely named file
//! in `.uploads/` and renamed into place, and nothing is deleted at start-up but uploads a day
//! old.

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::error_handling::HandleError;
use axum::http::{header, Method, StatusCode};
use axum::Router;
use futures::StreamExt;
use s3s::auth::SimpleAuth;
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{Any, CorsLayer};

use super::error::CliError;
use super::listener::without_delay;

/// Where uploads are written before they are renamed into place.
const UPLOADS: &str = ".uploads";
/// An upload file this old belongs to a process that died mid-upload.
const ABANDONED_UPLOAD: Duration = Duration::from_secs(24 * 3600);

/// Buckets and objects as folders and files under one root.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn open(root: &Path) -> std::io::Result<LocalStore> {
        let uploads = root.join(UPLOADS);
        std::fs::create_dir_all(&uploads)?;
        for entry in std::fs::read_dir(&uploads)?.flatten() {
            let abandoned = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > ABANDONED_UPLOAD));
            if abandoned {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(LocalStore { root: root.to_path_buf() })
    }

    fn bucket_path(&self, bucket: &str) -> S3Result<PathBuf> {
        // S3's rules: 3–63 lowercase letters, digits, `-` and `.`, beginning and ending with a
        // letter or digit (so no bucket is a hidden folder such as the uploads).
        let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let valid = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && edge(bucket.bytes().next())
            && edge(bucket.bytes().last());
        if !valid {
            return Err(s3_error!(InvalidBucketName));
        }
        Ok(self.root.join(bucket))
    }

    /// The file of `key`: plain path segments only, so no key reaches outside its bucket.
    fn object_path(&self, bucket: &str, key: &str) -> S3Result<PathBuf> {
        let bucket_path = self.bucket_path(bucket)?;
        let relative = Path::new(key);
        let plain =
            !key.is_empty() && !key.ends_with('/') && relative.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(s3_error!(InvalidArgument, "unsupported object key"));
        }
        Ok(bucket_path.join(relative))
    }
}

/// Flushes `folder` and each folder above it up to `root`: their entries (a renamed file, a
/// folder created for it) then survive a power cut.
fn sync_folders(folder: &Path, root: &Path) -> std::io::Result<()> {
    let mut current = Some(folder);
    while let Some(dir) = current.filter(|dir| dir.starts_with(root)) {
        std::fs::File::open(dir)?.sync_all()?;
        current = dir.parent();
    }
    Ok(())
}

fn io_error(err: std::io::Error) -> s3s::S3Error {
    match err.kind() {
        std::io::ErrorKind::NotFound => s3_error!(err, NoSuchKey),
        _ => s3_error!(err, InternalError),
    }
}

/// A stable, cheap entity tag: objects are never rewritten in place, so size and modification
/// time name one content.
fn entity_tag(metadata: &std::fs::Metadata) -> ETag {
    let modified =
        metadata.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).unwrap_or_default();
    ETag::Strong(format!("{:x}-{:x}", metadata.len(), modified.as_nanos()))
}

#[async_trait::async_trait]
impl S3 for LocalStore {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let path = self.bucket_path(&req.input.bucket)?;
        tokio::fs::create_dir_all(&path).await.map_err(io_error)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sync_folders(&path, &root))
            .await
            .map_err(|e| s3_error!(e, InternalError))?
            .map_err(io_error)?;
        Ok(S3Response::new(CreateBucketOutput::default()))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        let path = self.bucket_path(&req.input.bucket)?;
        match tokio::fs::metadata(&path).await {
            Ok(metadata) if metadata.is_dir() => Ok(S3Response::new(HeadBucketOutput::default())),
            _ => Err(s3_error!(NoSuchBucket)),
        }
    }

    /// Streams the body to a fresh file, checks the checksums the client sent, flushes the
    /// file, renames it into place and flushes the folders: only then is the PUT answered.
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let S3Request { input, trailing_headers, .. } = req;
        let destination = self.object_path(&input.bucket, &input.key)?;
        if tokio::fs::metadata(self.bucket_path(&input.bucket)?).await.is_err() {
            return Err(s3_error!(NoSuchBucket));
        }
        let Some(mut body) = input.body else { return Err(s3_error!(IncompleteBody)) };
        // The checksums the client announces (as headers, or as trailers after the body).
        let algorithm = input.checksum_algorithm.as_ref().map(|a| a.as_str().to_string()).unwrap_or_default();
        let wants = |value: &Option<String>, name: &str| value.is_some() || algorithm == name;
        let mut hasher = ChecksumHasher::default();
        if wants(&input.checksum_crc32, ChecksumAlgorithm::CRC32) {
            hasher.crc32 = Some(Default::default());
        }
        if wants(&input.checksum_crc32c, ChecksumAlgorithm::CRC32C) {
            hasher.crc32c = Some(Default::default());
        }
        if wants(&input.checksum_sha1, ChecksumAlgorithm::SHA1) {
            hasher.sha1 = Some(Default::default());
        }
        if wants(&input.checksum_sha256, ChecksumAlgorithm::SHA256) {
            hasher.sha256 = Some(Default::default());
        }
        if wants(&input.checksum_crc64nvme, ChecksumAlgorithm::CRC64NVME) {
            hasher.crc64nvme = Some(Default::default());
        }

        let upload = self.root.join(UPLOADS).join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let mut file = tokio::fs::File::create(&upload).await.map_err(io_error)?;
        let written = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| s3_error!(IncompleteBody, "the upload was interrupted: {e}"))?;
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io_error)?;
            }
            file.sync_all().await.map_err(io_error)
        };
        if let Err(err) = written.await {
            let _ = tokio::fs::remove_file(&upload).await;
            return Err(err);
        }
        drop(file);

        let computed = hasher.finalize();
        let trailers = trailing_headers.and_then(|t| t.take());
        let sent = |field: &Option<String>, trailer: &str| {
            field.clone().or_else(|| trailers.as_ref()?.get(trailer)?.to_str().ok().map(str::to_string))
        };
        let checks = [
            (sent(&input.checksum_crc32, "x-amz-checksum-crc32"), &computed.checksum_crc32),
            (sent(&input.checksum_crc32c, "x-amz-checksum-crc32c"), &computed.checksum_crc32c),
            (sent(&input.checksum_sha1, "x-amz-checksum-sha1"), &computed.checksum_sha1),
            (sent(&input.checksum_sha256, "x-amz-checksum-sha256"), &computed.checksum_sha256),
            (sent(&input.checksum_crc64nvme, "x-amz-checksum-crc64nvme"), &computed.checksum_crc64nvme),
        ];
        if checks.iter().any(|(sent, computed)| sent.is_some() && sent != *computed) {
            let _ = tokio::fs::remove_file(&upload).await;
            return Err(s3_error!(BadDigest, "the object's checksum does not match the one sent"));
        }

        let root = self.root.clone();
        let placed = destination.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(folder) = placed.parent() {
                std::fs::create_dir_all(folder)?;
            }
            std::fs::rename(&upload, &placed).inspect_err(|_| {
                let _ = std::fs::remove_file(&upload);
            })?;
            sync_folders(placed.parent().unwrap_or(&root), &root)
        })
        .await
        .map_err(|e| s3_error!(e, InternalError))?
        .map_err(io_error)?;

        let metadata = tokio::fs::metadata(&destination).await.map_err(io_error)?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(entity_tag(&metadata)),
            checksum_crc32: computed.checksum_crc32,
            checksum_crc32c: computed.checksum_crc32c,
            checksum_sha1: computed.checksum_sha1,
            checksum_sha256: computed.checksum_sha256,
            checksum_crc64nvme: computed.checksum_crc64nvme,
            ..Default::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let path = self.object_path(&input.bucket, &input.key)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(io_error)?;
        let metadata = file.metadata().await.map_err(io_error)?;
        let length = metadata.len();
        let (range, content_range) = match &input.range {
            None => (0..length, None),
            Some(range) => {
                let range = range.check(length)?;
                let content_range = format!("bytes {}-{}/{length}", range.start, range.end - 1);
                (range, Some(content_range))
            }
        };
        file.seek(SeekFrom::Start(range.start)).await.map_err(io_error)?;
        let size = range.end - range.start;
        // Large reads: each read of a tokio file is a trip to the blocking thread pool.
        let body = ReaderStream::with_capacity(tokio::io::AsyncReadExt::take(file, size), 256 << 10);
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(size as i64),
            content_range,
            accept_ranges: Some("bytes".into()),
            last_modified: metadata.modified().ok().map(Timestamp::from),
            e_tag: Some(entity_tag(&metadata)),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let path = self.object_path(&req.input.bucket, &req.input.key)?;
        let metadata = tokio::fs::metadata(&path).await.map_err(io_error)?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(metadata.len() as i64),
            last_modified: metadata.modified().ok().map(Timestamp::from),
            e_tag: Some(entity_tag(&metadata)),
            ..Default::default()
        }))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let path = self.object_path(&req.input.bucket, &req.input.key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {} // S3 answers the same
            Err(err) => return Err(io_error(err)),
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    /// Keys under the prefix in key order, a page at a time (the continuation token is the last
    /// key of the previous page).
    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let bucket_path = self.bucket_path(&input.bucket)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after = input.continuation_token.clone().or(input.start_after.clone()).unwrap_or_default();
        let max_keys = input.max_keys.unwrap_or(1000).clamp(1, 1000) as usize;
        let root = bucket_path.clone();
        let mut objects = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Object>> {
            let mut found = Vec::new();
            let mut folders = vec![root.clone()];
            while let Some(folder) = folders.pop() {
                for entry in std::fs::read_dir(&folder)?.flatten() {
                    let path = entry.path();
                    let metadata = entry.metadata()?;
                    if metadata.is_dir() {
                        folders.push(path);
                        continue;
                    }
                    let Some(key) =
                        path.strip_prefix(&root).ok().and_then(|k| k.to_str()).map(|k| k.replace('\\', "/"))
                    else {
                        continue;
                    };
                    if key.starts_with(&prefix) && key > after {
                        found.push(Object {
                            size: Some(metadata.len() as i64),
                            last_modified: metadata.modified().ok().map(Timestamp::from),
                            e_tag: Some(entity_tag(&metadata)),
                            key: Some(key),
                            ..Default::default()
                        });
                    }
                }
            }
            Ok(found)
        })
        .await
        .map_err(|e| s3_error!(e, InternalError))?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                s3_error!(NoSuchBucket)
            } else {
                io_error(e)
            }
        })?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let truncated = objects.len() > max_keys;
        objects.truncate(max_keys);
        let next = truncated.then(|| objects.last().and_then(|o| o.key.clone())).flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            key_count: Some(objects.len() as i32),
            contents: Some(objects),
            is_truncated: Some(truncated),
            next_continuation_token: next,
            continuation_token: input.continuation_token,
            name: Some(input.bucket),
            prefix: input.prefix,
            max_keys: Some(max_keys as i32),
            ..Default::default()
        }))
    }
}

/// Serves `root` as S3 on `addr` until `shutdown`; returns the bound address.
pub async fn start(
    root: &Path,
    addr: SocketAddr,
    access_key_id: &str,
    secret_access_key: &str,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<SocketAddr, CliError> {
    let store = LocalStore::open(root)
        .map_err(|e| CliError::startup(&format!("embedded object storage in {}", root.display()), e))?;
    let mut builder = S3ServiceBuilder::new(store);
    builder.set_auth(SimpleAuth::from_single(access_key_id, secret_access_key));
    let s3 = builder.build();

    // Presigned URLs are the credential; any page origin may read with them.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::RANGE])
        .expose_headers([header::CONTENT_LENGTH, header::ETAG]);
    let app = Router::new()
        .fallback_service(HandleError::new(s3, |err: s3s::HttpError| async move {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{err:?}"))
        }))
        .layer(cors);

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::startup(&format!("embedded object storage cannot listen on {addr}"), e))?;
    let bound = listener.local_addr().map_err(|e| CliError::startup("embedded object storage", e))?;
    let listener = without_delay(listener, "an object storage");
    tasks.spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(err) = served {
            tracing::error!(%err, "embedded object storage stopped");
        }
    });
    tracing::info!(%bound, root = %root.display(), "embedded S3 endpoint running");
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_reach_outside_their_bucket_or_into_the_uploads() {
        let root = std::env::temp_dir().join(format!("seglab-store-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalStore::open(&root).unwrap();
        assert_eq!(
            store.object_path("seglab", "cases/c/masks/m.nii.gz").unwrap(),
            root.join("seglab/cases/c/masks/m.nii.gz")
        );
        for bucket in [".uploads", "..", "ab", "Seglab", "-seglab", "seglab.", "se/glab"] {
            assert!(store.bucket_path(bucket).is_err(), "bucket {bucket:?}");
        }
        for key in ["", "../other/x", "cases/../../x", "/etc/passwd", "cases/", "./x"] {
            assert!(store.object_path("seglab", key).is_err(), "key {key:?}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}
