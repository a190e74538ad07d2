"""Reference figures for tests/metric_parity.rs, from medpy (a third-party implementation).

Reads a JSON list of cases ({name, dims, spacing, label, prediction, reference}: raw uint8
masks, i fastest) and prints, per case, medpy's Dice and the surface distances medpy computes
in both directions, reduced as MONAI's compute_hausdorff_distance(percentile=95) reduces
them: the larger of the two directed 95th percentiles (numpy's linear interpolation, like
torch.quantile). MONAI's DiceMetric(ignore_empty=True) gives no Dice when the reference lacks
the label, and Hausdorff distances need the label on both sides; cases without a figure omit
it. medpy's own hd95 (both directions pooled) is printed too, for the record.
"""

import json
import sys

import numpy as np
from medpy.metric import binary

surface_distances = getattr(binary, "__surface_distances")


def load(path, dims):
    return np.fromfile(path, dtype=np.uint8).reshape(dims, order="F")


out = []
for case in json.load(open(sys.argv[1])):
    dims, spacing, label = tuple(case["dims"]), tuple(case["spacing"]), case["label"]
    prediction = load(case["prediction"], dims) == label
    reference = load(case["reference"], dims) == label
    figures = {"name": case["name"]}
    if reference.any():
        figures["dice"] = float(binary.dc(prediction, reference))
    if reference.any() and prediction.any():
        to_reference = surface_distances(prediction, reference, spacing, 1)
        to_prediction = surface_distances(reference, prediction, spacing, 1)
        figures["hd95"] = float(max(np.percentile(to_reference, 95), np.percentile(to_prediction, 95)))
        figures["medpy_hd95_pooled"] = float(binary.hd95(prediction, reference, spacing))
    out.append(figures)
json.dump(out, sys.stdout)
