"""Writes the CT series the DICOM benchmark imports: 300 axial slices of 512 × 512 int16, one
file each (explicit VR little endian), resampled (nearest neighbour) from the MNI152 template.

usage: dicom_ct.py MNI152.nii.gz OUT_DIR
"""

import sys
from pathlib import Path

import nibabel
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

mni, out = sys.argv[1], Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
source = np.asanyarray(nibabel.load(mni).dataobj)
COLUMNS, ROWS, SLICES = 512, 512, 300
pick = [np.minimum((np.arange(n) * source.shape[a] / n).astype(int), source.shape[a] - 1) for a, n in enumerate((COLUMNS, ROWS, SLICES))]
volume = source[np.ix_(*pick)].astype(np.int16) * 8 - 1024  # (columns, rows, slices)
study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
for k in range(SLICES):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
    ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "CT", "benchmark", 1, k + 1
    ds.PatientName, ds.PatientID, ds.StudyDate = "Bench^Patient", "BENCH-1", "20260101"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-179.0, -179.0, -150.0 + k]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.ascontiguousarray(volume[:, :, k].T).tobytes()
    ds.save_as(out / f"slice{k:03d}.dcm", enforce_file_format=True)
