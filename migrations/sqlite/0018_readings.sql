-- Several readers per case. A case may require N independent readings (1: the single-labeler
-- workflow). Each reading is one reader's own chain of mask versions, started from the case's
-- mask as it was when the reading was taken and saved through the same path as any label;
-- `head_mask_ref` is its current version, moved by compare-and-swap like the case's head.
-- Nobody reads a case twice. Once every reading is submitted, an adjudicator settles the
-- case's own mask (from their consensus) and approves it. `blind`: until then, readers see
-- neither the models' predictions nor their jobs (they never see each other's readings).
ALTER TABLE cases ADD COLUMN readings_required BIGINT NOT NULL DEFAULT 1;
ALTER TABLE cases ADD COLUMN blind BIGINT NOT NULL DEFAULT 0;

CREATE TABLE readings (
    id            TEXT PRIMARY KEY,
    case_id       TEXT NOT NULL REFERENCES cases (id),
    reader_id     TEXT NOT NULL REFERENCES users (id),
    head_mask_ref TEXT NOT NULL,
    submitted_at  BIGINT,
    created_at    BIGINT NOT NULL,
    UNIQUE (case_id, reader_id)
);
CREATE INDEX readings_reader ON readings (reader_id, case_id);

-- The reading a saved version belongs to; none for the case's own chain.
ALTER TABLE labels ADD COLUMN reading_id TEXT REFERENCES readings (id);
