-- SLA reports and burn rates read the requests of a window across every tenant.
CREATE INDEX requests_by_time ON requests (created_at, id);
