"""Writes an int16 volume with nibabel, the reference NIfTI writer, carrying a header extension
(so its voxels start past byte 352), and next to it the voxels as nibabel reads them back:
file-order (Fortran) little-endian int16."""
import sys

import nibabel as nib
import numpy as np

path, voxels_path = sys.argv[1], sys.argv[2]
data = (np.arange(7 * 5 * 3, dtype=np.int16).reshape((7, 5, 3), order="F") * 37 - 900).astype(np.int16)
image = nib.Nifti1Image(data, np.diag([0.8, 0.9, 2.5, 1.0]))
image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"written by the seglab interop test " * 4))
nib.save(image, path)
reread = nib.load(path)
offset = reread.dataobj.offset  # where nibabel reads the voxels (the header field is reset on load)
assert offset > 352, offset
np.asarray(reread.dataobj).astype("<i2").reshape(-1, order="F").tofile(voxels_path)
print(int(offset))
