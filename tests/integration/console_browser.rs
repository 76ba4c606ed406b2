//! The console in a real browser: `tests/console/browser.cjs` drives Debian's Chromium with
//! playwright-core (installed under `target/ci-playwright` by `tests/console/tools.sh`) against a
//! real `csmp serve`: sign-in, an order with an invalid field shown on that field, an approval
//! from the approvals page, a run's DAG turning green live, a retry from a run's page, another
//! tenant's run shown as not found, a form without its anti-forgery token refused. Screenshots
//! of every page go to `target/console-screenshots/`.

use std::process::Command;

use crate::helpers::repo_root;

#[test]
fn the_console_works_in_a_real_browser() {
    let root = repo_root();
    let modules = root.join("target/ci-playwright/node_modules");
    let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        modules.join("playwright-core").is_dir() && std::path::Path::new(&browser).exists(),
        "the browser test needs playwright-core under target/ci-playwright and Chromium at {browser}: \
         run `tests/console/tools.sh` (npm) and `apt-get install chromium`, as `.ci/run` does"
    );
    let out = Command::new("node")
        .arg(root.join("tests/console/browser.cjs"))
        .env("CSMP_BIN", env!("CARGO_BIN_EXE_csmp"))
        .env("CSMP_CACHE_DIR", crate::helpers::plugin_cache())
        .env("CSMP_ROOT", &root)
        .env("CSMP_SHOTS", root.join("target/console-screenshots"))
        .env("CHROMIUM", &browser)
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
