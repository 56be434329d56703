//! Where a lake path lives: the blob's name in the filesystem, the URL the blob endpoint
//! serves it at, and the absolute location readers find in model.json (the DFS endpoint's
//! `https://<account>.dfs.core.windows.net/<filesystem>/<path>`, or the endpoint override's).
//! Slashes stay slashes everywhere (never `%2F`): ADLS Gen2 readers treat them as folders.

use lakelink_model::lake_path::LakePath;

/// Whether byte `b` may stand as it is in a URL path segment: RFC 3986's unreserved
/// characters. Lake paths are made of safe names (LAKE_FORMAT §1), so in practice nothing is
/// encoded, but a prefix given in the config might hold a space.
fn passes_unencoded(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes each segment of a `/`-separated path, keeping the slashes.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b == b'/' || passes_unencoded(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The names and URLs of one lake's blobs.
#[derive(Debug, Clone)]
pub struct BlobLocations {
    /// The blob endpoint of the account, without a trailing slash.
    blob_endpoint: String,
    /// The location base readers see: `<dfs endpoint>/<filesystem>[/<prefix>]`.
    location_base: String,
    /// The filesystem (container).
    filesystem: String,
    /// The folder inside the filesystem ("" for its root).
    prefix: String,
}

impl BlobLocations {
    /// The locations of a lake in `filesystem` of `account`, under folder `prefix`, served at
    /// `endpoint` when given (else the public cloud's endpoints).
    pub fn new(
        account: &str,
        filesystem: &str,
        prefix: &str,
        endpoint: Option<&str>,
    ) -> BlobLocations {
        let (blob_endpoint, dfs_endpoint) = match endpoint {
            // An override serves both: the emulator has no DFS endpoint, and a sovereign
            // cloud's operator gives the one readers use.
            Some(e) => {
                let e = e.trim_end_matches('/').to_string();
                (e.clone(), e)
            }
            None => (
                format!("https://{account}.blob.core.windows.net"),
                format!("https://{account}.dfs.core.windows.net"),
            ),
        };
        let prefix = prefix.trim_matches('/').to_string();
        let mut location_base = format!("{dfs_endpoint}/{filesystem}");
        if !prefix.is_empty() {
            location_base = format!("{location_base}/{}", encode_path(&prefix));
        }
        BlobLocations {
            blob_endpoint,
            location_base,
            filesystem: filesystem.to_string(),
            prefix,
        }
    }

    /// The blob endpoint, e.g. `https://acct.blob.core.windows.net`.
    pub fn blob_endpoint(&self) -> &str {
        &self.blob_endpoint
    }

    /// The filesystem's URL on the blob endpoint.
    pub fn container_url(&self) -> String {
        format!("{}/{}", self.blob_endpoint, self.filesystem)
    }

    /// The blob name of `path`: the prefix and the path, joined by a slash.
    pub fn blob_name(&self, path: &LakePath) -> String {
        match (self.prefix.is_empty(), path.as_str()) {
            (true, p) => p.to_string(),
            (false, "") => self.prefix.clone(),
            (false, p) => format!("{}/{p}", self.prefix),
        }
    }

    /// The blob-name prefix that lists the entries of folder `dir` ("" or ending in `/`).
    pub fn folder_prefix(&self, dir: &LakePath) -> String {
        match self.blob_name(dir).as_str() {
            "" => String::new(),
            name => format!("{name}/"),
        }
    }

    /// The lake path of blob `name`, if it is inside the lake.
    pub fn path_of_blob(&self, name: &str) -> Option<LakePath> {
        if self.prefix.is_empty() {
            return Some(LakePath::from_raw(name));
        }
        name.strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')
            .map(LakePath::from_raw)
    }

    /// The URL of `path`'s blob on the blob endpoint.
    pub fn blob_url(&self, path: &LakePath) -> String {
        self.url_of_blob(&self.blob_name(path))
    }

    /// The URL of the blob named `name` (prefix included) on the blob endpoint.
    pub fn url_of_blob(&self, name: &str) -> String {
        format!("{}/{}", self.container_url(), encode_path(name))
    }

    /// The absolute location readers use for `path`.
    pub fn location(&self, path: &LakePath) -> String {
        format!("{}/{}", self.location_base, encode_path(path.as_str()))
    }

    /// The lake path `location` (made by [`BlobLocations::location`]) points at.
    pub fn path_of_location(&self, location: &str) -> Option<LakePath> {
        let inside = location
            .strip_prefix(self.location_base.as_str())?
            .strip_prefix('/')?;
        if inside.is_empty()
            || inside
                .split('/')
                .any(|s| s == "." || s == ".." || s.is_empty())
        {
            return None;
        }
        // Lake paths are safe names, so a location holding an escape is not one of ours.
        if inside.contains('%') {
            return None;
        }
        Some(LakePath::from_raw(inside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> LakePath {
        LakePath::from_raw(s)
    }

    #[test]
    fn locations_are_dfs_urls_with_plain_slashes() {
        let l = BlobLocations::new("crmlake", "lake", "", None);
        let f = p("account/Snapshot/2024_T3.csv");
        assert_eq!(
            l.location(&f),
            "https://crmlake.dfs.core.windows.net/lake/account/Snapshot/2024_T3.csv"
        );
        assert_eq!(
            l.blob_url(&f),
            "https://crmlake.blob.core.windows.net/lake/account/Snapshot/2024_T3.csv"
        );
        assert_eq!(l.path_of_location(&l.location(&f)), Some(f.clone()));
        assert_eq!(l.blob_name(&f), "account/Snapshot/2024_T3.csv");
        assert_eq!(l.folder_prefix(&p("")), "");
        assert_eq!(l.folder_prefix(&p("account")), "account/");
        for outside in [
            "https://crmlake.dfs.core.windows.net/lake2/x.csv",
            "https://other.dfs.core.windows.net/lake/x.csv",
            "https://crmlake.dfs.core.windows.net/lake/../x.csv",
            "https://crmlake.dfs.core.windows.net/lake/a%2Fb.csv",
        ] {
            assert_eq!(l.path_of_location(outside), None, "{outside}");
        }
    }

    #[test]
    fn a_prefix_and_an_endpoint_override() {
        let l = BlobLocations::new(
            "devstoreaccount1",
            "lake",
            "/lakes/crm/",
            Some("http://127.0.0.1:10000/devstoreaccount1/"),
        );
        let f = p("model.json");
        assert_eq!(
            l.location(&f),
            "http://127.0.0.1:10000/devstoreaccount1/lake/lakes/crm/model.json"
        );
        assert_eq!(l.blob_name(&f), "lakes/crm/model.json");
        assert_eq!(l.folder_prefix(&p("")), "lakes/crm/");
        assert_eq!(l.path_of_blob("lakes/crm/a/1.csv"), Some(p("a/1.csv")));
        assert_eq!(l.path_of_blob("lakes/crm2/a/1.csv"), None);
        assert_eq!(l.path_of_location(&l.location(&f)), Some(f));
        let spaced = BlobLocations::new("acct", "lake", "my lakes", None);
        assert_eq!(
            spaced.blob_url(&p("x.csv")),
            "https://acct.blob.core.windows.net/lake/my%20lakes/x.csv"
        );
    }
}
