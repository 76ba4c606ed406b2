-- Workflow definitions, runs, their steps, signals and incidents.
-- Times are milliseconds since the Unix epoch. JSON is stored as text.

CREATE TABLE workflows (
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    hash        TEXT    NOT NULL,           -- sha256 of the source: a changed file must bump version
    source      TEXT    NOT NULL,           -- the YAML as uploaded; re-validated on load
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TABLE runs (
    id           TEXT    PRIMARY KEY,
    workflow     TEXT    NOT NULL,
    version      INTEGER NOT NULL,          -- runs keep the version they started on
    tenant       TEXT    NOT NULL,
    requester    TEXT,
    inputs       TEXT    NOT NULL,
    status       TEXT    NOT NULL,          -- running | failing | cancelling | succeeded | failed | cancelled
    outputs      TEXT,
    error        TEXT,
    parent_run   TEXT,                      -- set for sub-workflow runs
    parent_step  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    lease_owner  TEXT,                      -- the process executing the run
    lease_until  INTEGER                    -- another process may take it over after this
) STRICT;

CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('running', 'failing', 'cancelling');
CREATE INDEX runs_by_tenant ON runs (tenant, created_at);

CREATE TABLE steps (
    run_id       TEXT    NOT NULL,
    key          TEXT    NOT NULL,          -- step id, `id#N` for fan-out items, `~id#N` compensations
    step_id      TEXT    NOT NULL,
    status       TEXT    NOT NULL,          -- pending | running | waiting | retrying | succeeded | failed | skipped | cancelled
    attempt      INTEGER NOT NULL DEFAULT 0,
    output       TEXT,
    error        TEXT,
    state        TEXT,                      -- kind-specific state: fan-out items, child run id, …
    wake_at      INTEGER,                   -- durable timer: wait end, retry time, timeouts
    started_at   INTEGER,
    finished_at  INTEGER,
    PRIMARY KEY (run_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX steps_timers ON steps (wake_at) WHERE wake_at IS NOT NULL;

CREATE TABLE signals (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    consumed_by  TEXT                       -- the step key that took it; NULL while buffered
) STRICT;

CREATE INDEX signals_pending ON signals (run_id, name) WHERE consumed_by IS NULL;

CREATE TABLE incidents (
    id           TEXT    PRIMARY KEY,
    run_id       TEXT,
    tenant       TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    service      TEXT,
    status       TEXT    NOT NULL,          -- open | acknowledged | resolved
    timeline     TEXT    NOT NULL,          -- JSON list of {at, by, note}
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
