-- The worklist: who saved a case last and when (kept on the case, so listing 100,000 cases
-- joins no history; 0 = never), the name in lower case for searching and sorting (computed
-- once, not per row of every listing; with the status, a name search counts from the index
-- alone), and indexes for the sort orders.
ALTER TABLE cases ADD COLUMN last_saved_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN last_saved_by TEXT REFERENCES users (id);
ALTER TABLE cases ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
-- Voxels per label of the current mask, {"1": 1234, …}, kept up to date by each save from its
-- edits; empty where not known (cases imported before this column).
ALTER TABLE cases ADD COLUMN label_counts_json TEXT NOT NULL DEFAULT '';
UPDATE cases SET search_name = LOWER(name);
CREATE INDEX cases_created ON cases (created_at);
CREATE INDEX cases_search_name ON cases (search_name, status);
CREATE INDEX cases_last_saved ON cases (last_saved_at);
