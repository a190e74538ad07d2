-- Each submitted reading of a case read by several readers, scored per label against the
-- case's own latest mask version (the adjudicated one) as a model's prediction is
-- (`evaluations`): the model page puts a version's Dice next to the readers' own on the same
-- cases. Computed in the background by the evaluator.
CREATE TABLE reading_scores (
    reading_id  TEXT NOT NULL REFERENCES readings (id),
    human_ref   TEXT NOT NULL,
    label_value BIGINT NOT NULL,
    dice        DOUBLE PRECISION,
    hd95_mm     DOUBLE PRECISION,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (reading_id, human_ref, label_value)
);
