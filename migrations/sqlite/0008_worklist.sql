-- The worklist: who saved a case last and when (kept on the case, so listing 100,000 cases
-- joins no history), and indexes for its sort orders.
ALTER TABLE cases ADD COLUMN last_saved_at BIGINT;
ALTER TABLE cases ADD COLUMN last_saved_by TEXT REFERENCES users (id);
CREATE INDEX cases_created ON cases (created_at);
CREATE INDEX cases_name ON cases (LOWER(name));
CREATE INDEX cases_last_saved ON cases (last_saved_at);
