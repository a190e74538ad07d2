"""Writes the DICOM series the import tests read, synthesised with pydicom from real voxels.

usage: dicom_series.py MNI152.nii.gz OUT_DIR

Every series holds slices of a crop of the MNI152 template (data no one here wrote); each
folder of OUT_DIR is one scenario: an orientation, a slice order, a rescale, a transfer syntax,
a multi-frame file, or a defect the import must refuse. DCMTK's dcmcjpeg writes the JPEG ones.
"""

import random
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import DSfloat

mni, out = sys.argv[1], Path(sys.argv[2])
VOLUME = np.asanyarray(nibabel.load(mni).dataobj)[70:118, 80:136, 80:104].astype(np.int32)  # 48 × 56 × 24
COLUMNS, ROWS, SLICES = VOLUME.shape
SPACING = (0.8, 0.7)  # between rows, between columns
STEP = 2.5
STUDY = generate_uid()
FRAME_OF_REFERENCE = generate_uid()
random.seed(7)


def ds_values(values):
    return [DSfloat(round(float(v), 6), auto_format=True) for v in values]


def rotation(axis, degrees):
    """A rotation matrix about a patient axis (0, 1, 2 = x, y, z)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    m = np.eye(3)
    i, j = [k for k in range(3) if k != axis]
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def stored_plane(k, scale=4, offset=-300):
    """Slice k as stored samples (rows × columns)."""
    return (VOLUME[:, :, k] * scale + offset).T


def base_dataset(series, sop_class, number, description):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.StudyInstanceUID = STUDY
    ds.SeriesInstanceUID = series
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE
    ds.Modality = "CT"
    ds.SeriesDescription = description
    ds.SeriesNumber = number
    ds.PatientName = "Test^Patient"
    ds.PatientID = "SEGLAB-TEST-1"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.AccessionNumber = "ACC-4242"
    ds.StudyID = "1"
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.ReferringPhysicianName = "Referring^Doctor"
    ds.InstitutionName = "Seglab General Hospital"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def set_samples(ds, planes, bits, signed):
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = {(8, False): "u1", (16, False): "<u2", (16, True): "<i2"}[(bits, signed)]
    ds.PixelData = np.stack(planes).astype(dtype).tobytes()


def write_series(
    name,
    orientation=None,
    syntax=ExplicitVRLittleEndian,
    rescale=lambda k: (1.0, -1024.0),
    scale=4,
    offset=-300,
    bits=16,
    signed=True,
    drop=(),
    shear=0.0,
    series=None,
    number=1,
    description=None,
):
    """One file per slice, in shuffled file order with reversed InstanceNumbers."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    axes = np.eye(3) if orientation is None else orientation
    row_dir, col_dir, normal = axes[:, 0], axes[:, 1], axes[:, 2]
    origin = np.array([-40.0, -60.0, 20.0])
    series = series or generate_uid()
    order = list(range(SLICES))
    random.shuffle(order)
    for file_number, k in enumerate(order):
        if k in drop:
            continue
        ds = base_dataset(series, CTImageStorage, number, description or name)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = SLICES - k
        ds.ImageOrientationPatient = ds_values(list(row_dir) + list(col_dir))
        position = origin + k * STEP * normal + k * shear * col_dir
        ds.ImagePositionPatient = ds_values(position)
        ds.PixelSpacing = ds_values(SPACING)
        ds.SliceThickness = DSfloat(STEP)
        slope, intercept = rescale(k)
        ds.RescaleSlope = DSfloat(slope, auto_format=True)
        ds.RescaleIntercept = DSfloat(intercept, auto_format=True)
        ds.WindowCenter = DSfloat(40)
        ds.WindowWidth = DSfloat(400)
        set_samples(ds, [stored_plane(k, scale, offset)], bits, signed)
        path = folder / f"file{file_number:03d}.dcm"
        if syntax in (RLELossless, JPEG2000Lossless):
            ds.compress(syntax)
        elif syntax == ExplicitVRBigEndian:
            ds.file_meta.TransferSyntaxUID = syntax
            ds.PixelData = np.frombuffer(ds.PixelData, dtype="<i2").astype(">i2").tobytes()
        elif syntax in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
            ds.file_meta.TransferSyntaxUID = syntax
        elif syntax == JPEGLSLossless:
            # Its encoder is not needed: the import must refuse the syntax from the header.
            ds.file_meta.TransferSyntaxUID = syntax
            ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + bytes(64) + b"\xff\xd9"])
        ds.save_as(path, enforce_file_format=True)
        if syntax in ("jpeg-lossless", "jpeg-baseline"):
            flag = "+e1" if syntax == "jpeg-lossless" else "+eb"
            subprocess.run(["dcmcjpeg", flag, str(path), str(path)], check=True)
    return series


def write_enhanced(name):
    """One enhanced CT file, its frames stored from the last slice to the first."""
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    ds = base_dataset(generate_uid(), EnhancedCTImageStorage, 1, name)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 1
    ds.NumberOfFrames = SLICES
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20260101", "120000", "20260101120000"
    dimension = Dataset()
    dimension.DimensionIndexPointer = 0x00209057  # InStackPositionNumber
    dimension.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
    ds.DimensionIndexSequence = [dimension]
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = ds_values(SPACING)
    measures.SliceThickness = DSfloat(STEP)
    shared.PixelMeasuresSequence = [measures]
    orientation = Dataset()
    orientation.ImageOrientationPatient = ds_values([1, 0, 0, 0, 1, 0])
    shared.PlaneOrientationSequence = [orientation]
    transformation = Dataset()
    transformation.RescaleSlope = DSfloat(1)
    transformation.RescaleIntercept = DSfloat(-1024)
    transformation.RescaleType = "HU"
    shared.PixelValueTransformationSequence = [transformation]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames, planes = [], []
    for position_in_file, k in enumerate(reversed(range(SLICES))):
        frame = Dataset()
        position = Dataset()
        position.ImagePositionPatient = ds_values([-40.0, -60.0, 20.0 + k * STEP])
        frame.PlanePositionSequence = [position]
        content = Dataset()
        content.InStackPositionNumber = k + 1
        content.StackID = "1"
        content.DimensionIndexValues = [k + 1]
        frame.FrameContentSequence = [content]
        frames.append(frame)
        planes.append(stored_plane(k))
    ds.PerFrameFunctionalGroupsSequence = frames
    set_samples(ds, planes, 16, True)
    ds.save_as(folder / "enhanced.dcm", enforce_file_format=True)


write_series("axial")
write_series("implicit", syntax=ImplicitVRLittleEndian)
write_series("big_endian", syntax=ExplicitVRBigEndian)
write_series("deflate", syntax=DeflatedExplicitVRLittleEndian)
write_series("rle", syntax=RLELossless)
write_series("jpeg2000", syntax=JPEG2000Lossless)
write_series("jpeg_lossless", syntax="jpeg-lossless")
write_series("jpeg_baseline", syntax="jpeg-baseline", bits=8, signed=False, scale=1, offset=0, rescale=lambda k: (1.0, 0.0))
write_series("sagittal", orientation=np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0]], dtype=float))
write_series("coronal", orientation=np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float))
write_series("oblique", orientation=rotation(0, 20) @ rotation(2, -35))
write_series("fractional_slope", rescale=lambda k: (0.5, -100.25))
write_series("varying_slope", rescale=lambda k: (1.0 + k / 16, -1000.0 + k))
write_series("unsigned", signed=False, offset=0, rescale=lambda k: (1.0, 0.0))
write_enhanced("enhanced")
write_series("missing_slice", drop=(11,))
write_series("gantry_tilt", shear=STEP * np.tan(np.radians(15)))
write_series("jpeg_ls", syntax=JPEGLSLossless)
first = write_series("two_series/first", number=3, description="first")
second = write_series("two_series/second", number=4, description="second", orientation=rotation(1, 10))
write_series("truncated")
victim = sorted((out / "truncated").iterdir())[5]
cut = pydicom.dcmread(victim)
cut.PixelData = cut.PixelData[: len(cut.PixelData) // 2]
cut.save_as(victim, enforce_file_format=True)
write_series("huge_header")
for path in sorted((out / "huge_header").iterdir())[1:]:
    path.unlink()
huge = pydicom.dcmread(next((out / "huge_header").iterdir()))
huge.Rows = huge.Columns = 65535
huge.save_as(next((out / "huge_header").iterdir()), enforce_file_format=True)
(out / "zip_bomb").mkdir()
with zipfile.ZipFile(out / "zip_bomb" / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
    with bomb.open("slice.dcm", "w", force_zip64=True) as entry:
        zeros = bytes(1 << 20)
        for _ in range(128):  # 128 MiB of zeros in a zip of about 130 KB
            entry.write(zeros)
(out / "not_dicom").mkdir()
(out / "not_dicom" / "notes.txt").write_text("not a DICOM file\n" * 20)
print(f"{first} {second}")
