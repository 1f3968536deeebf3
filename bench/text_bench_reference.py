#!/usr/bin/env python3
"""Reference half of bench/text_bench: writes the benchmark checkpoint and
times Hugging Face transformers on it.

  text_bench_reference.py --out DIR [--threads 2] [--decode-tokens 32] [--dtypes float32,bfloat16]

Writes DIR/config.json + DIR/model.safetensors (a ~100M-parameter Qwen3 with
random weights, seeded; a JSON line {"params", "config"}) unless --no-write,
then prints one JSON line of timings per dtype unless --skip-timing:
  {"dtype", "prefill_tok_s", "decode1_tok_s", "decode16_tok_s"}
Definitions (the C++ side uses the same): prefill = one forward over a
512-token prompt; decode = (N - 1) tokens / (time of generate(N) - time of
generate(1)) for a 32-token prompt, greedy, at batch 1 and 16 (aggregate).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
import transformers

CONFIG = dict(
    vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
    num_attention_heads=12, num_key_value_heads=4, head_dim=64, max_position_embeddings=4096,
    rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False,
    bos_token_id=1, eos_token_id=2,
)


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--skip-timing", action="store_true", help="only write the checkpoint")
    ap.add_argument("--no-write", action="store_true", help="time the checkpoint already in --out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(**CONFIG)
    if not a.no_write:
        model = transformers.Qwen3ForCausalLM(cfg).eval()
        # Random weights of a realistic scale (init std 0.02) stored as float32.
        model.save_pretrained(a.out, safe_serialization=True)
        params = sum(p.numel() for p in model.parameters())
        print(json.dumps({"params": params, "config": CONFIG}), flush=True)
    if a.skip_timing:
        return
    g = torch.Generator().manual_seed(1)
    prompt512 = torch.randint(3, cfg.vocab_size, (1, 512), generator=g)
    prompt32 = torch.randint(3, cfg.vocab_size, (16, 32), generator=g)
    n = a.decode_tokens
    for dt in a.dtypes.split(","):
        m = transformers.Qwen3ForCausalLM.from_pretrained(a.out, dtype=getattr(torch, dt),
                                                          attn_implementation="sdpa").eval()

        def gen(batch, tokens):
            m.generate(prompt32[:batch], attention_mask=torch.ones_like(prompt32[:batch]), max_new_tokens=tokens,
                       min_new_tokens=tokens, do_sample=False, pad_token_id=0)

        with torch.inference_mode():
            m(prompt512)  # warm-up
            t_prefill = best_of(2, lambda: m(prompt512))
            res = {"dtype": dt, "prefill_tok_s": 512 / t_prefill}
            for batch in (1, 16):
                gen(batch, 2)
                t1 = best_of(2, lambda: gen(batch, 1))
                tn = best_of(2, lambda: gen(batch, n))
                res[f"decode{batch}_tok_s"] = batch * (n - 1) / (tn - t1)
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    sys.exit(main())
