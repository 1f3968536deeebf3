// CPU loops of every op. This file is compiled once per ISA level (see
// kernels/CMakeLists.txt: loops_<isa>.cpp wrappers define MMGEN_CPU_ISA and
// add -mavx2/-mavx512f...). Everything here has internal linkage and calls no
// out-of-line inline function from shared headers (no std:: containers, no
// scalar.hpp helpers, no Rows::offset): with per-TU ISA flags, a COMDAT copy
// built for AVX-512 could otherwise be picked by the linker for the baseline
// build and crash an older CPU.
#include "cpu/isa_prologue.hpp"

#include "cpu/loops.hpp"

namespace mmgen::kernels::cpu {
namespace {

#include "cpu/vec.hpp"

MMGEN_INLINE i64 row_off(const Rows& r, i64 i) {
  return (i / r.inner) * r.stride_outer + (i % r.inner) * r.stride_inner;
}


// Per-thread float scratch that only grows (paged attention score rows).
struct Scratch {
  float* data = nullptr;
  i64 size = 0;
  ~Scratch() { std::free(data); }
  float* get(i64 n) {
    if (n > size) {
      std::free(data);
      size = (n + 1023) & ~i64(1023);
      data = static_cast<float*>(std::aligned_alloc(64, size_t(size) * sizeof(float)));
      if (!data) std::abort();
    }
    return data;
  }
};
thread_local Scratch tl_scratch;

// ---- rms_norm / fused_add_rms_norm ------------------------------------------------
template <class T, class Wt, class O>
void rms_norm_t(const RmsNormArgs& a, i64 r0, i64 r1) {
  const i64 n = a.cols;
  const Wt* w = static_cast<const Wt*>(a.weight);
  for (i64 r = r0; r < r1; ++r) {
    const T* x = static_cast<const T*>(a.x) + row_off(a.x_rows, r);
    O* out = static_cast<O*>(a.out) + r * n;
    const T* h = x;
    fv acc = {};
    if (a.residual) {
      // h = round(x + residual) is both the new residual and the norm's input.
      T* res = static_cast<T*>(a.residual) + row_off(a.res_rows, r);
      for_chunks(n, [&](i64 j, int c) {
        const fv s = round_to<T>(load_n(x + j, c) + load_n(res + j, c));
        store_n(res + j, s, c);
        acc += s * s;
      });
      h = res;
    } else {
      for_chunks(n, [&](i64 j, int c) {
        const fv v = load_n(x + j, c);
        acc += v * v;
      });
    }
    const float rinv = 1.0f / __builtin_sqrtf(hsum(acc) / float(n) + a.eps);
    for_chunks(n, [&](i64 j, int c) {
      const fv normed = round_to<T>(load_n(h + j, c) * rinv);  // .to(input_dtype)
      store_n(out + j, normed * load_n(w + j, c), c);           // weight * normed
    });
  }
}

void rms_norm(const RmsNormArgs& a, i64 r0, i64 r1) {
  with_type(a.x_dtype, [&](auto xp) {
    using T = elem_t<decltype(xp)>;
    if (a.w_dtype == a.x_dtype) {
      rms_norm_t<T, T, T>(a, r0, r1);
    } else {
      rms_norm_t<T, float, float>(a, r0, r1);
    }
  });
}

// ---- rope ----------------------------------------------------------------------
constexpr int kMaxRot = 1024;

// Interleaved rotation of n heads p, p + stride, ... whose first NV * W features
// rotate: the NV cd/sd vectors are loaded once for the run and stay in
// registers (x * cd + swap(x) * sd: one in-lane permute and one FMA a vector).
template <int NV, class T>
MMGEN_INLINE void rope_pairs_run(T* p, i64 stride, i64 n, const float* cd, const float* sd) {
  fv c[NV], s[NV];
  MMGEN_UNROLL_ALL
  for (int v = 0; v < NV; ++v) {
    c[v] = load(cd + v * W);
    s[v] = load(sd + v * W);
  }
  for (i64 h = 0; h < n; ++h, p += stride) {
    MMGEN_UNROLL_ALL
    for (int v = 0; v < NV; v += 2) {
      const fv x0 = load(p + v * W), x1 = load(p + (v + 1) * W);
      store2(p + v * W, x0 * c[v] + swap_pairs(x0) * s[v], x1 * c[v + 1] + swap_pairs(x1) * s[v + 1]);
    }
  }
}

template <class T, class C>
void rope_t(const RopeArgs& a, i64 t0, i64 t1) {
  const i64 half = a.rot_dim / 2;
  alignas(64) float cf[kMaxRot + W];
  alignas(64) float sf[kMaxRot + W];
  alignas(64) float cd[kMaxRot + W];
  alignas(64) float sd[kMaxRot + W];
  // Token t's table row as float32 in cf/sf (zeros past half: the interleaved
  // expansion reads up to W/2 further).
  auto load_row = [&](i64 t) {
    const i64 row = t % a.table_rows;
    const C* cr = static_cast<const C*>(a.cos) + row * a.cos_stride;
    const C* sr = static_cast<const C*>(a.sin) + row * a.sin_stride;
    for_chunks(half, [&](i64 j, int c) {
      store(cf + j, load_n(cr + j, c));
      store(sf + j, load_n(sr + j, c));
    });
    const i64 filled = (half + W - 1) / W * W;
    store(cf + filled, splat(0.0f));
    store(sf + filled, splat(0.0f));
  };
  if (a.style == int(RopeStyleCode::neox)) {
    for (i64 t = t0; t < t1; ++t) {
      load_row(t);
      // rotate_half: (x1, x2) -> (x1 c - x2 s, x2 c + x1 s) over the two halves.
      auto rotate = [&](T* p) {
        for_chunks(half, [&](i64 j, int c) {
          const fv x1 = load_n(p + j, c), x2 = load_n(p + half + j, c);
          const fv cc = load(cf + j), ss = load(sf + j);
          store_n(p + j, x1 * cc - x2 * ss, c);
          store_n(p + half + j, x2 * cc + x1 * ss, c);
        });
      };
      for (i64 h = 0; h < a.q_heads; ++h) rotate(static_cast<T*>(a.q) + t * a.q_stride_tok + h * a.q_stride_head);
      for (i64 h = 0; h < a.k_heads; ++h) rotate(static_cast<T*>(a.k) + t * a.k_stride_tok + h * a.k_stride_head);
    }
    return;
  }
  // Interleaved: complex pairs (x[2i], x[2i+1]) * (c_i + i s_i), i.e.
  // out[j] = x[j] cd[j] + x[j^1] sd[j] with cd = (c0, c0, c1, c1, ...) and
  // sd = (-s0, s0, -s1, s1, ...), built a vector (W/2 table entries) at a
  // time; lanes past rot_dim get zeros.
  const i64 nvec = (a.rot_dim + W - 1) / W;
  auto expand_row = [&](i64 t) {
    load_row(t);
    for (i64 v = 0; v < nvec; ++v) {
      const i64 left = a.rot_dim - v * W;
      const fv keep = lanes_below(int(left < W ? left : W));
      store(cd + v * W, dup_pairs(load(cf + v * (W / 2))) * keep);
      store(sd + v * W, negate_even(dup_pairs(load(sf + v * (W / 2)))) * keep);
    }
  };
  // q's heads over the token range, then k's: one memory stream at a time
  // (re-expanding a row costs ~nvec shuffles, nothing next to the heads).
  auto each_tensor = [&](auto&& f) {
    f(static_cast<T*>(a.q), a.q_stride_tok, a.q_stride_head, a.q_heads);
    f(static_cast<T*>(a.k), a.k_stride_tok, a.k_stride_head, a.k_heads);
  };
  if (a.rot_dim == 8 * W || a.rot_dim == 4 * W) {  // cd/sd in registers over each token's heads
    each_tensor([&](T* base, i64 stride_tok, i64 stride_head, i64 heads) {
      for (i64 t = t0; t < t1; ++t) {
        expand_row(t);
        if (a.rot_dim == 8 * W) {
          rope_pairs_run<8>(base + t * stride_tok, stride_head, heads, cd, sd);
        } else {
          rope_pairs_run<4>(base + t * stride_tok, stride_head, heads, cd, sd);
        }
      }
    });
    return;
  }
  each_tensor([&](T* base, i64 stride_tok, i64 stride_head, i64 heads) {
    for (i64 t = t0; t < t1; ++t) {
      expand_row(t);
      for (i64 h = 0; h < heads; ++h) {
        T* p = base + t * stride_tok + h * stride_head;
        for_chunks(a.rot_dim, [&](i64 j, int c) {  // c is even: pairs never straddle chunks
          const fv x = load_n(p + j, c);
          store_n(p + j, x * load(cd + j) + swap_pairs(x) * load(sd + j), c);
        });
      }
    }
  });
}

void rope(const RopeArgs& a, i64 t0, i64 t1) {
  with_type(a.dtype, [&](auto qp) {
    using T = elem_t<decltype(qp)>;
    if (a.table_dtype == a.dtype) {
      rope_t<T, T>(a, t0, t1);
    } else {
      rope_t<T, float>(a, t0, t1);
    }
  });
}

// ---- activations ------------------------------------------------------------------
template <class T> void silu_and_mul_t(const ActArgs& a, i64 r0, i64 r1) {
  const i64 n = a.cols;
  for (i64 r = r0; r < r1; ++r) {
    const T* g = static_cast<const T*>(a.x) + row_off(a.x_rows, r);
    const T* u = g + n;
    T* o = static_cast<T*>(a.out) + r * n;
    for_chunks(n, [&](i64 j, int c) {
      const fv gv = load_n(g + j, c);
      store_n(o + j, gv * vrcp(1.0f + vexp(-gv)) * load_n(u + j, c), c);
    });
  }
}
void silu_and_mul(const ActArgs& a, i64 r0, i64 r1) {
  with_type(a.dtype, [&](auto p) { silu_and_mul_t<elem_t<decltype(p)>>(a, r0, r1); });
}

// gelu(x, tanh) = 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
template <class T> void gelu_tanh_t(const ActArgs& a, i64 r0, i64 r1) {
  const i64 n = a.cols;
  for (i64 r = r0; r < r1; ++r) {
    const T* x = static_cast<const T*>(a.x) + row_off(a.x_rows, r);
    T* o = static_cast<T*>(a.out) + r * n;
    for_chunks(n, [&](i64 j, int c) {
      const fv v = load_n(x + j, c);
      const fv u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
      store_n(o + j, v * vrcp(1.0f + vexp(-2.0f * u)), c);
    });
  }
}
void gelu_tanh(const ActArgs& a, i64 r0, i64 r1) {
  with_type(a.dtype, [&](auto p) { gelu_tanh_t<elem_t<decltype(p)>>(a, r0, r1); });
}

// ---- adaln_modulate ---------------------------------------------------------------
template <class T, class M> void adaln_modulate_t(const ModulateArgs& a, i64 r0, i64 r1) {
  const i64 n = a.cols;
  for (i64 r = r0; r < r1; ++r) {
    const T* x = static_cast<const T*>(a.x) + row_off(a.x_rows, r);
    const M* sh = static_cast<const M*>(a.shift) + row_off(a.shift_rows, r);
    const M* sc = static_cast<const M*>(a.scale) + row_off(a.scale_rows, r);
    T* o = static_cast<T*>(a.out) + r * n;
    fv acc = {};
    for_chunks(n, [&](i64 j, int c) { acc += load_n(x + j, c); });
    const float mean = hsum(acc) / float(n);
    // Two-pass variance (centred), as accurate as ATen's Welford for these sizes.
    fv acc2 = {};
    for_chunks(n, [&](i64 j, int c) {
      const fv d = (load_n(x + j, c) - mean) * lanes_below(c);
      acc2 += d * d;
    });
    const float rstd = 1.0f / __builtin_sqrtf(hsum(acc2) / float(n) + a.eps);
    for_chunks(n, [&](i64 j, int c) {
      const fv y = (load_n(x + j, c) - mean) * rstd;
      store_n(o + j, y * (1.0f + load_n(sc + j, c)) + load_n(sh + j, c), c);
    });
  }
}
void adaln_modulate(const ModulateArgs& a, i64 r0, i64 r1) {
  with_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    if (a.mod_dtype == a.dtype) {
      adaln_modulate_t<T, T>(a, r0, r1);
    } else {
      adaln_modulate_t<T, float>(a, r0, r1);
    }
  });
}

// ---- gated_residual ---------------------------------------------------------------
template <class T, class G> void gated_residual_t(const GatedResidualArgs& a, i64 r0, i64 r1) {
  const i64 n = a.cols;
  for (i64 r = r0; r < r1; ++r) {
    const T* x = static_cast<const T*>(a.x) + row_off(a.x_rows, r);
    const T* y = static_cast<const T*>(a.y) + row_off(a.y_rows, r);
    const G* g = static_cast<const G*>(a.gate) + row_off(a.gate_rows, r);
    T* o = static_cast<T*>(a.out) + r * n;
    for_chunks(n, [&](i64 j, int c) {
      store_n(o + j, load_n(x + j, c) + load_n(g + j, c) * load_n(y + j, c), c);
    });
  }
}
void gated_residual(const GatedResidualArgs& a, i64 r0, i64 r1) {
  with_type(a.dtype, [&](auto p) {
    using T = elem_t<decltype(p)>;
    if (a.gate_dtype == a.dtype) {
      gated_residual_t<T, T>(a, r0, r1);
    } else {
      gated_residual_t<T, float>(a, r0, r1);
    }
  });
}

// ---- paged_attention_decode -------------------------------------------------------
// One work item = one sequence x a run of kv heads. A token's cache slot holds
// all kv heads contiguously, so walking tokens over a run of heads streams
// through each block. Tokens go in tiles of kTile, query heads in groups of
// up to 4 that share a kv head, with the tile x group accumulators in
// registers: each key/value chunk is loaded (and converted to float32) once
// per group, each q/accumulator chunk once per tile. Three passes: scores =
// q.k * scale, softmax (float32), out = sum p v.
constexpr int kTile = 4;

// scores[h][t0 + u] = q[h] . k_u for heads h in [h0, h0 + GG), u < nt.
template <int GG, class T>
MMGEN_INLINE void score_tile(const float* qf, i64 h0, i64 Dp, i64 D, const T* const* rows, int nt, float* scores,
                             i64 Lp, i64 t0) {
  fv acc[kTile][GG];
  MMGEN_UNROLL_ALL
  for (int u = 0; u < kTile; ++u)
    MMGEN_UNROLL_ALL
    for (int g = 0; g < GG; ++g) acc[u][g] = fv{};
  // One loop body for full chunks and the tail (no lambda: the accumulators
  // must stay in registers).
  for (i64 j = 0; j < D; j += W) {
    const int c = D - j < W ? int(D - j) : W;
    fv qv[GG];
    MMGEN_UNROLL_ALL
    for (int g = 0; g < GG; ++g) qv[g] = load(qf + (h0 + g) * Dp + j);  // q rows are padded to Dp
    MMGEN_UNROLL_ALL
    for (int u = 0; u < kTile; ++u) {
      const fv kv = c == W ? load(rows[u] + j) : load_n(rows[u] + j, c);
      MMGEN_UNROLL_ALL
      for (int g = 0; g < GG; ++g) acc[u][g] += kv * qv[g];
    }
  }
  MMGEN_UNROLL_ALL
  for (int u = 0; u < nt; ++u)
    MMGEN_UNROLL_ALL
    for (int g = 0; g < GG; ++g) scores[(h0 + g) * Lp + t0 + u] = hsum(acc[u][g]);
}

// acc[h] += sum_u p[h][t0 + u] * v_u for heads h in [h0, h0 + GG), u < nt.
template <int GG, class T>
MMGEN_INLINE void pv_tile(float* acc, i64 h0, i64 Dp, i64 D, const T* const* rows, int nt, const float* probs, i64 Lp,
                          i64 t0) {
  float p[kTile][GG];
  MMGEN_UNROLL_ALL
  for (int u = 0; u < kTile; ++u)
    MMGEN_UNROLL_ALL
    for (int g = 0; g < GG; ++g) p[u][g] = u < nt ? probs[(h0 + g) * Lp + t0 + u] : 0.0f;
  for (i64 j = 0; j < D; j += W) {
    const int c = D - j < W ? int(D - j) : W;
    fv av[GG];
    MMGEN_UNROLL_ALL
    for (int g = 0; g < GG; ++g) av[g] = load(acc + (h0 + g) * Dp + j);
    MMGEN_UNROLL_ALL
    for (int u = 0; u < kTile; ++u) {
      const fv vv = c == W ? load(rows[u] + j) : load_n(rows[u] + j, c);
      MMGEN_UNROLL_ALL
      for (int g = 0; g < GG; ++g) av[g] += p[u][g] * vv;
    }
    MMGEN_UNROLL_ALL
    for (int g = 0; g < GG; ++g) store(acc + (h0 + g) * Dp + j, av[g]);
  }
}

// Runs f.template operator()<GG>(first head) over the G heads of one kv head in
// groups of 4, 2 and 1.
template <class F> MMGEN_INLINE void for_head_groups(i64 first, i64 G, F&& f) {
  i64 g = 0;
  for (; g + 4 <= G; g += 4) f.template operator()<4>(first + g);
  if (g + 2 <= G) {
    f.template operator()<2>(first + g);
    g += 2;
  }
  if (g < G) f.template operator()<1>(first + g);
}

template <class T> void paged_attention_t(const PagedAttentionArgs& a, i64 i0, i64 i1) {
  const i64 D = a.head_dim;
  const i64 Dp = (D + W - 1) / W * W;  // padded row length in the scratch
  const i64 G = a.q_heads / a.kv_heads;
  const i64 bs = a.block_size;
  // With partitions (a long context at a small batch) an item is one token
  // range of a sequence with all its kv heads, so each thread streams whole
  // cache rows; its unnormalised result goes to tmp_out / max_logits /
  // exp_sums and the caller merges the ranges. Otherwise an item is a
  // sequence and a run of its kv heads, and writes the output itself.
  const i64 P = a.partitions > 1 && a.tmp_out ? a.partitions : 1;
  const i64 per = P > 1 ? a.kv_heads : a.cpu_kv_heads_per_item > 0 ? a.cpu_kv_heads_per_item : a.kv_heads;
  const i64 chunks = (a.kv_heads + per - 1) / per;
  const T* kc = static_cast<const T*>(a.k_cache);
  const T* vc = static_cast<const T*>(a.v_cache);
  for (i64 item = i0; item < i1; ++item) {
    const i64 b = item / (chunks * P);
    const i64 h0 = (item % (chunks * P)) / P * per;
    const i64 part = item % P;
    const i64 nkv = (h0 + per < a.kv_heads ? h0 + per : a.kv_heads) - h0;
    const i64 nq = nkv * G;  // query heads h0 * G .. (h0 + nkv) * G
    const i64 Lfull = a.context_lens[b];
    // This item's tokens [tb, te): whole cache blocks per partition.
    const i64 span = ((Lfull + P - 1) / P + bs - 1) / bs * bs;
    const i64 tb = P > 1 ? (part * span < Lfull ? part * span : Lfull) : 0;
    const i64 te = P > 1 ? (tb + span < Lfull ? tb + span : Lfull) : Lfull;
    const i64 L = te - tb;
    // Score rows are padded by one vector: with a power-of-two length the
    // rows of all heads would fall into the same L1 set (4 KB aliasing).
    const i64 Lp = (L + W - 1) / W * W + W;
    float* qf = tl_scratch.get(2 * nq * Dp + nq * Lp);
    float* acc = qf + nq * Dp;
    float* scores = acc + nq * Dp;  // [nq][Lp]
    T* out0 = static_cast<T*>(a.out) + (b * a.q_heads + h0 * G) * D;
    if (L == 0 && P > 1) {  // an empty range: weight zero in the merge
      for (i64 h = 0; h < nq; ++h) {
        const i64 row = (b * a.q_heads + h0 * G + h) * P + part;
        a.max_logits[row] = -std::numeric_limits<float>::infinity();
        a.exp_sums[row] = 0.0f;
        for (i64 j = 0; j < D; ++j) a.tmp_out[row * D + j] = 0.0f;
      }
      continue;
    }
    if (L == 0) {  // no keys: defined as a zero output
      for (i64 h = 0; h < nq; ++h)
        for_chunks(D, [&](i64 j, int c) { store_n(out0 + h * D + j, splat(0.0f), c); });
      continue;
    }
    for (i64 h = 0; h < nq; ++h) {
      const T* q = static_cast<const T*>(a.q) + b * a.q_stride_b + (h0 * G + h) * a.q_stride_h;
      for_chunks(D, [&](i64 j, int c) { store(qf + h * Dp + j, load_n(q + j, c) * a.scale); });
    }
    const std::int32_t* bt = a.block_tables + b * a.bt_stride;
    auto slot = [&](const T* cache, i64 t) {  // this item's first row in token t's slot
      return cache + ((i64(bt[t / bs]) * bs + t % bs) * a.kv_heads + h0) * D;
    };
    // Within a block, tokens are contiguous and the hardware prefetcher
    // streams them; blocks are scattered, so start each next block early.
    auto prefetch_next_block = [&](const T* cache, i64 t0) {
      const i64 next = (t0 / bs + 1) * bs;
      if (next - t0 > kTile || next >= te) return;
      const char* p = reinterpret_cast<const char*>(slot(cache, next));
      for (int line = 0; line < 8; ++line) __builtin_prefetch(p + 64 * line);
    };
    // Calls f(rows, nt, t0) per token tile; rows[u] = token t0 + u's slot
    // (past the end: a repeat of the first, computed but never stored).
    auto for_tiles = [&](const T* cache, auto&& f) {
      for (i64 t0 = tb; t0 < te; t0 += kTile) {
        prefetch_next_block(cache, t0);
        const int nt = int(te - t0 < kTile ? te - t0 : kTile);
        const T* rows[kTile];
        MMGEN_UNROLL_ALL
        for (int u = 0; u < kTile; ++u) rows[u] = slot(cache, t0 + (u < nt ? u : 0));
        f(rows, nt, t0 - tb);  // t0 - tb: the column in this item's score rows
      }
    };
    for_tiles(kc, [&](const T* const* rows, int nt, i64 t0) {
      for (i64 kh = 0; kh < nkv; ++kh) {
        const T* r[kTile];
        MMGEN_UNROLL_ALL
        for (int u = 0; u < kTile; ++u) r[u] = rows[u] + kh * D;
        for_head_groups(kh * G, G, [&]<int GG>(i64 first) { score_tile<GG>(qf, first, Dp, D, r, nt, scores, Lp, t0); });
      }
    });
    for (i64 h = 0; h < nq; ++h) {
      float* sg = scores + h * Lp;
      float m = sg[0];
      for (i64 t = 1; t < L; ++t) m = sg[t] > m ? sg[t] : m;
      fv sum = {};
      for_chunks(L, [&](i64 j, int c) {
        const fv e = vexp(load_n(sg + j, c) - m) * lanes_below(c);
        store(sg + j, e);  // scratch rows are padded to Lp
        sum += e;
      });
      if (P > 1) {  // unnormalised: the merge rescales by exp(m - max over ranges)
        const i64 row = (b * a.q_heads + h0 * G + h) * P + part;
        a.max_logits[row] = m;
        a.exp_sums[row] = hsum(sum);
        continue;
      }
      const float inv = 1.0f / hsum(sum);
      for (i64 j = 0; j < L; j += W) store(sg + j, load(sg + j) * inv);
    }
    for (i64 j = 0; j < nq * Dp; j += W) store(acc + j, splat(0.0f));
    for_tiles(vc, [&](const T* const* rows, int nt, i64 t0) {
      for (i64 kh = 0; kh < nkv; ++kh) {
        const T* r[kTile];
        MMGEN_UNROLL_ALL
        for (int u = 0; u < kTile; ++u) r[u] = rows[u] + kh * D;
        for_head_groups(kh * G, G, [&]<int GG>(i64 first) { pv_tile<GG>(acc, first, Dp, D, r, nt, scores, Lp, t0); });
      }
    });
    if (P > 1) {
      for (i64 h = 0; h < nq; ++h) {
        float* dst = a.tmp_out + ((b * a.q_heads + h0 * G + h) * P + part) * D;
        for_chunks(D, [&](i64 j, int c) { store_n(dst + j, load(acc + h * Dp + j), c); });
      }
      continue;
    }
    for (i64 h = 0; h < nq; ++h)
      for_chunks(D, [&](i64 j, int c) { store_n(out0 + h * D + j, load(acc + h * Dp + j), c); });
  }
}
void paged_attention(const PagedAttentionArgs& a, i64 i0, i64 i1) {
  with_type(a.dtype, [&](auto p) { paged_attention_t<elem_t<decltype(p)>>(a, i0, i1); });
}

// ---- reshape_and_cache -------------------------------------------------------------
void reshape_and_cache(const ReshapeAndCacheArgs& a, i64 t0, i64 t1) {
  const i64 es = a.elem_size;
  const i64 row_bytes = a.head_dim * es;
  for (i64 t = t0; t < t1; ++t) {
    const i64 slot = a.slot_mapping[t];
    if (slot < 0) continue;
    // [num_blocks, block_size] is one contiguous run of slots.
    const i64 base = slot * a.kv_heads * a.head_dim * es;
    char* kd = static_cast<char*>(a.k_cache) + base;
    char* vd = static_cast<char*>(a.v_cache) + base;
    const char* ks = static_cast<const char*>(a.k) + t * a.k_stride_tok * es;
    const char* vs = static_cast<const char*>(a.v) + t * a.v_stride_tok * es;
    if (a.k_stride_head == a.head_dim && a.v_stride_head == a.head_dim) {  // heads contiguous: one copy
      std::memcpy(kd, ks, size_t(a.kv_heads * row_bytes));
      std::memcpy(vd, vs, size_t(a.kv_heads * row_bytes));
      continue;
    }
    for (i64 h = 0; h < a.kv_heads; ++h) {
      std::memcpy(kd + h * row_bytes, ks + h * a.k_stride_head * es, size_t(row_bytes));
      std::memcpy(vd + h * row_bytes, vs + h * a.v_stride_head * es, size_t(row_bytes));
    }
  }
}

}  // namespace

const CpuLoops& MMGEN_CAT(cpu_loops_, MMGEN_CPU_ISA)() {
  static const CpuLoops table{
      .isa = MMGEN_STR(MMGEN_CPU_ISA),
      .rms_norm = &rms_norm,
      .rope = &rope,
      .silu_and_mul = &silu_and_mul,
      .gelu_tanh = &gelu_tanh,
      .adaln_modulate = &adaln_modulate,
      .gated_residual = &gated_residual,
      .paged_attention = &paged_attention,
      .reshape_and_cache = &reshape_and_cache,
  };
  return table;
}

}  // namespace mmgen::kernels::cpu
