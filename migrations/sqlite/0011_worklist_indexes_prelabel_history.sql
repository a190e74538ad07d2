-- A trigram index of the case names (FTS5), so a worklist name search reads the matching
-- cases instead of every case. It keeps its own copy of the lower-case name with the case id:
-- an external-content table would key on rowid, which VACUUM may renumber.
CREATE VIRTUAL TABLE cases_name_search USING fts5(search_name, case_id UNINDEXED, tokenize = 'trigram');
INSERT INTO cases_name_search (search_name, case_id) SELECT search_name, id FROM cases;
CREATE TRIGGER cases_name_search_insert AFTER INSERT ON cases
BEGIN INSERT INTO cases_name_search (search_name, case_id) VALUES (new.search_name, new.id); END;
CREATE TRIGGER cases_name_search_rename AFTER UPDATE OF search_name ON cases
BEGIN UPDATE cases_name_search SET search_name = new.search_name WHERE case_id = old.id; END;
CREATE TRIGGER cases_name_search_delete AFTER DELETE ON cases
BEGIN DELETE FROM cases_name_search WHERE case_id = old.id; END;

-- The worklist's counts per status for someone who sees only some restricted cases read this
-- index alone.
CREATE INDEX cases_status_access ON cases (status, restricted, assignee_id, reviewer_id);

-- Pre-labels committed before 0010 recorded them, recovered from their audit rows.
INSERT INTO prelabels (mask_ref, case_id, model_id, created_at)
SELECT json_extract(a.details, '$.mask_ref'), a.case_id, json_extract(a.details, '$.model_id'), a.at
FROM audit_log a
WHERE a.action = 'prelabel'
  AND json_extract(a.details, '$.model_id') IN (SELECT id FROM models)
  AND a.case_id IN (SELECT id FROM cases)
  AND json_extract(a.details, '$.mask_ref') NOT IN (SELECT mask_ref FROM prelabels);
