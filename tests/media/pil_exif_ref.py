"""For each DIR/o<N>.jpg write DIR/o<N>.png: Pillow's ImageOps.exif_transpose of it (RGB)."""
import pathlib
import sys

from PIL import Image, ImageOps

folder = pathlib.Path(sys.argv[1])
for jpg in sorted(folder.glob("o*.jpg")):
    with Image.open(jpg) as im:
        ImageOps.exif_transpose(im).convert("RGB").save(jpg.with_suffix(".png"))
