-- What waits on a person (GET /v1/approvals): waiting steps and requests at their gate.
CREATE INDEX steps_waiting ON steps (run_id) WHERE status = 'waiting';
CREATE INDEX requests_awaiting ON requests (created_at) WHERE status = 'awaiting_approval';
