//! A plugin's self-description: metadata plus JSON Schemas generated from its Rust types.
//!
//! Produces the JSON the host reads from the `describe` export; knows nothing of the ABI.

use schemars::JsonSchema;
use serde::Serialize;

/// The capabilities a plugin asks the operator for. Asking grants nothing: the operator's
/// grants decide what the plugin gets, and the host enforces them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Host names (optionally `host:port`) the plugin wants to reach; `*` means "whatever the
    /// operator grants" (for general-purpose plugins such as `http`).
    pub http_hosts: Vec<String>,
    /// Secret names the plugin wants to read.
    pub secrets: Vec<String>,
}

impl Capabilities {
    /// Asks for nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Also asks for HTTP access to `host`.
    pub fn http_host(mut self, host: impl Into<String>) -> Self {
        self.http_hosts.push(host.into());
        self
    }

    /// Also asks for secret `name`.
    pub fn secret(mut self, name: impl Into<String>) -> Self {
        self.secrets.push(name.into());
        self
    }
}

/// The JSON document a plugin's `describe` export returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Descriptor {
    /// `[a-z0-9-]+`, used in `uses: NAME@REQ`.
    pub name: String,
    /// Semver version; the host refuses a plugin whose version does not parse.
    pub version: String,
    /// One line for humans.
    pub description: String,
    /// JSON Schema of the input type.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output type.
    pub output_schema: serde_json::Value,
    /// What the plugin asks for.
    pub capabilities: Capabilities,
}

impl Descriptor {
    /// A descriptor whose schemas are generated from `I` and `O`.
    pub fn for_types<I: JsonSchema, O: JsonSchema>(
        name: &str,
        version: &str,
        description: &str,
        capabilities: Capabilities,
    ) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            input_schema: schemars::schema_for!(I).to_value(),
            output_schema: schemars::schema_for!(O).to_value(),
            capabilities,
        }
    }

    /// The JSON the host reads.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            // Only non-string map keys can fail here, and schemas have none.
            format!("{{\"error\":\"descriptor does not serialize: {e}\"}}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct In {
        count: u32,
    }

    #[test]
    fn schemas_come_from_the_types() {
        let d = Descriptor::for_types::<In, String>(
            "demo",
            "1.2.3",
            "a demo",
            Capabilities::none()
                .http_host("api.example.invalid")
                .secret("token"),
        );
        assert_eq!(d.input_schema["type"], "object");
        assert_eq!(d.input_schema["properties"]["count"]["type"], "integer");
        assert_eq!(d.output_schema["type"], "string");
        let json: serde_json::Value = serde_json::from_str(&d.to_json()).unwrap_or_default();
        assert_eq!(json["name"], "demo");
        assert_eq!(json["capabilities"]["http_hosts"][0], "api.example.invalid");
        assert_eq!(json["capabilities"]["secrets"][0], "token");
    }
}
