-- The DICOM series a case was imported from: its identity in the hospital's records, to find
-- the series again (one case per series), show it, and send segmentations of it back.
-- `source_images_json` lists the source images in slice order, each with its position (LPS mm):
-- [{sop_instance_uid, frame?, position}]; `geometry_json` holds the series' orientation and
-- spacing: {orientation, pixel_spacing, slice_spacing}. A segmentation written for the case
-- places and references its frames with them. `pseudonym` is what labelers see of the patient:
-- the same for every series of one patient (HMAC-SHA256 of the PatientID under the
-- deployment's key, kept in `deployment_keys`).
CREATE TABLE case_dicom (
    case_id                TEXT PRIMARY KEY REFERENCES cases (id),
    study_instance_uid     TEXT NOT NULL,
    series_instance_uid    TEXT NOT NULL,
    frame_of_reference_uid TEXT,
    sop_class_uid          TEXT NOT NULL,
    modality               TEXT NOT NULL,
    series_description     TEXT NOT NULL,
    window_center          DOUBLE PRECISION,
    window_width           DOUBLE PRECISION,
    source_images_json     TEXT NOT NULL,
    geometry_json          TEXT NOT NULL,
    pseudonym              TEXT NOT NULL
);
-- One case per series: importing a series again answers with its case.
CREATE UNIQUE INDEX case_dicom_series ON case_dicom (series_instance_uid);
CREATE INDEX case_dicom_study ON case_dicom (study_instance_uid);
CREATE INDEX case_dicom_modality ON case_dicom (modality);
CREATE INDEX case_dicom_pseudonym ON case_dicom (pseudonym);

-- Who the patient is (DICOM PS3.15's identifying attributes), kept apart from the case for
-- admins only, and not at all under `--dicom-identifiers drop`.
CREATE TABLE case_dicom_identity (
    case_id                  TEXT PRIMARY KEY REFERENCES cases (id),
    patient_name             TEXT,
    patient_id               TEXT,
    issuer_of_patient_id     TEXT,
    patient_birth_date       TEXT,
    patient_sex              TEXT,
    accession_number         TEXT,
    study_date               TEXT,
    study_description        TEXT,
    institution_name         TEXT,
    referring_physician_name TEXT
);

-- Secrets one deployment shares across its instances, made on first use.
CREATE TABLE deployment_keys (
    name    TEXT PRIMARY KEY,
    key_hex TEXT NOT NULL
);
