-- The version history is evidence like the audit log: saved mask versions are never changed
-- or removed.
CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels is append-only: mask versions are never changed or removed'); END;
CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels is append-only: mask versions are never changed or removed'); END;
