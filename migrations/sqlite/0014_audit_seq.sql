-- Calls answered within one millisecond keep their order in the audit log: `seq` counts the
-- calls of the process that drafted the entries (entries of refused calls are written later,
-- in batches, so their ids do not say it).
ALTER TABLE audit ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
DROP INDEX audit_by_time;
CREATE INDEX audit_by_time ON audit (at, seq, id);
