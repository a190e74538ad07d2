"""Reads a mask with nibabel, the reference NIfTI reader, and prints what the interop test
compares: shape, dtype, affine, and the labelled voxels as file-order (Fortran) indices."""
import json
import sys

import nibabel as nib
import numpy as np

image = nib.load(sys.argv[1])
data = np.asarray(image.dataobj)
flat = data.reshape(-1, order="F")
labelled = np.flatnonzero(flat)
print(json.dumps({
    "shape": list(data.shape),
    "dtype": str(data.dtype),
    "affine": image.affine.tolist(),
    "indices": labelled.tolist(),
    "values": flat[labelled].tolist(),
}))
