-- Incidents become tickets: what PagerDuty calls `triggered` replaces `open`, and the ticket's
-- fields (impact, type, affected services and tenants, assignee, root cause, contributing
-- factors, action items) live in one JSON object beside the columns reports filter on.
UPDATE incidents SET status = 'triggered' WHERE status = 'open';
ALTER TABLE incidents ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
CREATE INDEX incidents_by_time ON incidents (created_at, id);
