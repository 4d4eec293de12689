//! S3 and S3-compatible servers (MinIO, garage, Ceph RGW, R2, s3s-fs) through object_store's
//! `aws` client: `s3://bucket/prefix`, configured by the usual `AWS_*` variables
//! (`AmazonS3Builder::from_env`). Three things a local directory does not need:
//!
//! - **Unfinished uploads are recorded.** A multipart upload is invisible until it is
//!   completed, and a killed process leaves its parts behind, out of sight of any listing and
//!   billed. So every upload writes a small record (`.devicehub-uploads/<id>`: the key and the
//!   multipart upload id) before its first part and deletes it once completed or aborted; the
//!   orphan sweep aborts the uploads whose record is older than the grace period. (A
//!   lifecycle rule that aborts incomplete multipart uploads does the same on AWS; servers
//!   without lifecycle rules get it from us.)
//! - **Downloads can be handed to the store**: a presigned `GET` URL (SigV4 in the query,
//!   valid for a short time) for a `307` redirect, so the bytes never pass through us.
//! - **Prefixes**: `s3://bucket/some/prefix` keeps every key under `some/prefix/`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{MultipartId, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, PutResult, UploadPart};
use url::Url;

use crate::error::Result;

/// Where upload records live (store-relative, beside the store's own markers).
pub const UPLOADS: &str = ".devicehub-uploads/";

/// A bucket (and prefix) of an S3 server.
#[derive(Debug)]
pub struct S3 {
    client: Arc<AmazonS3>,
    /// Keys are stored under it (`None`: the bucket's root).
    prefix: Option<ObjectPath>,
}

impl S3 {
    /// `s3://bucket[/prefix]`, with endpoint, region, keys and the request style from the
    /// `AWS_*` environment, overridden by `options`.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> anyhow::Result<S3> {
        let parsed = Url::parse(url).with_context(|| format!("object store {url:?} is not a URL"))?;
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in options {
            let key: AmazonS3ConfigKey =
                key.parse().with_context(|| format!("object_store_options: {key:?} is not an S3 setting"))?;
            builder = builder.with_config(key, value);
        }
        let client = builder
            .with_url(url)
            .build()
            .with_context(|| format!("configuring the S3 object store {url} (see the AWS_* variables)"))?;
        let prefix = parsed.path().trim_matches('/');
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        Ok(S3 { client: Arc::new(client), prefix })
    }

    /// The object store the rest of the storage module uses: keys under the prefix.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match &self.prefix {
            Some(prefix) => Arc::new(object_store::prefix::PrefixStore::new((*self.client).clone(), prefix.clone())),
            None => self.client.clone(),
        }
    }

    /// The bucket's path of a store-relative key.
    fn full(&self, key: &str) -> ObjectPath {
        match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{key}")),
            None => ObjectPath::from(key),
        }
    }

    /// A URL that lets anyone `GET` the object (ranges too) for `ttl`; the store answers it
    /// as a download named `filename`.
    pub async fn presigned_get(&self, key: &str, ttl: Duration, filename: &str) -> Result<Url> {
        let disposition = format!("attachment; filename=\"{filename}\"");
        let options = SignedUrlOptions::new().with_query([("response-content-disposition", disposition)]);
        Ok(self.client.signed_url_opts(Method::GET, &self.full(key), ttl, &options).await?)
    }

    /// Starts a multipart upload to `key`, recorded until it is completed or aborted.
    pub async fn upload(&self, key: &str) -> Result<Box<dyn MultipartUpload>> {
        let location = self.full(key);
        let id = self.client.create_multipart(&location).await?;
        let record = self.full(&format!("{UPLOADS}{}", uuid::Uuid::now_v7()));
        let text = format!("{location}\n{id}\n");
        if let Err(e) = self.client.put(&record, text.into()).await {
            let _ = self.client.abort_multipart(&location, &id).await;
            return Err(e.into());
        }
        Ok(Box::new(RecordedUpload {
            client: self.client.clone(),
            location,
            id,
            record,
            parts: Arc::default(),
            next: 0,
        }))
    }

    /// Aborts the uploads whose record is older than `grace` (their process died, or they
    /// failed without cleaning up). Returns the keys whose uploads were aborted.
    pub async fn sweep_uploads(&self, grace: Duration) -> Result<Vec<String>> {
        let cutoff = chrono::Duration::from_std(grace)
            .ok()
            .and_then(|grace| chrono::Utc::now().checked_sub_signed(grace))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let prefix = self.full(UPLOADS);
        let records: Vec<object_store::ObjectMeta> = self.client.list(Some(&prefix)).try_collect().await?;
        let mut aborted = Vec::new();
        for record in records.into_iter().filter(|r| r.last_modified < cutoff) {
            let text = match self.client.get(&record.location).await {
                Ok(got) => got.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue, // another instance swept it
                Err(e) => return Err(e.into()),
            };
            let text = String::from_utf8_lossy(&text);
            let mut lines = text.lines();
            if let (Some(location), Some(id)) = (lines.next(), lines.next()) {
                match self.client.abort_multipart(&ObjectPath::from(location), &id.to_owned()).await {
                    // gone already: completed just before its record was deleted, or aborted
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(key = location, error = %e, "aborting an unfinished upload failed; retrying at the next sweep");
                        continue;
                    }
                }
                aborted.push(location.to_owned());
            }
            match self.client.delete(&record.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(aborted)
    }
}

/// A multipart upload with a record of its own (see the module notes). Parts go up in
/// parallel (as `WriteMultipart` sends them) and are completed in order.
#[derive(Debug)]
struct RecordedUpload {
    client: Arc<AmazonS3>,
    location: ObjectPath,
    id: MultipartId,
    record: ObjectPath,
    parts: Arc<Mutex<Vec<Option<PartId>>>>,
    next: usize,
}

impl RecordedUpload {
    async fn forget(&self) {
        if let Err(e) = self.client.delete(&self.record).await {
            tracing::warn!(record = %self.record, error = %e, "deleting an upload record failed; the orphan sweep will");
        }
    }
}

#[async_trait::async_trait]
impl MultipartUpload for RecordedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = self.next;
        self.next += 1;
        let (client, location, id, parts) =
            (self.client.clone(), self.location.clone(), self.id.clone(), self.parts.clone());
        Box::pin(async move {
            let part = client.put_part(&location, &id, index, data).await?;
            let mut parts = parts.lock().map_err(|_| object_store::Error::Generic {
                store: "S3",
                source: "the part list lock is poisoned".into(),
            })?;
            if parts.len() <= index {
                parts.resize(index + 1, None);
            }
            parts[index] = Some(part);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: Option<Vec<PartId>> = match self.parts.lock() {
            Ok(parts) => parts.iter().cloned().collect(),
            Err(_) => None,
        };
        let parts = parts.ok_or_else(|| object_store::Error::Generic {
            store: "S3",
            source: "a part of the upload is missing".into(),
        })?;
        let done = self.client.complete_multipart(&self.location, &self.id, parts).await?;
        self.forget().await;
        Ok(done)
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.client.abort_multipart(&self.location, &self.id).await?;
        self.forget().await;
        Ok(())
    }
}

/// Whether an S3 server refused a write for lack of space: MinIO's `XMinioStorageFull`,
/// a `507 Insufficient Storage`, or a quota (`QuotaExceeded`, Ceph's and garage's word).
pub fn is_out_of_space(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if ["XMinioStorageFull", "Insufficient Storage", "QuotaExceeded"].iter().any(|w| text.contains(w)) {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn full_buckets_and_quotas_are_out_of_space() {
        let error = |text: &str| object_store::Error::Generic { store: "S3", source: text.to_owned().into() };
        let minio =
            error("Server returned non-2xx status code: 507 Insufficient Storage: <Code>XMinioStorageFull</Code>");
        assert!(super::is_out_of_space(&minio));
        assert!(super::is_out_of_space(&error("<Code>QuotaExceeded</Code>")));
        assert!(!super::is_out_of_space(&error("<Code>AccessDenied</Code>")));
    }
}
