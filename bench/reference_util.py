"""What the Python reference halves of image_bench and video_bench share: a
quiet diffusers/transformers, the fixture scripts loaded as modules (their
tokenizers, configs and init), and /proc/self/status figures in MB."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quiet() -> None:
    """No download progress bars or warnings in the JSON the C++ side parses.
    Call before importing diffusers or transformers."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()


def fixture_script(name: str):
    """scripts/fixtures/<name>.py as a module."""
    path = ROOT / "scripts" / "fixtures" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def proc_status_mb(key: str) -> float:
    """A /proc/self/status field given in kB (e.g. "VmHWM:"), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024.0
    return 0.0
