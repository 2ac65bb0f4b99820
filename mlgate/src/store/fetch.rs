//! A data file kept in an S3-compatible bucket (`s3://BUCKET/KEY`), copied to a local temporary
//! file before it is read: the readers want a file (Parquet's footer comes first), and a copy
//! streamed to disk chunk by chunk keeps memory flat whatever the object's size. The same client,
//! `AWS_*` environment and limits as the S3 registry: each chunk must arrive within the S3
//! call's limit (a large object may take longer in all, a stalled one may not).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::StreamExt;
use object_store::path::Path as Key;

use super::s3::S3;
use super::{redact, RemoteError, Unavailable};

/// Whether `location` names an object (`s3://…`) rather than a local file.
pub fn is_object(location: &str) -> bool {
    location.starts_with("s3://")
}

/// Copies the object `url` (`s3://BUCKET/KEY`) to a temporary file, removed when the returned
/// path is dropped; its name ends as the key does, so that the extension still says the format.
pub fn fetch(url: &str, limit: Duration) -> Result<tempfile::TempPath> {
    let Some((bucket, key)) = url.strip_prefix("s3://").and_then(|rest| rest.split_once('/')) else {
        anyhow::bail!("{}: expected s3://BUCKET/KEY", redact(url));
    };
    if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
        anyhow::bail!("{}: expected s3://BUCKET/KEY, the key of one object", redact(url));
    }
    let store = S3::from_env(bucket, limit)?;
    let suffix = Path::new(key).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
    let mut file = tempfile::Builder::new()
        .prefix("mlgate-data-")
        .suffix(&suffix)
        .tempfile()
        .context("cannot make a temporary file for the data")?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start")?;
    let what = redact(url);
    let timeout = || {
        RemoteError::new(
            Unavailable::Timeout,
            format!(
                "cannot read {what}: no data within {} (MLGATE_REGISTRY_TIMEOUT_SECS); cancelled",
                humantime::format_duration(limit)
            ),
        )
    };
    runtime.block_on(async {
        let key = Key::from(key);
        let got = tokio::time::timeout(limit, store.get(&key))
            .await
            .map_err(|_| timeout())?
            .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
            .with_context(|| format!("cannot read {what}"))?;
        let mut chunks = got.into_stream();
        while let Some(chunk) = tokio::time::timeout(limit, chunks.next()).await.map_err(|_| timeout())? {
            let chunk = chunk
                .map_err(|e| anyhow::anyhow!(redact(&e.to_string())))
                .with_context(|| format!("cannot read {what}"))?;
            file.write_all(&chunk).context("cannot write the data's temporary copy")?;
        }
        anyhow::Ok(())
    })?;
    file.flush().context("cannot write the data's temporary copy")?;
    Ok(file.into_temp_path())
}
