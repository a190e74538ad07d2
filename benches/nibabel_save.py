"""The same load-apply-save as seglab's label save, done with nibabel as fast as an ordinary
script does it: load a .nii.gz mask (its voxels stay uint8: the mask has no scaling), set
voxels start..start+len (file order) to a label, save as a new .nii.gz (nibabel's default gzip
level, 1). Prints the duration of each iteration in milliseconds as JSON."""
import json
import os
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

path, iterations, start, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
durations = []
with tempfile.TemporaryDirectory() as out_dir:
    for i in range(iterations):
        began = time.perf_counter()
        image = nib.load(path)
        # A writable copy that keeps the file's (Fortran) order: `.copy()` would make it
        # C-ordered, so the reshape below would edit a temporary copy and the save would
        # transpose the whole volume.
        data = np.array(image.dataobj, order="F")
        flat = data.reshape(-1, order="F")
        assert np.shares_memory(flat, data), "the edit must reach the saved array"
        flat[start:start + length] = 1
        edited = nib.Nifti1Image(data, image.affine, image.header)
        nib.save(edited, os.path.join(out_dir, f"mask-{i}.nii.gz"))
        durations.append((time.perf_counter() - began) * 1000)
print(json.dumps(durations))
