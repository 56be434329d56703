//! Shared Key authorization: each request signed with the storage account's key
//! (HMAC-SHA256 over a canonical form of the request), as specified in "Authorize with
//! Shared Key" of the Azure Storage REST reference.
//!
//! Hand-written because the official Azure SDK for Rust (azure_storage_blob 1.x) ships only
//! Microsoft Entra ID (token) authentication and SAS URLs; Shared Key is a small, stable,
//! documented scheme, added here as one pipeline policy that runs after every other header
//! is set and before the request is sent, so each retry is signed afresh.

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;

/// Signs every request with the account key.
pub struct SharedKeyPolicy {
    account: String,
    key: Vec<u8>,
}

impl fmt::Debug for SharedKeyPolicy {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyPolicy")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl SharedKeyPolicy {
    /// A policy for `account` with its base64 `key`; fails (without echoing it) if the key
    /// is not base64.
    pub fn new(account: &str, key: &str) -> Result<SharedKeyPolicy, String> {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .map_err(|_| {
                "the account key is not base64; copy it from the portal's Access keys".to_string()
            })?;
        Ok(SharedKeyPolicy {
            account: account.to_string(),
            key,
        })
    }

    /// The `Authorization` header value for `request`, which must already carry `x-ms-date`.
    fn authorization(&self, request: &Request) -> String {
        let string_to_sign = string_to_sign(&self.account, request);
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts a key of any length");
        mac.update(string_to_sign.as_bytes());
        use base64::Engine as _;
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("SharedKey {}:{signature}", self.account)
    }
}

/// The canonical form of a request that Shared Key signs (REST reference, "Blob, Queue, and
/// File services (Shared Key authorization)").
fn string_to_sign(account: &str, request: &Request) -> String {
    let headers = request.headers();
    let header = |name: &'static str| {
        headers
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static(name))
            .unwrap_or("")
            .to_string()
    };
    // An empty body signs as an empty length, not "0" (since version 2015-02-21).
    let length = match request.body().len() {
        Some(0) | None => String::new(),
        Some(n) => n.to_string(),
    };
    let mut canonical_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                value.as_str().trim().to_string(),
            )
        })
        .collect();
    canonical_headers.sort();
    let mut out = format!(
        "{}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        request.method().as_ref(),
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    for (name, value) in canonical_headers {
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push_str(&canonical_resource(account, request));
    out
}

/// `/<account><path>` then each query parameter, sorted by name, as `\nname:value`, several
/// values of one name joined by commas.
fn canonical_resource(account: &str, request: &Request) -> String {
    let url = request.url();
    let mut out = format!("/{account}{}", url.path());
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
        .collect();
    params.sort();
    let mut i = 0;
    while i < params.len() {
        let name = params[i].0.clone();
        let mut values = Vec::new();
        while i < params.len() && params[i].0 == name {
            values.push(params[i].1.clone());
            i += 1;
        }
        out.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    out
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        // Dated per try: the service refuses a signature more than 15 minutes old.
        let now = azure_core::time::to_rfc7231(&azure_core::time::OffsetDateTime::now_utc());
        request.insert_header("x-ms-date", now);
        let authorization = self.authorization(request);
        request.insert_header("authorization", authorization);
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{Method, Url};

    #[test]
    fn the_canonical_form_follows_the_rest_reference() {
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/lake/t/2024.csv?comp=blocklist&timeout=30",
        )
        .unwrap();
        let mut request = Request::new(url, Method::Put);
        request.insert_header("x-ms-version", "2025-11-05");
        request.insert_header("x-ms-date", "Tue, 24 Nov 2026 05:00:00 GMT");
        request.insert_header("if-match", "\"0x1\"");
        request.insert_header("content-type", "application/xml");
        request.set_body(azure_core::Bytes::from_static(b"<BlockList/>"));
        assert_eq!(
            string_to_sign("devstoreaccount1", &request),
            "PUT\n\n\n12\n\napplication/xml\n\n\n\"0x1\"\n\n\n\n\
             x-ms-date:Tue, 24 Nov 2026 05:00:00 GMT\nx-ms-version:2025-11-05\n\
             /devstoreaccount1/devstoreaccount1/lake/t/2024.csv\ncomp:blocklist\ntimeout:30"
        );
        let policy = SharedKeyPolicy::new("devstoreaccount1", "a2V5").unwrap();
        assert!(format!("{policy:?}").contains("devstoreaccount1"));
        assert!(
            !format!("{policy:?}").contains("a2V5"),
            "the key never shows"
        );
        assert!(SharedKeyPolicy::new("a", "not base64!").is_err());
    }
}
