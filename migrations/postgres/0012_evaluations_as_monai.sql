-- Evaluations follow MONAI's definitions from here on: no Dice where the human mask lacks the
-- label (NULL), and HD95's percentile interpolated linearly. The cached figures were computed
-- the old way, so they go; they are recomputed when next needed.
DELETE FROM evaluations;
ALTER TABLE evaluations ALTER COLUMN dice DROP NOT NULL;
