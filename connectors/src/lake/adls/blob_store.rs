//! The storage requests the lake makes, one async function each, over the official SDK's
//! clients: properties, block lists, staging and committing blocks, conditional uploads,
//! ranged downloads, listings, deletes and leases. Each request is retried by
//! [`with_retries`] and bounded by [`REQUEST_TIMEOUT`]; none maps errors (the caller knows
//! what a 404 or a 412 means for its operation).

use super::credentials::Authorization;
use super::errors::with_retries;
use super::locations::BlobLocations;
use azure_core::Bytes;
use azure_core::http::{
    ClientOptions, Etag, HttpClientOptions, RequestContent, RetryOptions, Transport, Url,
    new_http_client,
};
use azure_storage_blob::models::{
    BlobClientAcquireLeaseOptions, BlobClientBreakLeaseOptions, BlobClientDownloadOptions,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientUploadOptions, BlockListType, BlockLookupList,
};
use azure_storage_blob::{
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};
use futures::TryStreamExt;
use std::num::NonZero;
use std::time::Duration;

/// The longest one request may take before it is abandoned and tried again: generous for a
/// block of several MiB on a slow link, short enough that a hung connection cannot stall the
/// agent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A blob's committed block list, with its ETag and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlocks {
    /// The ETag of the blob as it is.
    pub etag: String,
    /// The committed block ids, in order.
    pub blocks: Vec<Vec<u8>>,
    /// Each block's size, in order.
    pub sizes: Vec<u64>,
}

impl CommittedBlocks {
    /// The blob's size.
    pub fn size(&self) -> u64 {
        self.sizes.iter().sum()
    }
}

/// What a whole-blob upload is conditioned on.
#[derive(Debug, Clone, Copy)]
pub enum PutCondition<'a> {
    /// The blob must not exist (If-None-Match: *).
    Absent,
    /// The blob's ETag must be this (If-Match).
    Matches(&'a str),
    /// None (a leased blob still needs its lease).
    Always,
}

/// One entry of a flat listing.
#[derive(Debug, Clone)]
pub struct ListedBlob {
    /// The blob's full name.
    pub name: String,
}

/// The requests of one filesystem, authorized one way.
#[derive(Clone)]
pub struct BlobStore {
    locations: BlobLocations,
    authorization: Authorization,
    options: ClientOptions,
}

/// Runs one request future with [`REQUEST_TIMEOUT`], a timeout counting as an I/O error
/// (which is retried).
async fn timed<T>(
    fut: impl std::future::Future<Output = azure_core::Result<T>>,
) -> azure_core::Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(result) => result,
        Err(_) => Err(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Io,
            format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
        )),
    }
}

impl BlobStore {
    /// Requests to the filesystem at `locations`, authorized by `authorization`.
    pub fn new(locations: BlobLocations, authorization: Authorization) -> BlobStore {
        let options = ClientOptions {
            // One HTTP client (and connection pool) for every blob client; no automatic
            // decompression, which ranged downloads need.
            transport: Some(Transport::new(new_http_client(Some(HttpClientOptions {
                automatic_decompression: false,
            })))),
            // Retries are this module's (backon, with jitter), so that every request is
            // retried one way and a conditional commit is never silently sent twice.
            retry: RetryOptions::none(),
            per_try_policies: authorization.per_try_policies(),
            ..Default::default()
        };
        BlobStore {
            locations,
            authorization,
            options,
        }
    }

    /// The locations of this store's lake.
    pub fn locations(&self) -> &BlobLocations {
        &self.locations
    }

    fn url(&self, url: &str) -> azure_core::Result<Url> {
        Url::parse(&self.authorization.authorize_url(url)).map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                e.to_string(),
            )
        })
    }

    /// A client of the blob named `name` (a full blob name, prefix included).
    fn blob(&self, name: &str) -> azure_core::Result<BlobClient> {
        let url = self.url(&self.locations.url_of_blob(name))?;
        BlobClient::new(
            url,
            self.authorization.token_credential(),
            Some(BlobClientOptions {
                client_options: self.options.clone(),
                ..Default::default()
            }),
        )
    }

    fn container(&self) -> azure_core::Result<BlobContainerClient> {
        let url = self.url(&self.locations.container_url())?;
        BlobContainerClient::new(
            url,
            self.authorization.token_credential(),
            Some(BlobContainerClientOptions {
                client_options: self.options.clone(),
                ..Default::default()
            }),
        )
    }

    /// Lists up to one blob under the lake's folder: proves the account, filesystem and
    /// credential (a listing is allowed to every credential the lake works with).
    pub async fn probe(&self) -> azure_core::Result<()> {
        let prefix = self
            .locations
            .folder_prefix(&lakelink_model::lake_path::LakePath::from_raw(""));
        with_retries(|| async {
            let container = self.container()?;
            let options = BlobContainerClientListBlobsOptions {
                maxresults: Some(1),
                prefix: (!prefix.is_empty()).then(|| prefix.clone()),
                ..Default::default()
            };
            let mut pages = container.list_blobs(Some(options))?.into_pages();
            timed(async { pages.try_next().await.map(|_| ()) }).await
        })
        .await
    }

    /// Creates the filesystem.
    pub async fn create_filesystem(&self) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async { self.container()?.create(None).await.map(|_| ()) }).await
        })
        .await
    }

    /// The blob's size, or `None` when it does not exist.
    pub async fn size(&self, name: &str) -> azure_core::Result<u64> {
        with_retries(|| async {
            timed(async {
                let response = self.blob(name)?.get_properties(None).await?;
                Ok(response
                    .headers()
                    .get_optional_str(&azure_core::http::headers::CONTENT_LENGTH)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0))
            })
            .await
        })
        .await
    }

    /// The blob's lease state (`available`, `leased`, `expired`, `breaking`, `broken`).
    pub async fn lease_state(&self, name: &str) -> azure_core::Result<Option<String>> {
        with_retries(|| async {
            timed(async {
                let response = self.blob(name)?.get_properties(None).await?;
                Ok(response
                    .headers()
                    .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                        "x-ms-lease-state",
                    ))
                    .map(str::to_string))
            })
            .await
        })
        .await
    }

    /// The blob's committed block list, ETag and size.
    pub async fn committed_blocks(&self, name: &str) -> azure_core::Result<CommittedBlocks> {
        with_retries(|| async {
            timed(async {
                let client = self.blob(name)?.block_blob_client();
                let response = client
                    .get_block_list(BlockListType::Committed, None)
                    .await?;
                let etag = response
                    .headers()
                    .get_optional_string(&azure_core::http::headers::ETAG)
                    .unwrap_or_default();
                let list = response.into_model()?;
                let mut blocks = Vec::new();
                let mut sizes = Vec::new();
                for block in list.committed_blocks.unwrap_or_default() {
                    blocks.push(block.name.unwrap_or_default());
                    sizes.push(block.size.unwrap_or(0).max(0) as u64);
                }
                Ok(CommittedBlocks {
                    etag,
                    blocks,
                    sizes,
                })
            })
            .await
        })
        .await
    }

    /// Stages one block (invisible until a commit names it).
    pub async fn stage_block(&self, name: &str, id: &[u8], data: Bytes) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async {
                let client = self.blob(name)?.block_blob_client();
                client
                    .stage_block(id, data.len() as u64, data.clone().into(), None)
                    .await
                    .map(|_| ())
            })
            .await
        })
        .await
    }

    /// Commits `blocks` as the blob's content if its ETag is `if_match`, or, with `None`, if
    /// it does not exist yet. Returns the new ETag.
    pub async fn commit_blocks(
        &self,
        name: &str,
        blocks: &[Vec<u8>],
        if_match: Option<&str>,
    ) -> azure_core::Result<String> {
        with_retries(|| async {
            timed(async {
                let client = self.blob(name)?.block_blob_client();
                let list = BlockLookupList {
                    latest: Some(blocks.to_vec()),
                    ..Default::default()
                };
                let options = BlockBlobClientCommitBlockListOptions {
                    if_match: if_match.map(Etag::from),
                    if_none_match: if_match.is_none().then(|| Etag::from("*")),
                    ..Default::default()
                };
                let response = client
                    .commit_block_list(RequestContent::try_from(list)?, Some(options))
                    .await?;
                Ok(response
                    .headers()
                    .get_optional_string(&azure_core::http::headers::ETAG)
                    .unwrap_or_default())
            })
            .await
        })
        .await
    }

    /// Uploads `data` as the whole blob in one request, under `condition`, with `lease`
    /// when the blob is leased. Returns the ETag.
    pub async fn put(
        &self,
        name: &str,
        data: Bytes,
        condition: PutCondition<'_>,
        lease: Option<&str>,
    ) -> azure_core::Result<String> {
        with_retries(|| async {
            timed(async {
                let client = self.blob(name)?.block_blob_client();
                let (if_match, if_none_match) = match condition {
                    PutCondition::Absent => (None, Some(Etag::from("*"))),
                    PutCondition::Matches(etag) => (Some(Etag::from(etag)), None),
                    PutCondition::Always => (None, None),
                };
                let options = BlockBlobClientUploadOptions {
                    if_match,
                    if_none_match,
                    lease_id: lease.map(str::to_string),
                    // One PUT: a manifest is small, and a single Put Blob is atomic.
                    partition_size: NonZero::new((data.len() as u64).max(1) + 1),
                    parallel: NonZero::new(1),
                    ..Default::default()
                };
                let response = client.upload(data.clone().into(), Some(options)).await?;
                Ok(response.etag.map(|e| e.to_string()).unwrap_or_default())
            })
            .await
        })
        .await
    }

    /// Bytes `start..end` of the blob (`end` = `None`: to its end).
    pub async fn download(
        &self,
        name: &str,
        start: u64,
        end: Option<u64>,
    ) -> azure_core::Result<Bytes> {
        with_retries(|| async {
            timed(async {
                let range = match end {
                    Some(end) => (start..end).into(),
                    None => (start..).into(),
                };
                let options = BlobClientDownloadOptions {
                    range: Some(range),
                    parallel: NonZero::new(1),
                    ..Default::default()
                };
                let result = self.blob(name)?.download(Some(options)).await?;
                result.body.collect().await
            })
            .await
        })
        .await
    }

    /// Every blob whose name starts with `prefix`.
    pub async fn list(&self, prefix: &str) -> azure_core::Result<Vec<ListedBlob>> {
        with_retries(|| async {
            timed(async {
                let options = BlobContainerClientListBlobsOptions {
                    prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
                    ..Default::default()
                };
                let mut items = self.container()?.list_blobs(Some(options))?;
                let mut out = Vec::new();
                while let Some(item) = items.try_next().await? {
                    if let Some(name) = item.name {
                        out.push(ListedBlob { name });
                    }
                }
                Ok(out)
            })
            .await
        })
        .await
    }

    /// Deletes the blob.
    pub async fn delete(&self, name: &str) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async { self.blob(name)?.delete(None).await.map(|_| ()) }).await
        })
        .await
    }

    /// Takes a lease of `seconds` on the blob with id `lease_id`.
    pub async fn acquire_lease(
        &self,
        name: &str,
        seconds: i32,
        lease_id: &str,
    ) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async {
                let options = BlobClientAcquireLeaseOptions {
                    proposed_lease_id: Some(lease_id.to_string()),
                    ..Default::default()
                };
                self.blob(name)?
                    .acquire_lease(seconds, Some(options))
                    .await
                    .map(|_| ())
            })
            .await
        })
        .await
    }

    /// Renews the lease.
    pub async fn renew_lease(&self, name: &str, lease_id: &str) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async {
                self.blob(name)?
                    .renew_lease(lease_id.to_string(), None)
                    .await
                    .map(|_| ())
            })
            .await
        })
        .await
    }

    /// Releases the lease. Retried like every other request: a release lost to throttling
    /// would keep an agent on another machine waiting for the lease to expire. Releasing
    /// twice is harmless (the second is refused and changes nothing).
    pub async fn release_lease(&self, name: &str, lease_id: &str) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async {
                self.blob(name)?
                    .release_lease(lease_id.to_string(), None)
                    .await
                    .map(|_| ())
            })
            .await
        })
        .await
    }

    /// Ends whatever lease the blob has at once (the holder is known to be dead).
    pub async fn break_lease(&self, name: &str) -> azure_core::Result<()> {
        with_retries(|| async {
            timed(async {
                let options = BlobClientBreakLeaseOptions {
                    break_period: Some(0),
                    ..Default::default()
                };
                self.blob(name)?
                    .break_lease(Some(options))
                    .await
                    .map(|_| ())
            })
            .await
        })
        .await
    }
}
