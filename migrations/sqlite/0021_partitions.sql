-- Several processes share one database's work. Runs are hashed into partitions (64, fixed
-- here); each partition is leased by one process under an epoch that every write made for it
-- carries, so a process that lost a partition writes nothing more to it. A `csmp run` process
-- holds a private partition (id 64 and up) for its own run and that run's children.
CREATE TABLE partitions (
    id          INTEGER PRIMARY KEY,
    owner       TEXT,                        -- the process holding it
    epoch       INTEGER NOT NULL DEFAULT 0,  -- bumped by every claim; fences every write
    lease_until INTEGER,                     -- another process may take it after this (ms)
    private     INTEGER NOT NULL DEFAULT 0   -- 1: one `csmp run` process's own
) STRICT;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 63)
INSERT INTO partitions (id) SELECT i FROM n;

-- The processes sharing the database, by lease name; a heartbeat older than a lease is a
-- process gone. Executors aim at an equal share of the partitions among the live ones.
CREATE TABLE members (
    owner        TEXT    PRIMARY KEY,
    role         TEXT    NOT NULL,           -- all | executor | api | run
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;

-- Runs live in a partition (child runs in their parent's); runs of earlier versions of the
-- schema are all in partition 0. Per-run leases are gone: the partition's lease fences.
ALTER TABLE runs ADD COLUMN partition INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs DROP COLUMN lease_owner;
ALTER TABLE runs DROP COLUMN lease_until;
ALTER TABLE runs DROP COLUMN lease_epoch;
CREATE INDEX runs_unfinished_by_partition ON runs (partition)
    WHERE status IN ('running', 'failing', 'cancelling');

-- Incidents live in a partition too: the one of the run that opened them, or their id's.
ALTER TABLE incidents ADD COLUMN partition INTEGER NOT NULL DEFAULT 0;
CREATE INDEX incidents_open_by_partition ON incidents (partition) WHERE status <> 'resolved';

-- Commands for the owner of another partition (a run started, a signal, an approval, a
-- cancel, …): written by the process that took the call, applied by the partition's owner in
-- the commit that answers them.
CREATE TABLE inbox (
    id          TEXT    PRIMARY KEY,
    partition   INTEGER NOT NULL,
    command     TEXT    NOT NULL,            -- JSON
    sender      TEXT    NOT NULL,            -- the lease name of the process waiting
    created_at  INTEGER NOT NULL,
    answered_at INTEGER,
    answer      TEXT                         -- JSON: {"ok": …} or {"error": …}
) STRICT;
CREATE INDEX inbox_open ON inbox (partition, created_at) WHERE answered_at IS NULL;
CREATE INDEX inbox_answered ON inbox (answered_at) WHERE answered_at IS NOT NULL;
