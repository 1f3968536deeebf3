"""Reference resizes by Pillow for tests/media/resize_test.cpp.

Writes into OUT: in_<case>.png (the inputs, seeded numpy data), then for each
case, filter and size out_<case>_<filter>_<w>x<h>.png, and manifest.txt with
one line "<case> <filter> <w> <h>" per output.
"""
import pathlib
import sys

import numpy as np
from PIL import Image

out = pathlib.Path(sys.argv[1])
rng = np.random.default_rng(1234)

yy, xx = np.mgrid[0:150, 0:200]
smooth = np.stack([128 + 100 * np.sin(xx / 9.0), 128 + 100 * np.cos(yy / 7.0),
                   (xx + yy) % 256], axis=-1).clip(0, 255).astype(np.uint8)
cases = {
    "noise_rgb": Image.fromarray(rng.integers(0, 256, (192, 256, 3), dtype=np.uint8), "RGB"),
    "smooth_rgb": Image.fromarray(smooth, "RGB"),
    "noise_l": Image.fromarray(rng.integers(0, 256, (61, 97), dtype=np.uint8), "L"),
    "noise_rgba": Image.fromarray(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8), "RGBA"),
}
filters = {
    "nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR, "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
}
lines = []
for name, im in cases.items():
    im.save(out / f"in_{name}.png")
    w, h = im.size
    sizes = [(w * 2 // 5, h * 2 // 5), (w * 3 // 2 + 1, h * 3 // 2), (w // 3, h * 2), (7, 5), (1, 1)]
    for fname, f in filters.items():
        for tw, th in sizes:
            im.resize((tw, th), f).save(out / f"out_{name}_{fname}_{tw}x{th}.png")
            lines.append(f"{name} {fname} {tw} {th}")
(out / "manifest.txt").write_text("\n".join(lines) + "\n")
