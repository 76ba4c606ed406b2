-- Cron fires: one row per scheduled instant of a workflow's trigger that csmp handled. It is
-- written in the same transaction as the run it starts, and its primary key refuses a second
-- fire of the same instant, so each instant fires at most once across restarts and processes.

CREATE TABLE cron_fires (
    workflow      TEXT    NOT NULL,
    trigger_index INTEGER NOT NULL,         -- position in the workflow's `triggers:` list
    scheduled_at  INTEGER NOT NULL,         -- the instant the schedule names
    fired_at      INTEGER NOT NULL,         -- when it was handled
    outcome       TEXT    NOT NULL,         -- started | skipped (overlap policy `skip`)
    run_id        TEXT,                     -- the run it started; NULL when skipped
    PRIMARY KEY (workflow, trigger_index, scheduled_at)
) STRICT, WITHOUT ROWID;
