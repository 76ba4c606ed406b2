-- Runs started directly over the API (POST /v1/runs): the labels they carry, and the
-- Idempotency-Keys they were started with. Both are written once, in the commit that creates
-- the run, and never change; kept beside `runs` so the run row every transition rewrites
-- stays as it is.

CREATE TABLE run_labels (
    run_id  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX run_labels_by_value ON run_labels (key, value, run_id);

CREATE TABLE run_keys (
    requester   TEXT    NOT NULL,          -- the token id that started the run
    key         TEXT    NOT NULL,          -- its Idempotency-Key
    body_hash   TEXT    NOT NULL,          -- sha256 of what was asked, to refuse a reused key
    run_id      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (requester, key)
) STRICT, WITHOUT ROWID;

-- Run lists filtered by workflow or status, newest first.
CREATE INDEX runs_by_workflow ON runs (workflow, created_at);
CREATE INDEX runs_by_created ON runs (created_at, id);
