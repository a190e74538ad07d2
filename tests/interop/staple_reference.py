"""Reference STAPLE for tests/api/consensus_parity.rs, from SimpleITK's STAPLEImageFilter.

Reads a JSON list of cases ({name, dims, label, readings: [raw uint8 files, i fastest],
probability: an output path}) and, per case, writes SimpleITK's probability map of the label
as raw float64 (i fastest) to `probability` and prints its sensitivity and specificity per
reader and its number of iterations.
"""

import json
import sys

import numpy as np
import SimpleITK as sitk

out = []
for case in json.load(open(sys.argv[1])):
    dims = tuple(case["dims"])
    images = []
    for path in case["readings"]:
        voxels = np.fromfile(path, dtype=np.uint8).reshape(dims, order="F")
        # SimpleITK's arrays are indexed [k, j, i].
        images.append(sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose(2, 1, 0))))
    staple = sitk.STAPLEImageFilter()
    staple.SetForegroundValue(float(case["label"]))
    probability = staple.Execute(images)
    sitk.GetArrayFromImage(probability).astype(np.float64).transpose(2, 1, 0).ravel(order="F").tofile(
        case["probability"]
    )
    out.append({
        "name": case["name"],
        "sensitivity": list(staple.GetSensitivity()),
        "specificity": list(staple.GetSpecificity()),
        "iterations": staple.GetElapsedIterations(),
    })
json.dump(out, sys.stdout)
