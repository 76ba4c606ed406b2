//! Which interfaces a plugin component may import, checked once at load.
//!
//! A plugin gets the csmp imports (`csmp:plugin/*`, each call checked against its grant) and
//! the WASI interfaces a language runtime needs to start, served empty: `wasi:cli` (no
//! arguments, no environment, stdout/stderr captured), `wasi:io`, `wasi:clocks`, `wasi:random`
//! and `wasi:filesystem` (no preopened directory, so every path lookup fails; Rust's `std::fs`
//! pulls it in). Everything else is never granted: `wasi:sockets` and `wasi:http` (network
//! access goes through `csmp:plugin/http`, where the operator's host grants apply) and any
//! interface this host does not know. Pure: it judges names only.

use super::error::LoadError;

/// Interface prefixes (`namespace:package/interface`, versions ignored) a plugin may import.
const GRANTED: &[&str] = &[
    "csmp:plugin/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// Refused prefixes with the reason shown to the plugin author.
const REFUSED: &[(&str, &str)] = &[
    (
        "wasi:sockets/",
        "plugins get no sockets; send HTTP through csmp:plugin/http (csmp_sdk::Context::http), where the operator grants hosts; a Python plugin built with componentize-py needs `--stub-wasi`, a JavaScript one built with componentize-js `--disable http`",
    ),
    (
        "wasi:http/",
        "plugins get no direct HTTP; use csmp:plugin/http (csmp_sdk::Context::http), where the operator grants hosts; a JavaScript plugin built with componentize-js needs `--disable http` (its `fetch` is wasi:http)",
    ),
];

/// Checks every import name; the first one outside the sandbox is the error.
pub(crate) fn check<'a>(imports: impl IntoIterator<Item = &'a str>) -> Result<(), LoadError> {
    imports.into_iter().try_for_each(check_one)
}

/// Checks one import name (`csmp plugin inspect` shows the verdict of each).
pub fn check_one(import: &str) -> Result<(), LoadError> {
    if GRANTED.iter().any(|p| import.starts_with(p)) {
        return Ok(());
    }
    let hint = REFUSED
        .iter()
        .find(|(p, _)| import.starts_with(p))
        .map(|(_, hint)| *hint)
        .unwrap_or("the host only provides csmp:plugin/* and WASI cli, io, clocks, random and filesystem (empty); remove the dependency that imports it");
    Err(LoadError::ForbiddenImport {
        import: import.to_owned(),
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_and_runtime_imports_pass() {
        let ok = [
            "csmp:plugin/http@1.0.0",
            "csmp:plugin/log@1.0.0",
            "wasi:cli/environment@0.2.6",
            "wasi:io/streams@0.2.6",
            "wasi:clocks/monotonic-clock@0.2.6",
            "wasi:random/random@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
        ];
        assert!(check(ok).is_ok());
    }

    #[test]
    fn sockets_http_and_strangers_are_refused() {
        let cases = [
            ("wasi:sockets/tcp@0.2.6", "no sockets"),
            ("wasi:http/outgoing-handler@0.2.6", "no direct HTTP"),
            ("acme:backdoor/shell", "only provides"),
        ];
        for (import, hint) in cases {
            let err = check(["wasi:cli/stdout@0.2.6", import]).err();
            let message = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains(import) && message.contains(hint),
                "{message}"
            );
        }
    }
}
