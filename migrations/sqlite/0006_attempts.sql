-- Every finished attempt of a plugin unit: when it ran, how it ended, its error and its
-- captured log (capped per attempt by the plugin's `log_bytes`). Written in the same commit
-- as the unit's row, so the history and the unit never disagree.
CREATE TABLE attempts (
    run_id       TEXT    NOT NULL,
    key          TEXT    NOT NULL,          -- the unit's key, as in steps
    attempt      INTEGER NOT NULL,          -- 1, 2, …
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,          -- succeeded | failed | cancelled
    kind         TEXT,                      -- a failure's kind: retryable, timeout, trap, …
    error        TEXT,
    log          TEXT    NOT NULL,
    PRIMARY KEY (run_id, key, attempt)
) STRICT;
