// The console in a real browser: Debian's Chromium driven by playwright-core, against a real
// `csmp serve` on a free loopback port with a fresh database. Run by the `console_browser`
// integration test (tests/integration/console_browser.rs), which passes:
//   CSMP_BIN   the csmp binary          CSMP_ROOT  the repository (workflows/, catalog/, ...)
//   CSMP_SHOTS where screenshots go     CHROMIUM   the browser (default /usr/bin/chromium)
// and NODE_PATH with playwright-core. Exits non-zero with the failed check on stderr.
"use strict";

const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const BIN = process.env.CSMP_BIN;
const ROOT = process.env.CSMP_ROOT;
const SHOTS = process.env.CSMP_SHOTS;
const BROWSER = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 60_000;

function check(cond, what) {
  if (!cond) { throw new Error(`check failed: ${what}`); }
}

async function eventually(what, f) {
  const until = Date.now() + WAIT;
  let last;
  while (Date.now() < until) {
    try {
      const v = await f();
      if (v) { return v; }
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

function serve(dir) {
  const db = path.join(dir, "csmp.db");
  const child = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--database", db], {
    cwd: ROOT,
    env: { ...process.env, CSMP_CHECKS: path.join(dir, "no-checks") },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const base = new Promise((resolve, reject) => {
    child.stderr.on("data", (chunk) => {
      log += chunk.toString();
      const m = log.match(/listening on (http:\/\/\S+)/);
      if (m) { resolve(m[1]); }
    });
    child.on("exit", (code) => reject(new Error(`csmp serve exited with ${code}:\n${log}`)));
  });
  return { child, db, base, log: () => log };
}

function token(db, args) {
  return execFileSync(BIN, ["token", "create", ...args, "--database", db], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
}

async function api(base, tok, method, p, body) {
  const r = await fetch(base + p, {
    method,
    headers: { authorization: `Bearer ${tok}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: r.status, json, text };
}

const SIGNAL_FLOW = `name: console-demo
version: 1
description: Greets, waits for the go signal, then greets again
inputs:
  type: object
  properties:
    who: { type: string }
    times: { type: integer }
steps:
  - id: greet
    uses: echo@^1
    with: { greeting: "hello, {{ inputs.who }}" }
  - id: go
    needs: [greet]
    signal: go
  - id: done
    needs: [go]
    uses: echo@^1
    with: { text: "{{ steps.greet.output.greeting }}" }
`;

const ENTRY = `id: console-demo
title: Console demo
description: Greets you, then waits for an operator's go
workflow: console-demo
inputs:
  type: object
  required: [who]
  additionalProperties: false
  properties:
    who: { type: string, minLength: 1, maxLength: 40, description: whom to greet }
    times: { type: integer, minimum: 1, maximum: 10, description: how many greetings }
    tone: { type: string, enum: [plain, cheerful] }
defaults: { times: 1, tone: plain }
tenants: ["*"]
approval: { roles: [operator] }
sla: { fulfil_within: 10m }
`;

const BROKEN = `name: broken
version: 1
steps:
  - id: call
    uses: http@^1
    retry: { max_attempts: 1 }
    with: { url: "http://127.0.0.1:9/nothing-listens-here" }
`;

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "csmp-console-"));
  fs.mkdirSync(SHOTS, { recursive: true });
  const server = serve(dir);
  let browser;
  try {
    const base = await server.base;
    const client = token(server.db, ["--role", "client", "--tenant", "acme"]);
    const operator = token(server.db, ["--role", "operator"]);
    token(server.db, ["--role", "client", "--tenant", "globex"]);

    // What the scenario needs, set up over the API.
    let r = await fetch(`${base}/v1/workflows/console-demo`, { method: "PUT", headers: { authorization: `Bearer ${operator}`, "content-type": "application/yaml" }, body: SIGNAL_FLOW });
    check(r.status < 300, `the demo workflow uploads (${r.status} ${await r.text()})`);
    r = await fetch(`${base}/v1/workflows/broken`, { method: "PUT", headers: { authorization: `Bearer ${operator}`, "content-type": "application/yaml" }, body: BROKEN });
    check(r.status < 300, `the broken workflow uploads (${r.status} ${await r.text()})`);
    r = await fetch(`${base}/v1/catalog/console-demo`, { method: "PUT", headers: { authorization: `Bearer ${operator}`, "content-type": "application/yaml" }, body: ENTRY });
    check(r.status < 300, `the demo entry is set (${r.status} ${await r.text()})`);
    const broken = await api(base, operator, "POST", "/v1/runs", { workflow: "broken", inputs: {}, tenant: "acme" });
    check(broken.status === 202, `the broken run starts (${broken.text})`);
    const brokenId = broken.json.id;
    await eventually("the broken run to fail", async () => (await api(base, operator, "GET", `/v1/runs/${brokenId}`)).json.status === "failed");
    const other = await api(base, operator, "POST", "/v1/runs", { workflow: "hello", inputs: {}, tenant: "globex" });
    check(other.status === 202, `a run of another tenant starts (${other.text})`);
    const report = await api(base, client, "POST", "/v1/requests", { catalog_id: "incident-report", inputs: { title: "The dashboard is slow", severity: "sev2" } });
    check(report.status === 202, `an incident is reported (${report.text})`);

    browser = await chromium.launch({
      executablePath: BROWSER,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const shot = async (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
    const signIn = async (tok, name) => {
      const ctx = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 860 } });
      const page = await ctx.newPage();
      const resp = await page.goto("/runs");
      check(new URL(page.url()).pathname === "/login", `a page without a session leads to sign-in (${page.url()}, ${resp.status()})`);
      if (name) { await shot(page, name); }
      await page.getByLabel("Token").fill(tok);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.waitForURL((u) => u.pathname === "/runs");
      return page;
    };

    // A wrong token is refused on the sign-in form, on its field.
    {
      const ctx = await browser.newContext({ baseURL: base });
      const page = await ctx.newPage();
      await page.goto("/login");
      await page.getByLabel("Token").fill("csmp_000000000000_nope");
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator("#token-error").waitFor();
      check((await page.locator("#token-error").textContent()).includes("unknown"), "a wrong token is said to be unknown");
      await ctx.close();
    }

    // The client signs in and orders, first with one invalid field.
    const cp = await signIn(client, "login");
    await cp.goto("/");
    await shot(cp, "portal-catalog");
    await cp.getByRole("link", { name: "Order Console demo" }).click();
    await cp.waitForURL((u) => u.pathname === "/catalog/console-demo");
    check(await cp.locator("select#in-tone").count() === 1, "an enum is a select");
    check(await cp.locator("#in-times").getAttribute("max") === "10", "a bound is on its field");
    check(await cp.locator("#in-times").inputValue() === "1", "a default fills its field");
    await cp.getByLabel("who").fill("acme");
    await cp.getByLabel("times").fill("50");
    // The browser would refuse 50 itself; the server's own check is the one under test.
    await cp.evaluate(() => { document.querySelector("form.order").noValidate = true; });
    await cp.getByRole("button", { name: "Place the order" }).click();
    await cp.locator("#in-times-error").waitFor();
    const fieldError = await cp.locator("#in-times-error").textContent();
    check(/10|maximum/.test(fieldError), `the error is on the times field: ${fieldError}`);
    check(await cp.locator("#in-who-error").count() === 0, "no error on a good field");
    check(await cp.locator("#in-times").getAttribute("aria-invalid") === "true", "the bad field is marked invalid");
    check(await cp.locator("#in-who").inputValue() === "acme", "what was typed is kept");
    await shot(cp, "portal-order-form");
    await cp.getByLabel("times").fill("2");
    await cp.getByRole("button", { name: "Place the order" }).click();
    await cp.waitForURL((u) => u.pathname.startsWith("/requests/"));
    const requestId = decodeURIComponent(new URL(cp.url()).pathname.split("/")[2]);
    check((await cp.locator("#request-status").getAttribute("data-status")) === "awaiting_approval", "the order awaits approval");
    await shot(cp, "portal-request");

    // The operator approves it from the approvals page.
    const op = await signIn(operator, null);
    await op.goto("/approvals");
    await shot(op, "approvals");
    const card = op.locator("article.approval", { hasText: requestId });
    await card.getByRole("button", { name: "Approve" }).click();
    await op.waitForURL((u) => u.pathname === "/approvals");
    check(await op.locator("article.approval", { hasText: requestId }).count() === 0, "the decided request leaves the approvals page");

    // The client's request page picks up the run; the run's DAG turns green live.
    const runLink = cp.locator("#request-run");
    await runLink.waitFor({ timeout: WAIT });
    await runLink.click();
    await cp.waitForURL((u) => u.pathname.startsWith("/runs/"));
    const runId = decodeURIComponent(new URL(cp.url()).pathname.split("/")[2]);
    await cp.locator('svg.dag g[data-step="go"][data-status="waiting"]').waitFor({ timeout: WAIT });
    check(await cp.locator('svg.dag g[data-step="greet"][data-status="succeeded"]').count() === 1, "the first step is green");
    await cp.evaluate(() => { window.__notReloaded = true; });
    await shot(cp, "run-dag-waiting");
    // The operator sends the signal from the run's page; the client's page follows by itself.
    await op.goto(`/runs/${encodeURIComponent(runId)}`);
    await op.getByRole("button", { name: "Send signal" }).click();
    await cp.locator('svg.dag g[data-step="done"][data-status="succeeded"]').waitFor({ timeout: WAIT });
    await cp.locator('#run-status[data-status="succeeded"]').waitFor({ timeout: WAIT });
    check(await cp.evaluate(() => window.__notReloaded === true), "the DAG turned green without a reload");
    await shot(cp, "run-dag");

    // A client opening another tenant's run sees the same page as for a run that does not exist.
    const theirs = await cp.goto(`/runs/${encodeURIComponent(other.json.id)}`);
    const theirsText = (await cp.locator("main").innerText()).replace(other.json.id, "ID");
    const missing = await cp.goto("/runs/run-0000000000000000");
    const missingText = (await cp.locator("main").innerText()).replace("run-0000000000000000", "ID");
    check(theirs.status() === 404 && missing.status() === 404, `both are 404 (${theirs.status()}, ${missing.status()})`);
    check(theirsText === missingText, `the same page: "${theirsText}" vs "${missingText}"`);
    await shot(cp, "not-found");

    // The client's other pages.
    for (const [p, name] of [["/requests", "portal-requests"], ["/incidents", "portal-incidents"], ["/portal/status", "portal-status"], ["/usage", "portal-usage"]]) {
      const resp = await cp.goto(p);
      check(resp.status() === 200, `${p} answers 200 for a client (${resp.status()})`);
      await shot(cp, name);
    }

    // The operator retries a failed run from its page.
    await op.goto(`/runs/${encodeURIComponent(brokenId)}`);
    await shot(op, "run-failed");
    await op.getByRole("button", { name: "Retry" }).click();
    await op.waitForURL((u) => u.pathname === `/runs/${brokenId}`);
    await op.locator("ol.retries li", { hasText: "Retry 1" }).waitFor();

    // A form posted without its anti-forgery token changes nothing.
    const forged = await op.request.post(`/runs/${encodeURIComponent(other.json.id)}/do/cancel`, { form: { nothing: "" }, maxRedirects: 0 });
    check(forged.status() === 403, `a form without its token is refused (${forged.status()})`);
    check((await forged.text()).includes("anti-forgery"), "the refusal says why");
    const wrong = await op.request.post(`/runs/${encodeURIComponent(other.json.id)}/do/cancel`, { form: { csrf: "0".repeat(64) }, maxRedirects: 0 });
    check(wrong.status() === 403, `a form with a wrong token is refused (${wrong.status()})`);
    const after = await api(base, operator, "GET", `/v1/runs/${other.json.id}`);
    check(after.json.status !== "cancelled", `the refused form cancelled nothing (${after.json.status})`);

    // Every operator page, with a screenshot.
    const incidents = await api(base, operator, "GET", "/v1/incidents");
    const incident = incidents.json.items[0];
    check(incident, "the reported incident is listed");
    for (const [p, name] of [["/", "overview"], ["/runs", "runs"], ["/runs?status=failed", "runs-failed"], ["/incidents", "incidents"], [`/incidents/${encodeURIComponent(incident.id)}`, "incident"], ["/alerts", "alerts"], ["/workflows", "workflows"], ["/workflows/hello", "workflow"], ["/catalog", "catalog"], [`/catalog/hello`, "catalog-entry"], [`/runs/${encodeURIComponent(other.json.id)}`, "run-fanout"], ["/portal/status", "status"]]) {
      const resp = await op.goto(p);
      check(resp.status() === 200, `${p} answers 200 for an operator (${resp.status()})`);
      await shot(op, name);
    }
    // The incident is acknowledged from its page.
    await op.goto(`/incidents/${encodeURIComponent(incident.id)}`);
    if (incident.status === "triggered") {
      await op.getByRole("button", { name: "Acknowledge" }).click();
      await op.locator(".badge.st-acknowledged").first().waitFor();
    }
    // The overview at a tablet's width.
    await op.setViewportSize({ width: 800, height: 1000 });
    await op.goto("/");
    await shot(op, "overview-tablet");
    // Dark.
    await op.emulateMedia({ colorScheme: "dark" });
    await op.goto(`/runs/${encodeURIComponent(runId)}`);
    await shot(op, "run-dag-dark");

    // Signing out ends the session.
    await op.goto("/");
    await op.getByRole("button", { name: "Sign out" }).click();
    await op.waitForURL((u) => u.pathname === "/login");
    await op.goto("/runs");
    check(new URL(op.url()).pathname === "/login", "after signing out a page leads to sign-in");
    console.log(`console browser checks passed; screenshots in ${SHOTS}`);
  } finally {
    if (browser) { await browser.close(); }
    server.child.kill("SIGKILL");
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
