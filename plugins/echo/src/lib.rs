//! The `echo` built-in plugin: returns its input object unchanged.
//!
//! Pure on purpose (no logging, no sleeping, no failing): tests and the warm-path benchmark
//! use it to measure the host, not the plugin. Knows nothing about the host beyond the SDK.

use csmp_sdk::serde_json::{Map, Value};
use csmp_sdk::{Context, PluginError};

/// Any JSON object; the same object comes back.
pub type Echo = Map<String, Value>;

/// Returns `input` as the step's output.
pub fn run(_ctx: &Context, input: Echo) -> Result<Echo, PluginError> {
    Ok(input)
}

csmp_sdk::plugin! {
    name: "echo",
    version: env!("CARGO_PKG_VERSION"),
    description: "Returns its input object unchanged",
    run: run,
}

#[cfg(test)]
mod tests {
    use super::*;
    use csmp_sdk::serde_json::json;
    use csmp_sdk::testing::MockHost;

    #[test]
    fn returns_its_input() -> Result<(), PluginError> {
        let input = json!({"a": 1, "nested": {"list": [1, "two", null]}});
        let Value::Object(map) = input.clone() else {
            return Err(PluginError::permanent("fixture is not an object"));
        };
        let out = run(&MockHost::new().context(), map)?;
        assert_eq!(Value::Object(out), input);
        Ok(())
    }

    #[test]
    fn describes_itself_with_object_schemas() {
        let d = csmp_descriptor();
        assert_eq!(d.name, "echo");
        assert_eq!(d.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(d.input_schema["type"], "object");
        assert_eq!(d.output_schema["type"], "object");
        assert!(d.capabilities.http_hosts.is_empty());
    }
}
