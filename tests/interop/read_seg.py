"""Reads a DICOM Segmentation with pydicom and highdicom and compares it, in world space, with
a label map stored as NIfTI.

usage: read_seg.py SEG.dcm MASK.nii.gz SOURCE_DIR LABELS

SOURCE_DIR holds the series the SEG was made on; LABELS maps names to values (`1=liver,2=tumour`).
For every source image (or frame), highdicom's segment map of that image is compared pixel by
pixel with the NIfTI voxel at the same patient position. Prints JSON: what the SEG says, how
many pixels were compared, labelled and mismatched.
"""

import json
import sys
from pathlib import Path

import highdicom as hd
import nibabel
import numpy as np
import pydicom

seg_path, mask_path, source_dir, label_spec = sys.argv[1:5]
value_of = {name.lower(): int(value) for value, name in (item.split("=") for item in label_spec.split(","))}

plain = pydicom.dcmread(seg_path)  # pydicom reads it
seg = hd.seg.segread(seg_path)
segments = []
for item in seg.SegmentSequence:
    segments.append({
        "number": int(item.SegmentNumber),
        "label": item.SegmentLabel,
        "category": item.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
        "type": item.SegmentedPropertyTypeCodeSequence[0].CodeValue,
        "scheme": item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator,
        "colour": list(item.RecommendedDisplayCIELabValue) if "RecommendedDisplayCIELabValue" in item else None,
    })
value_of_segment = np.zeros(256, dtype=np.uint8)
for segment in segments:
    value_of_segment[segment["number"]] = value_of[segment["label"].lower()]

mask = nibabel.load(mask_path)
labels = np.asanyarray(mask.dataobj).astype(np.uint8)
to_voxel = np.linalg.inv(mask.affine)


def images(path):
    """(SOP instance UID, frame number or None, position, orientation, spacing) of each image."""
    ds = pydicom.dcmread(path)
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
        spacing = shared.PixelMeasuresSequence[0].PixelSpacing
        for number, frame in enumerate(ds.PerFrameFunctionalGroupsSequence, start=1):
            yield ds.SOPInstanceUID, number, frame.PlanePositionSequence[0].ImagePositionPatient, orientation, spacing, ds.Rows, ds.Columns
    else:
        yield ds.SOPInstanceUID, None, ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing, ds.Rows, ds.Columns


compared = mismatched = labelled = outside = 0
for path in sorted(Path(source_dir).iterdir()):
    for uid, frame, position, orientation, spacing, rows, columns in images(path):
        if frame is None:
            ours = seg.get_pixels_by_source_instance(
                [uid], combine_segments=True, assert_missing_frames_are_empty=True)[0]
        else:
            ours = seg.get_pixels_by_source_frame(
                uid, [frame], combine_segments=True, assert_missing_frames_are_empty=True)[0]
        actual = value_of_segment[ours.astype(np.int64)]
        r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
        row_dir, column_dir = np.array(orientation[:3], float), np.array(orientation[3:], float)
        lps = (np.array(position, float)[None, None, :]
               + row_dir[None, None, :] * (c[..., None] * float(spacing[1]))
               + column_dir[None, None, :] * (r[..., None] * float(spacing[0])))
        ras = lps * np.array([-1.0, -1.0, 1.0])
        homogeneous = np.concatenate([ras, np.ones(ras.shape[:2] + (1,))], axis=2)
        ijk = np.rint(homogeneous @ to_voxel.T)[..., :3].astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(labels.shape)), axis=2)
        outside += int((~inside).sum())
        ijk = np.clip(ijk, 0, np.array(labels.shape) - 1)
        expected = labels[ijk[..., 0], ijk[..., 1], ijk[..., 2]]
        compared += expected.size
        labelled += int((expected > 0).sum())
        mismatched += int((expected != actual).sum())

print(json.dumps({
    "sop_class": str(plain.SOPClassUID),
    "frames": int(plain.NumberOfFrames),
    "segments": segments,
    "study": str(plain.StudyInstanceUID),
    "frame_of_reference": str(plain.FrameOfReferenceUID),
    "referenced_series": [str(s.SeriesInstanceUID) for s in plain.ReferencedSeriesSequence],
    "referenced_instances": sum(len(s.ReferencedInstanceSequence) for s in plain.ReferencedSeriesSequence),
    "compared": compared,
    "labelled": labelled,
    "mismatched": mismatched,
    "outside": outside,
}))
