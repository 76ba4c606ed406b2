//! The error a plugin returns: retryable or permanent, with a message for the operator.
//!
//! Knows nothing of the ABI; `export` turns it into the WIT `plugin-error`.

use std::fmt;

/// Why a step attempt failed. The engine retries a [`PluginError::Retryable`] under the step's
/// retry policy and fails the step at once on a [`PluginError::Permanent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// A transient problem (an upstream 5xx, a timeout): trying again may succeed.
    Retryable(String),
    /// Trying again will not help (bad input, an upstream 4xx).
    Permanent(String),
}

impl PluginError {
    /// A transient failure: the engine may retry the step.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// A failure retrying cannot fix: the step fails now.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent(message.into())
    }

    /// Whether the engine may retry the step.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The message, without the retryable/permanent label.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(m) | Self::Permanent(m) => m,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(m) => write!(f, "retryable: {m}"),
            Self::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

impl std::error::Error for PluginError {}

impl From<serde_json::Error> for PluginError {
    /// JSON that does not fit the expected shape will not fit on a retry either.
    fn from(e: serde_json::Error) -> Self {
        Self::Permanent(format!("invalid json: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_accessors_agree() {
        let r = PluginError::retryable("upstream said 503");
        assert!(r.is_retryable());
        assert_eq!(r.message(), "upstream said 503");
        assert_eq!(r.to_string(), "retryable: upstream said 503");

        let p = PluginError::permanent("bad url");
        assert!(!p.is_retryable());
        assert_eq!(p.to_string(), "permanent: bad url");
    }

    #[test]
    fn json_errors_are_permanent() {
        let err = serde_json::from_str::<u32>("\"x\"").map_err(PluginError::from);
        assert!(matches!(err, Err(PluginError::Permanent(m)) if m.starts_with("invalid json")));
    }
}
