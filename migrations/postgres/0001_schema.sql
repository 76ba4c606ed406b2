-- The schema of the PostgreSQL store: the same tables, columns and indexes as the SQLite
-- store's migrations 0001 to 0020 end with, so one set of statements serves both. Times are
-- milliseconds since the Unix epoch (BIGINT); JSON is stored as text, as on SQLite; text
-- compares byte by byte (COLLATE "C"), as on SQLite, so pages and cursors order alike.
-- Later changes come as migrations with the same number in both directories.

CREATE TABLE workflows (
    name        TEXT COLLATE "C"    NOT NULL,
    version     BIGINT NOT NULL,
    hash        TEXT COLLATE "C"    NOT NULL,           -- sha256 of the source: a changed file must bump version
    source      TEXT COLLATE "C"    NOT NULL,           -- the YAML as uploaded; re-validated on load
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE runs (
    id           TEXT COLLATE "C"    PRIMARY KEY,
    workflow     TEXT COLLATE "C"    NOT NULL,
    version      BIGINT NOT NULL,          -- runs keep the version they started on
    tenant       TEXT COLLATE "C"    NOT NULL,
    requester    TEXT COLLATE "C",
    inputs       TEXT COLLATE "C"    NOT NULL,
    status       TEXT COLLATE "C"    NOT NULL,          -- running | failing | cancelling | succeeded | failed | cancelled
    outputs      TEXT COLLATE "C",
    error        TEXT COLLATE "C",
    parent_run   TEXT COLLATE "C",                      -- set for sub-workflow runs
    parent_step  TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    lease_owner  TEXT COLLATE "C",                      -- the process executing the run
    lease_until  BIGINT,                    -- another process may take it over after this
    lease_epoch BIGINT NOT NULL DEFAULT 0,
    blocked TEXT COLLATE "C",
    cancel_compensates BIGINT NOT NULL DEFAULT 1,
    paused_at BIGINT
);

CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('running', 'failing', 'cancelling');

CREATE INDEX runs_by_tenant ON runs (tenant, created_at);

CREATE TABLE steps (
    run_id       TEXT COLLATE "C"    NOT NULL,
    key          TEXT COLLATE "C"    NOT NULL,          -- step id, `id#N` for fan-out items, `~id#N` compensations
    step_id      TEXT COLLATE "C"    NOT NULL,
    status       TEXT COLLATE "C"    NOT NULL,          -- pending | running | waiting | retrying | succeeded | failed | skipped | cancelled
    attempt      BIGINT NOT NULL DEFAULT 0,
    output       TEXT COLLATE "C",
    error        TEXT COLLATE "C",
    state        TEXT COLLATE "C",                      -- kind-specific state: fan-out items, child run id, …
    wake_at      BIGINT,                   -- durable timer: wait end, retry time, timeouts
    started_at   BIGINT,
    finished_at  BIGINT,
    position BIGINT NOT NULL DEFAULT 0,
    item BIGINT NOT NULL DEFAULT -1,
    PRIMARY KEY (run_id, key)
);

CREATE INDEX steps_timers ON steps (wake_at) WHERE wake_at IS NOT NULL;

CREATE TABLE signals (
    id           BIGINT PRIMARY KEY,
    run_id       TEXT COLLATE "C"    NOT NULL,
    name         TEXT COLLATE "C"    NOT NULL,
    payload      TEXT COLLATE "C"    NOT NULL,
    created_at   BIGINT NOT NULL,
    consumed_by  TEXT COLLATE "C"                       -- the step key that took it; NULL while buffered
);

CREATE INDEX signals_pending ON signals (run_id, name) WHERE consumed_by IS NULL;

CREATE TABLE incidents (
    id           TEXT COLLATE "C"    PRIMARY KEY,
    run_id       TEXT COLLATE "C",
    tenant       TEXT COLLATE "C"    NOT NULL,
    title        TEXT COLLATE "C"    NOT NULL,
    severity     TEXT COLLATE "C"    NOT NULL,
    service      TEXT COLLATE "C",
    status       TEXT COLLATE "C"    NOT NULL,          -- open | acknowledged | resolved
    timeline     TEXT COLLATE "C"    NOT NULL,          -- JSON list of {at, by, note}
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    details TEXT COLLATE "C" NOT NULL DEFAULT '{}');

CREATE TABLE cron_fires (
    workflow      TEXT COLLATE "C"    NOT NULL,
    trigger_index BIGINT NOT NULL,         -- position in the workflow's `triggers:` list
    scheduled_at  BIGINT NOT NULL,         -- the instant the schedule names
    fired_at      BIGINT NOT NULL,         -- when it was handled
    outcome       TEXT COLLATE "C"    NOT NULL,         -- started | skipped (overlap policy `skip`)
    run_id        TEXT COLLATE "C",                     -- the run it started; NULL when skipped
    PRIMARY KEY (workflow, trigger_index, scheduled_at)
);

CREATE TABLE tenants (
    id           TEXT COLLATE "C"    PRIMARY KEY,
    allowlist    TEXT COLLATE "C"    NOT NULL DEFAULT '[]',  -- JSON list of CIDRs; empty = any address
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE tokens (
    id           TEXT COLLATE "C"    PRIMARY KEY,           -- public part, shown in the audit log
    hash         TEXT COLLATE "C"    NOT NULL UNIQUE,       -- sha256 of the whole secret token
    role         TEXT COLLATE "C"    NOT NULL,              -- admin | operator | client | integration
    tenant       TEXT COLLATE "C"    REFERENCES tenants (id),  -- set for clients
    name         TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE requests (
    id               TEXT COLLATE "C"    PRIMARY KEY,
    catalog_id       TEXT COLLATE "C"    NOT NULL,
    workflow         TEXT COLLATE "C"    NOT NULL,
    workflow_version BIGINT,
    tenant           TEXT COLLATE "C"    NOT NULL,
    requester        TEXT COLLATE "C"    NOT NULL,          -- token id
    inputs           TEXT COLLATE "C"    NOT NULL,          -- after defaults
    status           TEXT COLLATE "C"    NOT NULL,          -- submitted | awaiting_approval | rejected | started
    run_id           TEXT COLLATE "C",                      -- set in the same commit that creates the run
    approval_roles   TEXT COLLATE "C"    NOT NULL DEFAULT '[]',
    decided_by       TEXT COLLATE "C",
    decided_at       BIGINT,
    decision_note    TEXT COLLATE "C",
    sla_deadline     BIGINT,
    idempotency_key  TEXT COLLATE "C",
    body_hash        TEXT COLLATE "C"    NOT NULL,          -- of the submitted body, to refuse key reuse
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (requester, idempotency_key)
);

CREATE INDEX requests_by_tenant ON requests (tenant, created_at);

CREATE INDEX requests_unstarted ON requests (status) WHERE status = 'submitted';

CREATE TABLE audit (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT COLLATE "C",                          -- token id; NULL when unauthenticated
    role         TEXT COLLATE "C",
    tenant       TEXT COLLATE "C",
    method       TEXT COLLATE "C"    NOT NULL,
    path         TEXT COLLATE "C"    NOT NULL,
    status       BIGINT NOT NULL,
    remote       TEXT COLLATE "C"    NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0);

CREATE TABLE events (
    id           TEXT COLLATE "C"    PRIMARY KEY,
    source       TEXT COLLATE "C"    NOT NULL,              -- alertmanager | grafana
    received_at  BIGINT NOT NULL,
    received_by  TEXT COLLATE "C"    NOT NULL,              -- token id
    status       TEXT COLLATE "C",                          -- firing | resolved, as sent
    alerts       BIGINT NOT NULL,
    payload      TEXT COLLATE "C"    NOT NULL
);

CREATE TABLE plugins (
    name         TEXT COLLATE "C"    NOT NULL,
    version      TEXT COLLATE "C"    NOT NULL,
    hash         TEXT COLLATE "C"    NOT NULL,
    wasm         BYTEA    NOT NULL,
    uploaded_by  TEXT COLLATE "C"    NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE id_blocks (
    name  TEXT COLLATE "C"    PRIMARY KEY,
    next  BIGINT NOT NULL               -- the first id not yet handed out
);

CREATE INDEX steps_in_plan_order ON steps (run_id, position, item, key);

CREATE TABLE attempts (
    run_id       TEXT COLLATE "C"    NOT NULL,
    key          TEXT COLLATE "C"    NOT NULL,          -- the unit's key, as in steps
    attempt      BIGINT NOT NULL,          -- 1, 2, …
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    outcome      TEXT COLLATE "C"    NOT NULL,          -- succeeded | failed | cancelled
    kind         TEXT COLLATE "C",                      -- a failure's kind: retryable, timeout, trap, …
    error        TEXT COLLATE "C",
    log          TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (run_id, key, attempt)
);

CREATE TABLE secrets (
    name        TEXT COLLATE "C"    PRIMARY KEY,
    nonce       BYTEA    NOT NULL,           -- 24 random bytes per value
    ciphertext  BYTEA    NOT NULL,           -- value + 16-byte tag
    key_id      TEXT COLLATE "C"    NOT NULL,           -- which master key: first 16 hex of its sha256
    set_by      TEXT COLLATE "C"    NOT NULL,           -- `cli` or the admin token's id
    set_at      BIGINT NOT NULL
);

CREATE TABLE run_labels (
    run_id  TEXT COLLATE "C" NOT NULL,
    key     TEXT COLLATE "C" NOT NULL,
    value   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE INDEX run_labels_by_value ON run_labels (key, value, run_id);

CREATE TABLE run_keys (
    requester   TEXT COLLATE "C"    NOT NULL,          -- the token id that started the run
    key         TEXT COLLATE "C"    NOT NULL,          -- its Idempotency-Key
    body_hash   TEXT COLLATE "C"    NOT NULL,          -- sha256 of what was asked, to refuse a reused key
    run_id      TEXT COLLATE "C"    NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (requester, key)
);

CREATE INDEX runs_by_workflow ON runs (workflow, created_at);

CREATE INDEX runs_by_created ON runs (created_at, id);

CREATE INDEX steps_waiting ON steps (run_id) WHERE status = 'waiting';

CREATE INDEX requests_awaiting ON requests (created_at) WHERE status = 'awaiting_approval';

CREATE TABLE run_retries (
    run_id  TEXT COLLATE "C"    NOT NULL,
    n       BIGINT NOT NULL,          -- 1 for the first retry, …
    at      BIGINT NOT NULL,
    by      TEXT COLLATE "C"    NOT NULL,
    units   TEXT COLLATE "C"    NOT NULL,          -- JSON list of the unit keys run again
    PRIMARY KEY (run_id, n)
);

CREATE TABLE catalog_entries (
    id          TEXT COLLATE "C"    PRIMARY KEY,
    source      TEXT COLLATE "C",                      -- the entry's YAML; NULL once deleted
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX audit_by_time ON audit (at, seq, id);

CREATE TABLE alerts (
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY,  -- arrival order, as SQLite's rowid
    id           TEXT COLLATE "C"    PRIMARY KEY,
    event_id     TEXT COLLATE "C",                      -- the notification that carried it
    source       TEXT COLLATE "C"    NOT NULL,
    fingerprint  TEXT COLLATE "C"    NOT NULL,
    status       TEXT COLLATE "C"    NOT NULL,          -- firing | resolved
    severity     TEXT COLLATE "C",
    labels       TEXT COLLATE "C"    NOT NULL,
    annotations  TEXT COLLATE "C"    NOT NULL,
    starts_at    BIGINT,
    ends_at      BIGINT,
    tenant       TEXT COLLATE "C",
    raw          TEXT COLLATE "C"    NOT NULL,
    received_at  BIGINT NOT NULL,
    outcome      TEXT COLLATE "C"    NOT NULL,          -- duplicate | silenced | unmatched | matched | ignored
    silence_id   TEXT COLLATE "C"
);

CREATE INDEX alerts_latest ON alerts (source, fingerprint, received_at);

CREATE INDEX alerts_by_time ON alerts (received_at, id);

CREATE TABLE alert_groups (
    id           TEXT COLLATE "C"    PRIMARY KEY,
    rule         TEXT COLLATE "C"    NOT NULL,
    key          TEXT COLLATE "C"    NOT NULL,          -- JSON: the group_by labels' values, and the tenant
    generation   BIGINT NOT NULL,
    tenant       TEXT COLLATE "C",
    state        TEXT COLLATE "C"    NOT NULL,          -- waiting | active | resolved | ended | failed
    opened_at    BIGINT NOT NULL,
    act_at       BIGINT,                   -- durable timer: group_wait ends (while waiting)
    acted_at     BIGINT,
    run_id       TEXT COLLATE "C",                      -- the group's one run
    incident_id  TEXT COLLATE "C",
    firing       TEXT COLLATE "C"    NOT NULL,          -- JSON list: fingerprints firing now
    error        TEXT COLLATE "C",
    ended_at     BIGINT,
    updated_at   BIGINT NOT NULL,
    UNIQUE (rule, key, generation)
);

CREATE INDEX alert_groups_due ON alert_groups (act_at) WHERE act_at IS NOT NULL;

CREATE INDEX alert_groups_open ON alert_groups (state) WHERE state IN ('active', 'resolved');

CREATE TABLE alert_matches (
    alert_id     TEXT COLLATE "C"    NOT NULL,
    group_id     TEXT COLLATE "C"    NOT NULL,
    rule         TEXT COLLATE "C"    NOT NULL,
    received_at  BIGINT NOT NULL,
    firing       BIGINT NOT NULL,          -- 1 when the alert was firing
    outcome      TEXT COLLATE "C"    NOT NULL,          -- waiting | started | signalled | counted | dropped
    signal       TEXT COLLATE "C",                      -- alert | resolved: still to reach the group's run
    PRIMARY KEY (alert_id, group_id)
);

CREATE INDEX alert_matches_group ON alert_matches (group_id, received_at);

CREATE INDEX alert_matches_undelivered ON alert_matches (group_id) WHERE signal IS NOT NULL;

CREATE TABLE silences (
    id           TEXT COLLATE "C"    PRIMARY KEY,
    matchers     TEXT COLLATE "C"    NOT NULL,          -- JSON object: label → matcher
    starts_at    BIGINT NOT NULL,
    ends_at      BIGINT NOT NULL,
    created_by   TEXT COLLATE "C"    NOT NULL,
    comment      TEXT COLLATE "C"    NOT NULL,
    tenant       TEXT COLLATE "C",                      -- only this tenant's alerts, when set
    run_id       TEXT COLLATE "C",                      -- the run whose step opened it
    created_at   BIGINT NOT NULL
);

CREATE INDEX silences_active ON silences (ends_at);

CREATE TABLE alert_rules (
    name         TEXT COLLATE "C"    PRIMARY KEY,
    source       TEXT COLLATE "C",
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT COLLATE "C"    NOT NULL
);

CREATE INDEX events_sns_message ON events (((payload::jsonb) ->> 'MessageId'))
    WHERE source = 'cloudwatch';

CREATE INDEX incidents_by_time ON incidents (created_at, id);

CREATE INDEX requests_by_time ON requests (created_at, id);

CREATE TABLE oncall_files (
    name         TEXT COLLATE "C"    PRIMARY KEY,
    source       TEXT COLLATE "C",                      -- the YAML; NULL once deleted
    updated_at   BIGINT NOT NULL,
    updated_by   TEXT COLLATE "C"    NOT NULL
);

CREATE TABLE check_results (
    check_name   TEXT COLLATE "C"    NOT NULL,
    at           BIGINT NOT NULL,
    passed       BIGINT NOT NULL,          -- 1 or 0
    status       BIGINT,                   -- the HTTP status, when an answer came
    latency_ms   BIGINT NOT NULL,
    error        TEXT COLLATE "C"                       -- why it failed
);

CREATE INDEX check_results_by_check ON check_results (check_name, at);

CREATE INDEX check_results_by_time ON check_results (at);

CREATE TABLE check_state (
    check_name   TEXT COLLATE "C"    PRIMARY KEY,
    up           BIGINT,                   -- 1 up, 0 down, NULL not known yet
    fails        BIGINT NOT NULL,
    passes       BIGINT NOT NULL,
    incident_id  TEXT COLLATE "C",                      -- opened while down when no rule took the alert
    changed_at   BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    id_hash      TEXT COLLATE "C"    PRIMARY KEY,
    token_hash   TEXT COLLATE "C"    NOT NULL,
    csrf         TEXT COLLATE "C"    NOT NULL,          -- what every form of the session must send back
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

INSERT INTO id_blocks (name, next) VALUES ('signals', 1);
