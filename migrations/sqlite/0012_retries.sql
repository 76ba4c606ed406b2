-- Each retry of a failed run (POST /v1/runs/{id}/retry): when, by whom, which units it put
-- back. Its history, shown with the run.
CREATE TABLE run_retries (
    run_id  TEXT    NOT NULL,
    n       INTEGER NOT NULL,          -- 1 for the first retry, …
    at      INTEGER NOT NULL,
    by      TEXT    NOT NULL,
    units   TEXT    NOT NULL,          -- JSON list of the unit keys run again
    PRIMARY KEY (run_id, n)
) STRICT;
