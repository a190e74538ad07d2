-- Evaluations follow MONAI's definitions from here on: no Dice where the human mask lacks the
-- label (NULL), and HD95's percentile interpolated linearly. The cached figures were computed
-- the old way, so they go; they are recomputed when next needed.
CREATE TABLE evaluations_monai (
    prediction_id TEXT NOT NULL REFERENCES predictions (id),
    human_ref     TEXT NOT NULL,
    label_value   BIGINT NOT NULL,
    dice          DOUBLE PRECISION,
    hd95_mm       DOUBLE PRECISION,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (prediction_id, human_ref, label_value)
);
DROP TABLE evaluations;
ALTER TABLE evaluations_monai RENAME TO evaluations;
