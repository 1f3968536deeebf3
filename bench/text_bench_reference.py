#!/usr/bin/env python3
"""Reference half of bench/text_bench: writes the benchmark checkpoint and
times Hugging Face transformers on it.

  text_bench_reference.py --out DIR [--model qwen3|qwen3_5] [--threads 2] [--decode-tokens 32]
                          [--dtypes float32,bfloat16] [--contexts 64,4096] [--skip-timing] [--no-write]

Writes DIR/config.json + DIR/model.safetensors (random weights, seeded; a
JSON line {"params", "config"}) unless --no-write:
  qwen3    a ~100M-parameter Qwen3 (Qwen3ForCausalLM)
  qwen3_5  a Qwen3.5-0.8B-shaped hybrid (Qwen3_5ForCausalLM): the published
           per-layer shape (hidden 1024, 8/2 heads x 256, Gated DeltaNet with
           16/16 heads x 128, conv 4, MLP 3584, every 4th layer full attention,
           tied) with 8 layers instead of 24 and vocab 32000 instead of 248320,
           so that both sides fit the run's time budget on two cores
then prints one JSON line of timings per dtype unless --skip-timing:
  {"dtype", "prefill_tok_s", "decode1_tok_s", "decode16_tok_s", "ctx_decode": {"64": tok/s, ...}}
Definitions (the C++ side uses the same): prefill = one forward over a
512-token prompt; decode = (N - 1) tokens / (time of generate(N) - time of
generate(1)) for a 32-token prompt, greedy, at batch 1 and 16 (aggregate).
Decode at a context C (--contexts): batch 1, a C-token prompt, (N - 1) tokens
over the time from the first sampled token to the last (timestamps taken by a
logits processor, so the prompt is computed once).
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

# max_position_embeddings only bounds the prompt + output length (plain RoPE,
# no scaling), so 8192 leaves room for the 4,096-token context rows.
QWEN3 = dict(
    vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
    num_attention_heads=12, num_key_value_heads=4, head_dim=64, max_position_embeddings=8192,
    rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True, attention_bias=False,
    bos_token_id=1, eos_token_id=2,
)

# Qwen3.5-0.8B's text config, shrunk in depth (24 -> 8 layers, keeping the
# 3:1 linear/full pattern) and vocabulary (248320 -> 32000).
QWEN3_5 = dict(
    vocab_size=32000, hidden_size=1024, intermediate_size=3584, num_hidden_layers=8,
    num_attention_heads=8, num_key_value_heads=2, head_dim=256, max_position_embeddings=32768,
    rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False,
    rope_parameters={"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25},
    linear_conv_kernel_dim=4, linear_key_head_dim=128, linear_value_head_dim=128,
    linear_num_key_heads=16, linear_num_value_heads=16,
    bos_token_id=1, eos_token_id=2,
)


def model_classes(name):
    if name == "qwen3":
        return transformers.Qwen3Config, transformers.Qwen3ForCausalLM, QWEN3
    return transformers.Qwen3_5TextConfig, transformers.Qwen3_5ForCausalLM, QWEN3_5


def best_of(n, fn):
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


class Stamps(transformers.LogitsProcessor):
    """Records the time each step's logits arrive (one call per generated token)."""

    def __init__(self):
        self.t = []

    def __call__(self, input_ids, scores):
        self.t.append(time.perf_counter())
        return scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", choices=("qwen3", "qwen3_5"), default="qwen3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--contexts", default="", help="comma-separated prompt lengths for batch-1 decode")
    ap.add_argument("--skip-timing", action="store_true", help="only write the checkpoint")
    ap.add_argument("--no-write", action="store_true", help="time the checkpoint already in --out")
    ap.add_argument("--skip-throughput", action="store_true", help="only the --contexts rows")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    config_cls, model_cls, fields = model_classes(a.model)
    cfg = config_cls(**fields)
    if not a.no_write:
        model = model_cls(cfg).eval()
        # Random weights of a realistic scale (init std 0.02) stored as float32.
        model.save_pretrained(a.out, safe_serialization=True)
        params = sum(p.numel() for p in model.parameters())
        print(json.dumps({"params": params, "config": fields}), flush=True)
        del model
    if a.skip_timing:
        return
    g = torch.Generator().manual_seed(1)
    prompt512 = torch.randint(3, cfg.vocab_size, (1, 512), generator=g)
    prompt32 = torch.randint(3, cfg.vocab_size, (16, 32), generator=g)
    contexts = [int(c) for c in a.contexts.split(",") if c]
    n = a.decode_tokens
    for dt in a.dtypes.split(","):
        m = model_cls.from_pretrained(a.out, dtype=getattr(torch, dt), attn_implementation="sdpa").eval()

        def gen(prompt, tokens, **kw):
            m.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=tokens,
                       min_new_tokens=tokens, do_sample=False, pad_token_id=0, **kw)

        res = {"dtype": dt}
        with torch.inference_mode():
            if not a.skip_throughput:
                m(prompt512)  # warm-up
                t_prefill = best_of(2, lambda: m(prompt512))
                res["prefill_tok_s"] = 512 / t_prefill
                for batch in (1, 16):
                    gen(prompt32[:batch], 2)
                    t1 = best_of(2, lambda: gen(prompt32[:batch], 1))
                    tn = best_of(2, lambda: gen(prompt32[:batch], n))
                    res[f"decode{batch}_tok_s"] = batch * (n - 1) / (tn - t1)
            ctx = {}
            if contexts:
                gen(prompt32[:1], 2)  # warm-up of the decode path
            for c in contexts:
                prompt = torch.randint(3, cfg.vocab_size, (1, c), generator=g)
                stamps = Stamps()
                gen(prompt, n, logits_processor=transformers.LogitsProcessorList([stamps]))
                ctx[str(c)] = (n - 1) / (stamps.t[-1] - stamps.t[0])
            if ctx:
                res["ctx_decode"] = ctx
        print(json.dumps(res), flush=True)
        del m


if __name__ == "__main__":
    sys.exit(main())
