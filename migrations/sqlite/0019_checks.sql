-- Synthetic checks: every probe's result (kept 31 days), and where each check stands between
-- probes, so thresholds and the incident a down check opened survive a restart.
CREATE TABLE check_results (
    check_name   TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    passed       INTEGER NOT NULL,          -- 1 or 0
    status       INTEGER,                   -- the HTTP status, when an answer came
    latency_ms   INTEGER NOT NULL,
    error        TEXT                       -- why it failed
) STRICT;

CREATE INDEX check_results_by_check ON check_results (check_name, at);
CREATE INDEX check_results_by_time ON check_results (at);

CREATE TABLE check_state (
    check_name   TEXT    PRIMARY KEY,
    up           INTEGER,                   -- 1 up, 0 down, NULL not known yet
    fails        INTEGER NOT NULL,
    passes       INTEGER NOT NULL,
    incident_id  TEXT,                      -- opened while down when no rule took the alert
    changed_at   INTEGER NOT NULL
) STRICT;
