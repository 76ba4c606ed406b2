-- Leases are fenced: every claim of a run bumps its epoch, and every write a process makes for a
-- run it executes is conditioned on (lease_owner, lease_epoch) being still its own. A process
-- whose lease was taken over writes nothing more for that run and drops it.
ALTER TABLE runs ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;

-- Ids the store hands out in blocks, so that several processes on one database never pick the
-- same one (signals were numbered by a counter each process seeded from MAX(id) at start).
CREATE TABLE id_blocks (
    name  TEXT    PRIMARY KEY,
    next  INTEGER NOT NULL               -- the first id not yet handed out
) STRICT;

INSERT INTO id_blocks (name, next) SELECT 'signals', COALESCE(MAX(id), 0) + 1 FROM signals;

-- A run whose workflow version no longer plans (an uploaded plugin missing, a grant removed)
-- waits instead of failing: this says why, and is cleared when it can go on.
ALTER TABLE runs ADD COLUMN blocked TEXT;

-- A run being cancelled either undoes what it did (compensations newest first, then its
-- on_failure steps) or stops without (`{"compensate": false}`); kept across a restart.
ALTER TABLE runs ADD COLUMN cancel_compensates INTEGER NOT NULL DEFAULT 1;
