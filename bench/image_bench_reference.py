#!/usr/bin/env python3
"""Reference half of bench/image_bench: writes the benchmark pipeline folder
and times diffusers' QwenImagePipeline on it.

  image_bench_reference.py write --out DIR [--blocks 8] [--vae-base 96]
  image_bench_reference.py pipeline --dir DIR --dtype float32 --threads 2 --size 512 --steps 8 [--save F]
  image_bench_reference.py tiled --dir DIR --dtype float32 --threads 2 --latent 256 [--save F]

write: a Qwen-Image pipeline folder in the published diffusers layout with
random (seeded) weights -- transformer: --blocks blocks of 12 heads x 128
(dim 1536), joint_attention_dim 1536, published rope axes (16, 56, 56);
text encoder: Qwen2.5-VL with 2 decoder layers of hidden 1536 (12 / 2 KV
heads of 128, intermediate 8960, the Qwen2.5-1.5B shape) and a tiny vision
tower (text-to-image never runs it); tokenizer: the small byte-level BPE of
the test fixtures (vocab 512, so the embedding table stays small); VAE:
AutoencoderKLQwenImage with base_dim --vae-base (published: 96), z_dim 16,
dim_mult [1, 2, 4, 4], 2 res blocks, published latents mean/std. Prints one
JSON line {"params": {...}}.

pipeline / tiled: each runs in its own process (so its peak resident memory
is its own) and prints one JSON line of figures; the definitions are the
C++ side's (see bench/image_bench.cpp):
  pipeline: total = seconds of one pipe(...) call (no warm-up; weights already
    loaded), steps = fastest time between consecutive step callbacks (steps 2..N),
    first = start -> first callback (prompt encoding + latents + step 1),
    decode = last callback -> return (VAE decode + postprocess),
    cpu = process CPU seconds (all threads) of the call,
    loaded_mb = VmRSS right after loading, peak_mb = VmHWM of the process
    (load included).
  tiled: VAE-only process, enable_tiling() (256 px tiles every 192 px),
    decode of fixed latents [1, 16, 1, L, L]; decode seconds and VmHWM.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from reference_util import ROOT, fixture_script, proc_status_mb, quiet

quiet()

import numpy as np  # noqa: E402 (after quiet(): diffusers reads the variables at import)
import torch  # noqa: E402

PROMPT = "A red fox in the snow, watercolor, soft morning light"
SEED = 42
TEXT_HIDDEN = 1536




def vm_hwm_mb() -> float:
    return proc_status_mb("VmHWM:")


@torch.no_grad()
def write(out: Path, blocks: int, vae_base: int) -> None:
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    fx = fixture_script("make_image_pipeline_fixtures")
    out.mkdir(parents=True, exist_ok=True)
    ids = fx.build_tokenizer(out / "tokenizer")
    te_cfg = fx.text_encoder_config(ids)
    te_cfg.update(hidden_size=TEXT_HIDDEN, intermediate_size=8960, num_hidden_layers=2, num_attention_heads=12,
                  num_key_value_heads=2, max_window_layers=2,
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
    te_cfg["vision_config"]["out_hidden_size"] = TEXT_HIDDEN
    gen = torch.Generator().manual_seed(fx.seed_of("image_bench"))
    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=blocks, attention_head_dim=128,
        num_attention_heads=12, joint_attention_dim=TEXT_HIDDEN, axes_dims_rope=(16, 56, 56))
    vae = AutoencoderKLQwenImage(base_dim=vae_base, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                 attn_scales=[], temperal_downsample=[False, True, True])
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(**te_cfg))
    params = {}
    for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", text_encoder)):
        fx.randomize(m, gen)
        m.eval()
        m.save_pretrained(out / name, safe_serialization=True)
        params[name] = sum(p.numel() for p in m.parameters())
    FlowMatchEulerDiscreteScheduler.from_config(fx.SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    model_index = {
        "_class_name": "QwenImagePipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "Qwen2_5_VLForConditionalGeneration"],
        "tokenizer": ["transformers", "Qwen2Tokenizer"],
        "transformer": ["diffusers", "QwenImageTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKLQwenImage"],
    }
    (out / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n")
    (out / "prompt.txt").write_text(PROMPT)
    print(json.dumps({"params": params}), flush=True)


def pipeline(a) -> dict:
    from diffusers import QwenImagePipeline

    dtype = getattr(torch, a.dtype)
    t_load = time.perf_counter()
    pipe = QwenImagePipeline.from_pretrained(a.dir, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    t_load = time.perf_counter() - t_load
    loaded_mb = proc_status_mb("VmRSS:")
    stamps = []

    def on_step(_pipe, _i, _t, _kw):
        stamps.append(time.perf_counter())
        return {}

    t0, c0 = time.perf_counter(), time.process_time()
    out = pipe(PROMPT, width=a.size, height=a.size, num_inference_steps=a.steps,
               generator=torch.Generator().manual_seed(SEED), output_type="np", callback_on_step_end=on_step)
    t1, c1 = time.perf_counter(), time.process_time()
    if a.save:
        np.asarray(out.images, dtype=np.float32).tofile(a.save)
    steps = [b - c for b, c in zip(stamps[1:], stamps[:-1])]
    return {"side": "diffusers", "dtype": a.dtype, "load_s": t_load, "total_s": t1 - t0,
            "first_s": stamps[0] - t0, "step_s": min(steps) if steps else stamps[0] - t0,
            "decode_s": t1 - stamps[-1], "cpu_s": c1 - c0, "loaded_mb": loaded_mb, "peak_mb": vm_hwm_mb()}


@torch.no_grad()
def tiled(a) -> dict:
    from diffusers import AutoencoderKLQwenImage

    dtype = getattr(torch, a.dtype)
    vae = AutoencoderKLQwenImage.from_pretrained(Path(a.dir) / "vae", dtype=dtype).eval()
    vae.enable_tiling()
    L = a.latent
    # Fixed latents both sides can build without sharing a file.
    z = (torch.arange(16 * L * L, dtype=torch.float32).reshape(1, 16, 1, L, L) * 0.37).sin().mul(2).to(dtype)
    t0, c0 = time.perf_counter(), time.process_time()
    x = vae.decode(z, return_dict=False)[0]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if a.save:
        x.float().contiguous().numpy().tofile(a.save)
    return {"side": "diffusers", "dtype": a.dtype, "tiled_s": dt, "cpu_s": cpu, "peak_mb": vm_hwm_mb(),
            "shape": list(x.shape)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "pipeline", "tiled"])
    ap.add_argument("--out")
    ap.add_argument("--dir")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--vae-base", type=int, default=96)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--latent", type=int, default=256)
    ap.add_argument("--save")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.mode == "write":
        write(Path(a.out), a.blocks, a.vae_base)
    elif a.mode == "pipeline":
        print(json.dumps(pipeline(a)), flush=True)
    else:
        print(json.dumps(tiled(a)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
