-- On-call files (people, teams, schedules, escalation policies) set or deleted over the API,
-- laid over the files of the on-call directory by name.
CREATE TABLE oncall_files (
    name         TEXT    PRIMARY KEY,
    source       TEXT,                      -- the YAML; NULL once deleted
    updated_at   INTEGER NOT NULL,
    updated_by   TEXT    NOT NULL
) STRICT;
