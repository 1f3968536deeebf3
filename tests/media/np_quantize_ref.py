"""numpy reference for frame quantisation (tests/media/quantize_test.cpp).

OUT/x.f32: float32 inputs (random, every bucket edge k/255 in both mappings
and its float32 neighbours, +-inf); OUT/signed.u8: Wan's
((clip(x, -1, 1) + 1) / 2 * 255).astype(uint8); OUT/unit.u8: diffusers'
(clip(x, 0, 1) * 255).astype(uint8). All arithmetic in float32.
"""
import pathlib
import sys

import numpy as np

out = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(7)
k = np.arange(256, dtype=np.float64)
edges = np.concatenate([k / 255 * 2 - 1, k / 255, (k + 0.5) / 255 * 2 - 1]).astype(np.float32)
near = np.concatenate([edges, np.nextafter(edges, np.float32(-2)), np.nextafter(edges, np.float32(2))])
x = np.concatenate([
    rng.uniform(-1.5, 1.5, 1_000_000).astype(np.float32),
    near,
    np.array([np.inf, -np.inf, 0.0, -0.0], dtype=np.float32),
]).astype(np.float32)
signed = ((np.clip(x, np.float32(-1), np.float32(1)) + np.float32(1)) / np.float32(2) * np.float32(255)).astype(np.uint8)
unit = (np.clip(x, np.float32(0), np.float32(1)) * np.float32(255)).astype(np.uint8)
# diffusers' order (x / 2 + 0.5, then clip to [0, 1]) must give the same bytes
# as Wan's (clip to [-1, 1], then (x + 1) / 2): quantize.hpp relies on it.
finite = np.isfinite(x)
diffusers = (np.clip(x / np.float32(2) + np.float32(0.5), np.float32(0), np.float32(1)) * np.float32(255)).astype(np.uint8)
if not np.array_equal(diffusers[finite], signed[finite]):
    sys.exit("diffusers' and Wan's quantisation orders disagree")
x.tofile(out / "x.f32")
signed.tofile(out / "signed.u8")
unit.tofile(out / "unit.u8")
