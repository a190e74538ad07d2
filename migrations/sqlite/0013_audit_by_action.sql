-- A model's timeline (and "what was in production then") reads the audit rows of one kind of
-- action, not the whole log.
CREATE INDEX audit_log_action ON audit_log (action, seq);
