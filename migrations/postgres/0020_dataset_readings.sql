-- The readings a snapshot carries beside each adjudicated mask, for training with label
-- uncertainty: every reading of a case read by several readers, in the order they were taken.
-- Frozen like the rest of a snapshot.
CREATE TABLE dataset_readings (
    dataset_id  TEXT NOT NULL REFERENCES datasets (id),
    case_id     TEXT NOT NULL REFERENCES cases (id),
    position    BIGINT NOT NULL,
    reader      TEXT NOT NULL,
    mask_ref    TEXT NOT NULL,
    mask_sha256 TEXT NOT NULL,
    PRIMARY KEY (dataset_id, case_id, position)
);
CREATE TRIGGER dataset_readings_no_change BEFORE UPDATE OR DELETE ON dataset_readings
FOR EACH ROW EXECUTE FUNCTION datasets_frozen();
CREATE TRIGGER dataset_readings_no_truncate BEFORE TRUNCATE ON dataset_readings
FOR EACH STATEMENT EXECUTE FUNCTION datasets_frozen();
