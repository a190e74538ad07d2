"""The same load-apply-save as seglab's label save, done with nibabel: load a .nii.gz mask,
set voxels start..start+len (file order) to a label, save as a new .nii.gz. Prints the
duration of each iteration in milliseconds as JSON."""
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
        data = np.asarray(image.dataobj).copy()
        flat = data.reshape(-1, order="F")  # a view: the array is Fortran-ordered
        flat[start:start + length] = 1
        edited = nib.Nifti1Image(data, image.affine, image.header)
        nib.save(edited, os.path.join(out_dir, f"mask-{i}.nii.gz"))
        durations.append((time.perf_counter() - began) * 1000)
print(json.dumps(durations))
