-- The audit log is read newest call first: entries of refused calls are written in batches,
-- after entries of later calls that changed something, so the insertion order (id) is not the
-- order of the calls; their time (at) is.
CREATE INDEX audit_by_time ON audit (at, id);
