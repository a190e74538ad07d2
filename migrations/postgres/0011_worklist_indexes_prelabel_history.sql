-- The worklist name search needs no index here: a scan of the precomputed lower-case names
-- stays under 30 ms at 100,000 cases (SQLite gets a trigram index in its 0011).

-- The worklist's counts per status for someone who sees only some restricted cases read this
-- index alone.
CREATE INDEX cases_status_access ON cases (status, restricted, assignee_id, reviewer_id);

-- Pre-labels committed before 0010 recorded them, recovered from their audit rows.
INSERT INTO prelabels (mask_ref, case_id, model_id, created_at)
SELECT a.details::json ->> 'mask_ref', a.case_id, a.details::json ->> 'model_id', a.at
FROM audit_log a
WHERE a.action = 'prelabel'
  AND a.details::json ->> 'model_id' IN (SELECT id FROM models)
  AND a.case_id IN (SELECT id FROM cases)
  AND a.details::json ->> 'mask_ref' NOT IN (SELECT mask_ref FROM prelabels);
