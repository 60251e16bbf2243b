-- Dunning: tenants suspended for invoices left unpaid.
--
-- When an invoice first became OVERDUE (unix microseconds); kept when the
-- invoice is charged again and declined again, so that the suspension delay
-- counts from the first time. NULL: never OVERDUE.
ALTER TABLE invoices ADD COLUMN overdue_at BIGINT;
-- Invoices OVERDUE before this migration became so at their last update
-- (the end of their last charge round).
UPDATE invoices SET overdue_at = updated_at WHERE status = 'OVERDUE';
-- The suspension job looks for unpaid invoices OVERDUE before a moment.
CREATE INDEX invoices_overdue ON invoices (overdue_at) WHERE overdue_at IS NOT NULL;

-- A tenant's suspension, on its row: every authenticated request reads that
-- row already (with the token), so a reservation learns it with no other
-- query; it changes rarely (suspended, reinstated). `suspended_for` lists the
-- invoice names it was suspended for (a JSON list of strings).
ALTER TABLE tenants ADD COLUMN suspended_at BIGINT;
ALTER TABLE tenants ADD COLUMN suspended_by TEXT;
ALTER TABLE tenants ADD COLUMN suspended_for TEXT;
-- The operator's last reinstatement by hand: invoices that were OVERDUE by
-- then no longer suspend the tenant; the next one to go OVERDUE does, once
-- past the delay.
ALTER TABLE tenants ADD COLUMN dunning_waived_at BIGINT;
