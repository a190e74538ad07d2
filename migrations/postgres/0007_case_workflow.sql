-- The case workflow: new → in_progress → submitted → approved, with changes_requested sending a
-- case back to its labeler. A case may be assigned to a labeler and a reviewer; approval pins
-- the mask version that was reviewed. Reviewers' comments, optionally anchored to a voxel.
ALTER TABLE cases ADD COLUMN status TEXT NOT NULL DEFAULT 'new'
    CHECK (status IN ('new', 'in_progress', 'submitted', 'changes_requested', 'approved'));
ALTER TABLE cases ADD COLUMN assignee_id TEXT REFERENCES users (id);
ALTER TABLE cases ADD COLUMN reviewer_id TEXT REFERENCES users (id);
ALTER TABLE cases ADD COLUMN approved_mask_ref TEXT;
-- 1: only the case's labeler and reviewer, ML engineers and admins may read it.
ALTER TABLE cases ADD COLUMN restricted BIGINT NOT NULL DEFAULT 0;
CREATE INDEX cases_status ON cases (status, created_at);
CREATE INDEX cases_assignee ON cases (assignee_id, status);

CREATE TABLE case_comments (
    id          TEXT PRIMARY KEY,
    case_id     TEXT NOT NULL REFERENCES cases (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    body        TEXT NOT NULL,
    -- The voxel the comment points at (i, j, k), or none.
    anchor_i    BIGINT,
    anchor_j    BIGINT,
    anchor_k    BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX case_comments_case ON case_comments (case_id, created_at);
