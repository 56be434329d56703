//! From `lake.auth` to what signs each request: a Microsoft Entra token credential (service
//! principal, managed identity) which the SDK refreshes before it expires, a SAS token added
//! to every URL, or the Shared Key policy. Secrets are read here, once, and kept only in
//! these values, whose `Debug` never shows them.

use super::config::{AdlsAuthMode, AdlsLakeConfig};
use super::shared_key::SharedKeyPolicy;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::policies::Policy;
use azure_identity::{
    ClientSecretCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use std::fmt;
use std::sync::Arc;

/// How requests are authorized.
#[derive(Clone)]
pub enum Authorization {
    /// A bearer token from this credential on every request.
    Token(Arc<dyn TokenCredential>),
    /// This SAS query (without `?`) on every URL.
    Sas(String),
    /// Every request signed by this policy.
    SharedKey(Arc<SharedKeyPolicy>),
}

impl fmt::Debug for Authorization {
    /// Names the mode, never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Authorization::Token(_) => "Microsoft Entra token",
            Authorization::Sas(_) => "SAS token",
            Authorization::SharedKey(_) => "account key",
        })
    }
}

impl Authorization {
    /// Reads the secret `config` names and builds the authorization; the error is one line
    /// naming the key at fault (never the secret).
    pub fn from_config(config: &AdlsLakeConfig) -> Result<Authorization, String> {
        let secret = match config.secret_source() {
            Some((key, source)) => Some(source.read(key)?),
            None => None,
        };
        let secret = secret.unwrap_or_default();
        Ok(match config.auth {
            AdlsAuthMode::AccountKey => Authorization::SharedKey(Arc::new(
                SharedKeyPolicy::new(&config.account, &secret)
                    .map_err(|e| format!("lake.account_key: {e}"))?,
            )),
            AdlsAuthMode::Sas => {
                let token = secret.trim_start_matches('?').to_string();
                // A SAS always carries a signature (`sig=`); anything else is a mistake such
                // as the account key given as a token.
                if !token.split('&').any(|p| p.starts_with("sig=")) {
                    return Err(
                        "lake.sas_token: this is not a SAS token (it has no sig= parameter)"
                            .to_string(),
                    );
                }
                Authorization::Sas(token)
            }
            AdlsAuthMode::ServicePrincipal => {
                let tenant = config.tenant_id.clone().unwrap_or_default();
                let client = config.client_id.clone().unwrap_or_default();
                // The authority host comes from AZURE_AUTHORITY_HOST when set (sovereign
                // clouds), as everywhere in the Azure SDKs.
                let credential =
                    ClientSecretCredential::new(&tenant, client, Secret::new(secret), None)
                        .map_err(|e| format!("lake.tenant_id/lake.client_id: {e}"))?;
                Authorization::Token(credential)
            }
            AdlsAuthMode::ManagedIdentity => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: config.client_id.clone().map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                let credential = ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| format!("lake.auth = \"managed_identity\": {e}"))?;
                Authorization::Token(credential)
            }
        })
    }

    /// The token credential for the SDK's client constructors.
    pub fn token_credential(&self) -> Option<Arc<dyn TokenCredential>> {
        match self {
            Authorization::Token(c) => Some(Arc::clone(c)),
            _ => None,
        }
    }

    /// Policies to run on every try of every request.
    pub fn per_try_policies(&self) -> Vec<Arc<dyn Policy>> {
        match self {
            Authorization::SharedKey(p) => vec![Arc::clone(p) as Arc<dyn Policy>],
            _ => Vec::new(),
        }
    }

    /// `url` with the SAS query added when the mode is SAS.
    pub fn authorize_url(&self, url: &str) -> String {
        match self {
            Authorization::Sas(token) => {
                let joiner = if url.contains('?') { '&' } else { '?' };
                format!("{url}{joiner}{token}")
            }
            _ => url.to_string(),
        }
    }
}
