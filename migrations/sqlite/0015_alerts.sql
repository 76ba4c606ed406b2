-- Alerts from every source in one model, the groups rules keep of them (one durable run per
-- group), which alert went to which group, silences, and rules set over the API.
CREATE TABLE alerts (
    id           TEXT    PRIMARY KEY,
    event_id     TEXT,                      -- the notification that carried it
    source       TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    status       TEXT    NOT NULL,          -- firing | resolved
    severity     TEXT,
    labels       TEXT    NOT NULL,
    annotations  TEXT    NOT NULL,
    starts_at    INTEGER,
    ends_at      INTEGER,
    tenant       TEXT,
    raw          TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,          -- duplicate | silenced | unmatched | matched | ignored
    silence_id   TEXT
) STRICT;

CREATE INDEX alerts_latest ON alerts (source, fingerprint, received_at);
CREATE INDEX alerts_by_time ON alerts (received_at, id);

CREATE TABLE alert_groups (
    id           TEXT    PRIMARY KEY,
    rule         TEXT    NOT NULL,
    key          TEXT    NOT NULL,          -- JSON: the group_by labels' values, and the tenant
    generation   INTEGER NOT NULL,
    tenant       TEXT,
    state        TEXT    NOT NULL,          -- waiting | active | resolved | ended | failed
    opened_at    INTEGER NOT NULL,
    act_at       INTEGER,                   -- durable timer: group_wait ends (while waiting)
    acted_at     INTEGER,
    run_id       TEXT,                      -- the group's one run
    incident_id  TEXT,
    firing       TEXT    NOT NULL,          -- JSON list: fingerprints firing now
    error        TEXT,
    ended_at     INTEGER,
    updated_at   INTEGER NOT NULL,
    UNIQUE (rule, key, generation)
) STRICT;

CREATE INDEX alert_groups_due ON alert_groups (act_at) WHERE act_at IS NOT NULL;
CREATE INDEX alert_groups_open ON alert_groups (state) WHERE state IN ('active', 'resolved');

CREATE TABLE alert_matches (
    alert_id     TEXT    NOT NULL,
    group_id     TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    firing       INTEGER NOT NULL,          -- 1 when the alert was firing
    outcome      TEXT    NOT NULL,          -- waiting | started | signalled | counted | dropped
    signal       TEXT,                      -- alert | resolved: still to reach the group's run
    PRIMARY KEY (alert_id, group_id)
) STRICT;

CREATE INDEX alert_matches_group ON alert_matches (group_id, received_at);
CREATE INDEX alert_matches_undelivered ON alert_matches (group_id) WHERE signal IS NOT NULL;

CREATE TABLE silences (
    id           TEXT    PRIMARY KEY,
    matchers     TEXT    NOT NULL,          -- JSON object: label → matcher
    starts_at    INTEGER NOT NULL,
    ends_at      INTEGER NOT NULL,
    created_by   TEXT    NOT NULL,
    comment      TEXT    NOT NULL,
    tenant       TEXT,                      -- only this tenant's alerts, when set
    run_id       TEXT,                      -- the run whose step opened it
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX silences_active ON silences (ends_at);

-- Rules set or deleted over the API, laid over the rules directory at start-up like catalog
-- entries: a stored rule replaces a file's rule of the same name, a deletion (source NULL)
-- hides it.
CREATE TABLE alert_rules (
    name         TEXT    PRIMARY KEY,
    source       TEXT,
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT    NOT NULL
) STRICT;

-- An SNS message is taken once: its MessageId, looked up in the notifications stored.
CREATE INDEX events_sns_message ON events (json_extract(payload, '$.MessageId'))
    WHERE source = 'cloudwatch';
