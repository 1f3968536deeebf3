#!/usr/bin/env python3
"""Reference half of bench/video_bench: writes the benchmark pipeline folder
and times diffusers' WanPipeline on it.

  video_bench_reference.py write --out DIR [--blocks 4] [--vae-base 40] [--vae-decoder-base 64]
  video_bench_reference.py pipeline --dir DIR --threads 2 --frames 33 --size 256 --steps 8 [--save F]
  video_bench_reference.py decode --dir DIR --threads 2 --frames 17 --size 256 [--save F]

write: a Wan2.2-TI2V-5B-shaped pipeline folder in the published diffusers
layout (WanPipeline, expand_timesteps true, no boundary_ratio, the published
TI2V-5B UniPC scheduler config) with random (seeded) float32 weights:
  transformer  WanTransformer3DModel, --blocks blocks of 12 heads x 128
               (dim 1536, ffn 8960: the Wan 1.3B block width), in/out 48
               channels, patch (1, 2, 2), freq_dim 256, cross_attn_norm,
               qk_norm rms_norm_across_heads, text_dim 512
  text encoder UMT5EncoderModel, d_model 512, 2 layers, 8 heads x 64,
               d_ff 1024, gated-gelu (the published one is d_model 4096,
               24 layers); the tokenizer of the test fixtures
               (tests/fixtures/video/umt5/tokenizer, vocab 1500)
  VAE          AutoencoderKLWan in the Wan 2.2 layout (z 48, is_residual,
               patch 2, 12 in/out channels, 16x spatial, 4x temporal,
               dim_mult [1, 2, 4, 4], 2 res blocks, as published) but with
               base_dim --vae-base / decoder_base_dim --vae-decoder-base
               (published: 160 / 256; at those widths one 256 x 256 latent
               frame takes ~70 s to decode on 2 cores, so the default is a
               quarter of the width, ~1/16 of the work)
Prints one JSON line {"params": {...}}.

pipeline / decode: each runs in its own process (so its peak resident memory
is its own) and prints one JSON line of figures; the definitions are the C++
side's (see bench/video_bench.cpp):
  pipeline: total = seconds of one pipe(...) call (weights already loaded,
    no warm-up), step = fastest time between consecutive step callbacks
    (steps 2..N; one step = two transformer forwards with CFG), first = start
    -> first callback (prompt encoding + latents + step 1), decode = last
    callback -> return (VAE decode + postprocess), cpu = process CPU seconds
    of the call, loaded_mb = VmRSS after loading, peak_mb = VmHWM (load
    included).
  decode: a VAE-only process (diffusers' AutoencoderKLWan.from_pretrained
    loads the encoder too) decoding fixed latents [1, 48, (F-1)/4+1, S/16,
    S/16]; seconds, VmRSS before the decode, VmHWM.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from reference_util import ROOT, fixture_script, proc_status_mb, quiet

quiet()

import numpy as np  # noqa: E402 (after quiet(): diffusers reads the variables at import)
import torch  # noqa: E402

PROMPT = "A red fox runs through a snowy forest at dawn, soft golden light, cinematic."
NEGATIVE = "blurry, static, overexposed, low quality"
SEED = 42
GUIDANCE = 5.0
TEXT_DIM = 512
Z_DIM = 48




def fixed_latents(frames: int, size: int) -> torch.Tensor:
    """Latents both sides build without sharing a file (the C++ side mirrors this)."""
    t, s = (frames - 1) // 4 + 1, size // 16
    n = Z_DIM * t * s * s
    return (torch.arange(n, dtype=torch.float32).reshape(1, Z_DIM, t, s, s) * 0.37).sin().mul(2)


@torch.no_grad()
def write(out: Path, blocks: int, vae_base: int, vae_decoder_base: int) -> None:
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    fx = fixture_script("make_video_pipeline_fixtures")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=Z_DIM,
        out_channels=Z_DIM, text_dim=TEXT_DIM, freq_dim=256, ffn_dim=8960, num_layers=blocks,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
        rope_max_seq_len=1024, pos_embed_seq_len=None).eval()
    fx.randomize_transformer(transformer, gen)
    mean, std = fx.stats("video_bench", Z_DIM)
    vae = AutoencoderKLWan(
        base_dim=vae_base, decoder_base_dim=vae_decoder_base, z_dim=Z_DIM, dim_mult=[1, 2, 4, 4],
        num_res_blocks=2, attn_scales=[], temperal_downsample=[False, True, True], is_residual=True,
        in_channels=12, out_channels=12, patch_size=2, scale_factor_temporal=4, scale_factor_spatial=16,
        latents_mean=mean, latents_std=std).eval()
    fx.randomize_vae(vae, gen)
    tok_dir = fx.UMT5 / "tokenizer"
    vocab = json.loads((fx.UMT5 / "text_encoder" / "config.json").read_text())["vocab_size"]
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=vocab, d_model=TEXT_DIM, d_kv=64, d_ff=1024, num_layers=2, num_heads=8,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        dropout_rate=0.0, layer_norm_epsilon=1e-6, tie_word_embeddings=True, pad_token_id=0,
        eos_token_id=1, decoder_start_token_id=0)).eval()
    params = {}
    for name, m in (("transformer", transformer), ("vae", vae), ("text_encoder", text_encoder)):
        m.save_pretrained(out / name, safe_serialization=True)
        params[name] = sum(p.numel() for p in m.parameters())
    params["vae_decoder"] = sum(p.numel() for p in vae.decoder.parameters()) + \
        sum(p.numel() for p in vae.post_quant_conv.parameters())
    shutil.copytree(tok_dir, out / "tokenizer", dirs_exist_ok=True)
    UniPCMultistepScheduler.from_config(fx.make_scheduler_fixtures.PUBLISHED["wan2.2-ti2v-5b"]).save_pretrained(
        out / "scheduler")
    model_index = {
        "_class_name": "WanPipeline", "_diffusers_version": "0.42.1", "boundary_ratio": None,
        "expand_timesteps": True,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "transformer_2": [None, None],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    (out / "model_index.json").write_text(json.dumps(model_index, indent=2) + "\n")
    (out / "prompt.txt").write_text(PROMPT)
    (out / "negative.txt").write_text(NEGATIVE)
    print(json.dumps({"params": params}), flush=True)


def pipeline(a) -> dict:
    from diffusers import WanPipeline

    t_load = time.perf_counter()
    pipe = WanPipeline.from_pretrained(a.dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    t_load = time.perf_counter() - t_load
    loaded_mb = proc_status_mb("VmRSS:")
    stamps = []

    def on_step(_pipe, _i, _t, _kw):
        stamps.append(time.perf_counter())
        return {}

    t0, c0 = time.perf_counter(), time.process_time()
    out = pipe(PROMPT, negative_prompt=NEGATIVE, height=a.size, width=a.size, num_frames=a.frames,
               num_inference_steps=a.steps, guidance_scale=GUIDANCE, max_sequence_length=512,
               generator=torch.Generator("cpu").manual_seed(SEED), output_type="np", callback_on_step_end=on_step)
    t1, c1 = time.perf_counter(), time.process_time()
    if a.save:
        np.ascontiguousarray(out.frames[0], dtype=np.float32).tofile(a.save)
    steps = [b - c for b, c in zip(stamps[1:], stamps[:-1])]
    return {"side": "diffusers", "load_s": t_load, "total_s": t1 - t0, "first_s": stamps[0] - t0,
            "step_s": min(steps) if steps else stamps[0] - t0, "decode_s": t1 - stamps[-1], "cpu_s": c1 - c0,
            "loaded_mb": loaded_mb, "peak_mb": proc_status_mb("VmHWM:")}


@torch.no_grad()
def decode(a) -> dict:
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(Path(a.dir) / "vae", dtype=torch.float32).eval()
    z = fixed_latents(a.frames, a.size)
    before_mb = proc_status_mb("VmRSS:")
    t0, c0 = time.perf_counter(), time.process_time()
    x = vae.decode(z, return_dict=False)[0]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if a.save:
        x.float().contiguous().numpy().tofile(a.save)
    return {"side": "diffusers", "frames": int(x.shape[2]), "decode_s": dt, "cpu_s": cpu, "before_mb": before_mb,
            "peak_mb": proc_status_mb("VmHWM:")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["write", "pipeline", "decode"])
    ap.add_argument("--out")
    ap.add_argument("--dir")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--vae-base", type=int, default=40)
    ap.add_argument("--vae-decoder-base", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--save")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.mode == "write":
        write(Path(a.out), a.blocks, a.vae_base, a.vae_decoder_base)
    elif a.mode == "pipeline":
        print(json.dumps(pipeline(a)), flush=True)
    else:
        print(json.dumps(decode(a)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
