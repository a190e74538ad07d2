"""Checks that two NIfTI volumes hold the same voxels at the same places in the world.

usage: same_volume.py OURS THEIRS LOSSY [OURS THEIRS LOSSY ...]

The grids may store their axes in different orders and directions (dcm2niix flips rows, for
one): the voxel-to-voxel map inv(A_theirs) · A_ours must be a signed permutation with an
integer shift, the affines must agree within 1e-3 mm after it, and the scaled values (nibabel's
get_fdata, which applies scl_slope and scl_inter) must be equal; with LOSSY `1` (a lossy JPEG
series, whose decoders may round their inverse DCTs differently) within 8 grey levels, and
within one on average. Prints one line per pair with both stored types and the largest
difference; exits 1 at the first pair that differs.
"""

import sys

import nibabel
import numpy as np


def compare(ours_path, theirs_path, lossy):
    ours, theirs = nibabel.load(ours_path), nibabel.load(theirs_path)
    a_ours, a_theirs = ours.affine, theirs.affine
    mapping = np.linalg.inv(a_theirs) @ a_ours
    rounded = np.round(mapping)
    linear = rounded[:3, :3]
    is_permutation = all(sorted(np.abs(row)) == [0, 0, 1] for row in linear) and abs(abs(np.linalg.det(linear)) - 1) < 1e-9
    if not is_permutation or np.abs(mapping - rounded).max() > 1e-3:
        return f"the grids are not the same lattice: voxel map\n{mapping}"
    worst = np.abs(a_theirs @ rounded - a_ours).max()
    if worst > 1e-3:
        return f"the affines differ by {worst} mm:\n{a_ours}\n{a_theirs}"
    data_ours, data_theirs = ours.get_fdata(), theirs.get_fdata()
    if data_theirs.ndim > 3:
        data_theirs = data_theirs[..., 0]
    shape = data_ours.shape
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    mapped = (rounded @ ijk)[:3].astype(int)
    if any(mapped[axis].min() < 0 or mapped[axis].max() >= data_theirs.shape[axis] for axis in range(3)):
        return f"shapes {shape} and {data_theirs.shape} do not cover each other"
    values_theirs = data_theirs[mapped[0], mapped[1], mapped[2]].reshape(shape)
    difference = np.abs(values_theirs - data_ours)
    tolerance = 8 if lossy else 1e-5 * np.abs(data_ours).max()
    if lossy and difference.mean() > 1:
        return f"the voxels differ by {difference.mean()} on average"
    if difference.max() > tolerance:
        where = np.unravel_index(difference.argmax(), shape)
        return f"{int((difference > tolerance).sum())} voxels differ, most at {where}: {data_ours[where]} != {values_theirs[where]}"
    print(f"{ours_path}: same as {theirs_path} ({ours.get_data_dtype()} / {theirs.get_data_dtype()}, "
          f"worst {worst:.2e} mm, largest difference {difference.max()})")
    return None


args = sys.argv[1:]
for ours_path, theirs_path, lossy in zip(args[0::3], args[1::3], args[2::3]):
    problem = compare(ours_path, theirs_path, lossy == "1")
    if problem:
        print(f"{ours_path} differs from {theirs_path}: {problem}", file=sys.stderr)
        sys.exit(1)
