"""Writes a DICOM Segmentation with highdicom, as another tool would, on a series.

usage: write_seg.py SOURCE_DIR OUT.dcm

Two segments, `liver` (a box over slices 4 to 12 of the sorted series) and `tumour` (a smaller
box inside it on slices 7 and 8), drawn in the source images' pixel grid.
"""

import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

source_dir, out = sys.argv[1:3]
sources = [pydicom.dcmread(path) for path in sorted(Path(source_dir).iterdir())]
normal = np.cross(np.array(sources[0].ImageOrientationPatient[:3], float), np.array(sources[0].ImageOrientationPatient[3:], float))
sources.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))

pixels = np.zeros((len(sources), sources[0].Rows, sources[0].Columns), dtype=np.uint8)
pixels[4:13, 10:40, 8:30] = 1
pixels[7:9, 20:28, 12:20] = 2
tissue = hd.sr.CodedConcept("85756007", "SCT", "Tissue")
descriptions = [
    hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label,
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    for number, label, category, kind in [
        (1, "liver", hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure"), codes.SCT.Liver),
        (2, "tumour", hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"), hd.sr.CodedConcept("108369006", "SCT", "Neoplasm")),
    ]
]
seg = hd.seg.Segmentation(
    source_images=sources,
    pixel_array=pixels,
    segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
    segment_descriptions=descriptions,
    series_instance_uid=hd.UID(),
    series_number=50,
    sop_instance_uid=hd.UID(),
    instance_number=1,
    manufacturer="highdicom",
    manufacturer_model_name="write_seg.py",
    software_versions=hd.__version__,
    device_serial_number="1",
)
seg.save_as(out)
print(int((pixels > 0).sum()))
