-- A paused run dispatches nothing new until it is resumed (POST /v1/runs/{id}/pause, /resume).
ALTER TABLE runs ADD COLUMN paused_at INTEGER;
