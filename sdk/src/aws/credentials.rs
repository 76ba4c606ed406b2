//! AWS credentials: read from the plugin's granted secrets, never from its input, and never
//! printed (`Debug` shows the access key id only).

use std::fmt;

use super::Target;
use crate::{Context, PluginError};

/// An access key and its secret, and a session token for temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA…` or `ASIA…`; public (it names the key in AWS's logs).
    pub access_key_id: String,
    /// The signing secret.
    pub secret_access_key: String,
    /// Present for temporary (STS) credentials; sent as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Reads `aws_access_key_id`, `aws_secret_access_key` and, if set,
    /// `aws_session_token` (with `target.credentials` as a prefix: see [`Target`]).
    pub fn from_secrets(ctx: &Context, target: &Target) -> Result<Self, PluginError> {
        let read = |what: &str| {
            let name = target.secret_name(what);
            ctx.secret(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
                PluginError::permanent(format!(
                    "the secret `{name}` is not set; set it (CSMP_SECRET_{}) and grant it to the plugin",
                    name.to_ascii_uppercase()
                ))
            })
        };
        Ok(Self {
            access_key_id: read("access_key_id")?,
            secret_access_key: read("secret_access_key")?,
            session_token: ctx
                .secret(&target.secret_name("session_token"))
                .filter(|t| !t.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MockHost;

    #[test]
    fn reads_the_named_secrets_and_hides_the_secret() -> Result<(), PluginError> {
        let host = MockHost::new()
            .with_secret("aws_access_key_id", "AKID")
            .with_secret("aws_secret_access_key", "s3cr3t")
            .with_secret("aws_prod_access_key_id", "AKIDPROD")
            .with_secret("aws_prod_secret_access_key", "p")
            .with_secret("aws_prod_session_token", "s3ss10n");
        let ctx = host.context();
        let default = Credentials::from_secrets(&ctx, &Target::default())?;
        assert_eq!(default.access_key_id, "AKID");
        assert_eq!(default.session_token, None);
        assert!(!format!("{default:?}").contains("s3cr3t"));
        let prod = Target {
            credentials: Some("prod".into()),
            ..Target::default()
        };
        let prod = Credentials::from_secrets(&ctx, &prod)?;
        assert_eq!(prod.access_key_id, "AKIDPROD");
        assert_eq!(prod.session_token.as_deref(), Some("s3ss10n"));
        assert!(!format!("{prod:?}").contains("s3ss10n"));
        Ok(())
    }

    #[test]
    fn a_missing_secret_says_which_and_how_to_set_it() {
        let host = MockHost::new().with_secret("aws_access_key_id", "AKID");
        let err = Credentials::from_secrets(&host.context(), &Target::default()).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("`aws_secret_access_key`")
                && message.contains("CSMP_SECRET_AWS_SECRET_ACCESS_KEY"),
            "{message}"
        );
    }
}
