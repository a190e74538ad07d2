"""`seglab infer` done with onnxruntime instead of tract, for benches/runtimes.rs: the same
files in and out (float32 little-endian voxels in file order; one label byte per voxel), the
same z-score normalisation, the same argmax over the output channels.

Usage: onnxruntime_infer.py MODEL INPUT OUTPUT I,J,K CHANNELS [THREADS]
(CHANNELS: e.g. 0,1; THREADS: onnxruntime's intra-op threads, default one per core)
"""

import sys

import numpy as np
import onnxruntime

model, input_path, output_path, dims, channels = sys.argv[1:6]
threads = int(sys.argv[6]) if len(sys.argv) > 6 else 0
ni, nj, nk = (int(d) for d in dims.split(","))
channels = np.array([int(c) for c in channels.split(",")], dtype=np.uint8)

image = np.fromfile(input_path, dtype="<f4").reshape(1, 1, nk, nj, ni)
# In place, a slice at a time in float64, as seglab's normalisation holds no second copy.
slices = image.reshape(nk, nj * ni)
count = sum(int(np.isfinite(s).sum()) for s in slices) or 1
mean = sum(float(s[np.isfinite(s)].astype(np.float64).sum()) for s in slices) / count
variance = sum(float(((s[np.isfinite(s)].astype(np.float64) - mean) ** 2).sum()) for s in slices) / count
std = max(variance ** 0.5, 1e-6)
for s in slices:
    s[...] = ((s.astype(np.float64) - mean) / std).astype(np.float32)
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = threads
session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
(logits,) = session.run(None, {session.get_inputs()[0].name: image})
# Ties go to the later channel, as seglab's argmax does.
last_best = logits.shape[1] - 1 - np.argmax(logits[0, ::-1], axis=0)
channels[last_best].tofile(output_path)
