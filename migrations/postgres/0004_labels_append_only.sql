-- The version history is evidence like the audit log: saved mask versions are never changed
-- or removed.
CREATE FUNCTION labels_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'labels is append-only: mask versions are never changed or removed';
END
$$;
CREATE TRIGGER labels_no_change BEFORE UPDATE OR DELETE ON labels
FOR EACH ROW EXECUTE FUNCTION labels_append_only();
CREATE TRIGGER labels_no_truncate BEFORE TRUNCATE ON labels
FOR EACH STATEMENT EXECUTE FUNCTION labels_append_only();
