-- The REST API's own state: tenants, tokens, requests, audit log, inbound events and uploaded
-- plugins. Times are milliseconds since the Unix epoch. JSON is stored as text.

CREATE TABLE tenants (
    id           TEXT    PRIMARY KEY,
    allowlist    TEXT    NOT NULL DEFAULT '[]',  -- JSON list of CIDRs; empty = any address
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,           -- public part, shown in the audit log
    hash         TEXT    NOT NULL UNIQUE,       -- sha256 of the whole secret token
    role         TEXT    NOT NULL,              -- admin | operator | client | integration
    tenant       TEXT    REFERENCES tenants (id),  -- set for clients
    name         TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE TABLE requests (
    id               TEXT    PRIMARY KEY,
    catalog_id       TEXT    NOT NULL,
    workflow         TEXT    NOT NULL,
    workflow_version INTEGER,
    tenant           TEXT    NOT NULL,
    requester        TEXT    NOT NULL,          -- token id
    inputs           TEXT    NOT NULL,          -- after defaults
    status           TEXT    NOT NULL,          -- submitted | awaiting_approval | rejected | started
    run_id           TEXT,                      -- set in the same commit that creates the run
    approval_roles   TEXT    NOT NULL DEFAULT '[]',
    decided_by       TEXT,
    decided_at       INTEGER,
    decision_note    TEXT,
    sla_deadline     INTEGER,
    idempotency_key  TEXT,
    body_hash        TEXT    NOT NULL,          -- of the submitted body, to refuse key reuse
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (requester, idempotency_key)
) STRICT;

CREATE INDEX requests_by_tenant ON requests (tenant, created_at);
CREATE INDEX requests_unstarted ON requests (status) WHERE status = 'submitted';

CREATE TABLE audit (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor        TEXT,                          -- token id; NULL when unauthenticated
    role         TEXT,
    tenant       TEXT,
    method       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    remote       TEXT    NOT NULL
) STRICT;

CREATE TABLE events (
    id           TEXT    PRIMARY KEY,
    source       TEXT    NOT NULL,              -- alertmanager | grafana
    received_at  INTEGER NOT NULL,
    received_by  TEXT    NOT NULL,              -- token id
    status       TEXT,                          -- firing | resolved, as sent
    alerts       INTEGER NOT NULL,
    payload      TEXT    NOT NULL
) STRICT;

CREATE TABLE plugins (
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    hash         TEXT    NOT NULL,
    wasm         BLOB    NOT NULL,
    uploaded_by  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;
