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

/// A schema transform for inputs that are an enum internally tagged by `action`
/// (`#[serde(tag = "action")]`): replaces schemars' `oneOf` of the variants with
/// `action: {enum: [...]}` plus one `if action == X then <variant>` per variant.
///
/// Same inputs are valid either way, but a `oneOf` failure is reported at the top of the
/// input, while an `if`/`then` failure is reported at the offending field — which is what
/// lets `csmp validate` check the literal parts of a step's `with:` and leave the templated
/// ones to run time. Use it as `#[schemars(transform = csmp_sdk::dispatch_on_action)]`.
pub fn dispatch_on_action(schema: &mut schemars::Schema) {
    const TAG: &str = "action";
    let Some(serde_json::Value::Array(variants)) = schema.remove("oneOf") else {
        return;
    };
    let mut names = Vec::new();
    let mut branches = Vec::new();
    for variant in variants {
        let name = variant
            .pointer(&format!("/properties/{TAG}/const"))
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        names.push(name.clone());
        branches.push(serde_json::json!({
            "if": { "properties": { TAG: { "const": name } }, "required": [TAG] },
            "then": variant,
        }));
    }
    schema.insert("type".into(), "object".into());
    schema.insert("required".into(), serde_json::json!([TAG]));
    schema.insert(
        "properties".into(),
        serde_json::json!({ TAG: { "description": "What to do.", "enum": names } }),
    );
    schema.insert("allOf".into(), serde_json::Value::Array(branches));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(JsonSchema, serde::Deserialize)]
    #[serde(tag = "action", rename_all = "snake_case")]
    #[schemars(transform = dispatch_on_action)]
    #[allow(dead_code)]
    enum Tagged {
        Start(Start),
        Stop { id: String },
    }

    #[derive(JsonSchema, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Start {
        count: u32,
    }

    #[test]
    fn tagged_inputs_dispatch_on_their_action() {
        let schema = schemars::schema_for!(Tagged).to_value();
        assert!(schema.get("oneOf").is_none());
        assert_eq!(schema["required"], serde_json::json!(["action"]));
        assert_eq!(
            schema["properties"]["action"]["enum"],
            serde_json::json!(["start", "stop"])
        );
        let start = &schema["allOf"][0];
        assert_eq!(start["if"]["properties"]["action"]["const"], "start");
        assert_eq!(start["then"]["properties"]["count"]["type"], "integer");
        assert_eq!(start["then"]["additionalProperties"], false);
        assert_eq!(
            schema["allOf"][1]["then"]["required"],
            serde_json::json!(["action", "id"])
        );
    }

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
