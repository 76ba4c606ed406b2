-- A run's units are listed in plan order (a step after what it needs, fan-out items in item
-- order, on_failure steps after the main ones, compensations last), paged by that order.
ALTER TABLE steps ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN item INTEGER NOT NULL DEFAULT -1;   -- the fan-out item, -1 for none
CREATE INDEX steps_in_plan_order ON steps (run_id, position, item, key);
