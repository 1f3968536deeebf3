// video_bench: the Wan text-to-video pipeline against diffusers' WanPipeline
// on the same weights and threads, in the same run.
//
// Checkpoint: a Wan2.2-TI2V-5B-shaped pipeline folder in the published
// diffusers layout with random (seeded) float32 weights, written at run time
// by bench/video_bench_reference.py into a temporary folder (removed
// afterwards):
//   transformer  --blocks blocks (default 4) of 12 heads x 128 (dim 1536,
//                ffn 8960), in/out 48 channels, patch (1, 2, 2), text_dim 512
//   text encoder umT5, d_model 512, 2 layers, 8 heads x 64 (the test
//                fixtures' SentencePiece tokenizer, vocab 1500)
//   VAE          the Wan 2.2 layout (z 48, residual blocks, patch 2, 16x
//                spatial, 4x temporal, dim_mult [1, 2, 4, 4], 2 res blocks)
//                at base_dim --vae-base / decoder_base_dim --vae-decoder-base
//                (default 40 / 64; published 160 / 256, which costs ~70 s per
//                latent frame on 2 cores: a quarter of the width keeps the
//                run within minutes)
//   scheduler    the published TI2V-5B UniPC config (flow_shift 5)
// One video of --frames (default 33) frames of --size (default 256) pixels
// square in --steps (default 8) steps, CFG 5 with a negative prompt, seed 42,
// float32, --threads (default 2) threads:
//   s/video      one generate() / pipe() call, weights already loaded
//   s/step       fastest time between consecutive step callbacks (steps
//                2..N): two transformer forwards (CFG) + one scheduler step
//   VAE decode   last step callback -> return (decode + postprocess)
//   prompt+1st   start -> first step callback (prompt encoding, latents, step 1)
//   CPU s/video  process CPU seconds of that call, all threads
//   RSS loaded   VmRSS right after loading
//   peak RSS     VmHWM of the process (loading included)
// Then VAE decode memory against the video length: fixed latents
// [1, 48, (F-1)/4 + 1, S/16, S/16] for F in --decode-frames (default 17,65)
// at S = --decode-size (default 128: 256 would add ~4 minutes on 2 cores)
// decoded in a VAE-only process per side and length (ours loads only the
// decoder, as the text-to-video pipeline does; diffusers' from_pretrained
// loads the encoder too): seconds, VmRSS before the decode, VmHWM.
// Every measurement runs in its own child process (ours: this program
// re-executed with --child; diffusers: the reference script), so each peak is
// that run's alone. No warm-up (a video costs minutes here); both sides pay
// their first-call costs alike, and s/step skips step 1. The sides' outputs
// are compared too (max |ours - diffusers|), a guard that both ran the same
// computation.
//
//   video_bench [--threads N] [--frames F] [--size PX] [--steps N] [--blocks N]
//               [--vae-base N] [--vae-decoder-base N] [--decode-frames 17,65 (empty: skip)]
//               [--decode-size PX (128)] [--python PATH]
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/sin.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_child.hpp"
#include "mmgen/diffusion/wan_vae.hpp"
#include "mmgen/video/wan_pipeline.hpp"

using namespace mmgen::bench;

namespace {

constexpr std::int64_t kZ = 48;  // the Wan 2.2 VAE's latent channels
constexpr std::uint64_t kSeed = 42;
constexpr double kGuidance = 5.0;

// ---------------------------------------------------------------- children

struct ChildArgs {
  std::string mode, dir, save;
  std::int64_t frames = 33, size = 256, steps = 8;
};

int child_pipeline(const ChildArgs& a) {
  using namespace mmgen::video;
  c10::InferenceMode no_grad;
  const auto t_load = Clock::now();
  const WanPipeline pipe = WanPipeline::load(a.dir, WanLoadOptions{});  // float32, CPU, decoder-only VAE
  const double load_s = seconds(t_load, Clock::now());
  const double loaded_mb = proc_status_mb("VmRSS:");
  VideoRequest req;
  req.prompt = read_text(fs::path(a.dir) / "prompt.txt");
  req.negative_prompt = read_text(fs::path(a.dir) / "negative.txt");
  req.guidance_scale = kGuidance;
  req.num_frames = a.frames;
  req.width = req.height = a.size;
  req.steps = a.steps;
  req.seed = kSeed;
  std::vector<Clock::time_point> stamps;
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  const at::Tensor video = pipe.generate(req, [&](std::int64_t, std::int64_t, const at::Tensor&) {
    stamps.push_back(Clock::now());
  });
  const auto t1 = Clock::now();
  const double cpu = cpu_seconds() - c0;
  save_raw(video, a.save);
  std::vector<double> steps;
  for (std::size_t i = 1; i < stamps.size(); ++i) steps.push_back(seconds(stamps[i - 1], stamps[i]));
  // The fastest of steps 2..N: on a shared machine the minimum is the figure
  // least disturbed by other load.
  const double step = steps.empty() ? seconds(t0, stamps.front()) : *std::min_element(steps.begin(), steps.end());
  std::printf("{\"side\": \"mmgen\", \"load_s\": %.4f, \"total_s\": %.4f, \"first_s\": %.4f, \"step_s\": %.4f, "
              "\"decode_s\": %.4f, \"cpu_s\": %.4f, \"loaded_mb\": %.1f, \"peak_mb\": %.1f}\n",
              load_s, seconds(t0, t1), seconds(t0, stamps.front()), step, seconds(stamps.back(), t1), cpu,
              loaded_mb, proc_status_mb("VmHWM:"));
  return 0;
}

int child_decode(const ChildArgs& a) {
  using namespace mmgen::diffusion;
  c10::InferenceMode no_grad;
  const WanVae vae = WanVae::load(fs::path(a.dir) / "vae", mmgen::io::LoadOptions{}, VaeParts{false, true});
  // The reference script builds the same latents (fixed_latents).
  const std::int64_t t = (a.frames - 1) / 4 + 1, s = a.size / 16;
  const at::Tensor z =
      at::arange(kZ * t * s * s, at::kFloat).reshape({1, kZ, t, s, s}).mul(0.37).sin().mul(2);
  const double before_mb = proc_status_mb("VmRSS:");
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  const at::Tensor x = vae.decode(z);
  const double dt = seconds(t0, Clock::now()), cpu = cpu_seconds() - c0;
  save_raw(x, a.save);
  std::printf("{\"side\": \"mmgen\", \"frames\": %lld, \"decode_s\": %.4f, \"cpu_s\": %.4f, \"before_mb\": %.1f, "
              "\"peak_mb\": %.1f}\n",
              static_cast<long long>(x.size(2)), dt, cpu, before_mb, proc_status_mb("VmHWM:"));
  return 0;
}

// ---------------------------------------------------------------- report

void row(const char* name, double ours, double theirs, const char* note) {
  std::printf("%-26s %10.2f %10.2f %7.2fx  %s\n", name, ours, theirs, theirs > 0 ? ours / theirs : 0.0, note);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::int64_t frames = 33, size = 256, steps = 8, blocks = 4, vae_base = 40, vae_decoder_base = 64,
               decode_size = 128;
  std::string decode_frames = "17,65";
  std::string python = MMGEN_VIDEO_BENCH_PYTHON;
  if (const char* env = std::getenv("MMGEN_PYTHON")) python = env;
  ChildArgs child;
  for (ArgCursor args{argc, argv}; args.next();) {
    const std::string a = args.flag();
    auto value = [&args] { return args.value(); };
    if (a == "--threads") threads = std::stoi(value());
    else if (a == "--frames") frames = std::stoll(value());
    else if (a == "--size") size = std::stoll(value());
    else if (a == "--steps") steps = std::max<std::int64_t>(2, std::stoll(value()));
    else if (a == "--blocks") blocks = std::stoll(value());
    else if (a == "--vae-base") vae_base = std::stoll(value());
    else if (a == "--vae-decoder-base") vae_decoder_base = std::stoll(value());
    else if (a == "--decode-frames") decode_frames = value();
    else if (a == "--decode-size") decode_size = std::stoll(value());
    else if (a == "--python") python = value();
    else if (a == "--child") child.mode = value();
    else if (a == "--dir") child.dir = value();
    else if (a == "--save") child.save = value();
    else {
      std::cerr << "usage: video_bench [--threads N] [--frames F] [--size PX] [--steps N] [--blocks N]\n"
                   "                   [--vae-base N] [--vae-decoder-base N] [--decode-frames 17,65 (empty: skip)]\n"
                   "                   [--decode-size PX] [--python PATH]\n";
      return 2;
    }
  }
  if ((frames - 1) % 4 != 0 || size % 32 != 0 || decode_size % 16 != 0) {
    std::cerr << "video_bench: --frames must be 4n + 1, --size a multiple of 32, --decode-size of 16\n";
    return 2;
  }
  at::set_num_threads(threads);
  if (!child.mode.empty()) {
    child.frames = frames;
    child.size = size;
    child.steps = steps;
    return run_child("video_bench", child.mode, [&] {
      if (child.mode == "pipeline") return child_pipeline(child);
      if (child.mode == "decode") return child_decode(child);
      return 2;
    });
  }

  const Parent parent = make_parent("video-bench", python, MMGEN_VIDEO_BENCH_SCRIPT, threads);
  if (parent.dir.empty()) return 1;
  const fs::path& dir = parent.dir;
  const std::string &self = parent.self, &script = parent.script, &common = parent.common;
  try {
    const auto t_start = Clock::now();
    std::cout << "video_bench: writing the checkpoint (" << blocks << " blocks, VAE base_dim " << vae_base
              << " / decoder " << vae_decoder_base << ")...\n"
              << std::flush;
    const std::string params = json_line(run_capture(
        script + " write --out '" + dir.string() + "' --blocks " + std::to_string(blocks) + " --vae-base " +
        std::to_string(vae_base) + " --vae-decoder-base " + std::to_string(vae_decoder_base)));
    std::printf("\nWan2.2-TI2V-5B-shaped pipeline, random weights, float32: transformer %lld blocks x 12 heads x "
                "128 (dim 1536, ffn 8960, %.0f M params), umT5 2 layers x 512 (%.1f M), Wan 2.2 VAE (z 48) at "
                "base_dim %lld / decoder %lld (published 160 / 256; decoder %.1f M)\n",
                static_cast<long long>(blocks), json_num(params, "transformer") / 1e6,
                json_num(params, "text_encoder") / 1e6, static_cast<long long>(vae_base),
                static_cast<long long>(vae_decoder_base), json_num(params, "vae_decoder") / 1e6);
    std::printf("%lld frames of %lld x %lld pixels, %lld UniPC steps, CFG %.0f with a negative prompt, seed %llu, "
                "%d threads; each side in its own process\n\n",
                static_cast<long long>(frames), static_cast<long long>(size), static_cast<long long>(size),
                static_cast<long long>(steps), kGuidance, static_cast<unsigned long long>(kSeed), threads);
    const std::string sizes =
        " --frames " + std::to_string(frames) + " --size " + std::to_string(size) + " --steps " + std::to_string(steps);
    {
      const std::string ref_out = (dir / "diffusers_video.f32").string(), our_out = (dir / "mmgen_video.f32").string();
      std::cout << "  video: diffusers..." << std::flush;
      const Figures r{json_line(run_capture(script + " pipeline" + common + sizes + " --save '" + ref_out + "'"))};
      std::cout << " mmgen..." << std::flush;
      const Figures o{json_line(
          run_capture("'" + self + "' --child pipeline" + common + sizes + " --save '" + our_out + "'"))};
      std::cout << " done\n" << std::flush;
      std::printf("%-26s %10s %10s %8s\n", "metric", "mmgen", "diffusers", "ratio");
      row("s / video (end to end)", o.get("total_s"), r.get("total_s"), "target <= 0.80x");
      row("CPU s / video", o.get("cpu_s"), r.get("cpu_s"), "all threads; steadier under load");
      row("s / denoising step", o.get("step_s"), r.get("step_s"), "2 transformer forwards (CFG); fastest of 2..N");
      row("VAE decode s", o.get("decode_s"), r.get("decode_s"), "last step -> frames");
      row("prompt + step 1 s", o.get("first_s"), r.get("first_s"), "");
      row("load s", o.get("load_s"), r.get("load_s"), "not in s / video");
      row("RSS after load MB", o.get("loaded_mb"), r.get("loaded_mb"), "VmRSS");
      row("peak RSS MB", o.get("peak_mb"), r.get("peak_mb"), "VmHWM; target <= 0.80x");
      std::printf("max |mmgen - diffusers| of the frames in [0, 1]: %.3g\n\n", max_abs_diff(our_out, ref_out));
    }
    std::map<std::int64_t, std::pair<Figures, Figures>> dec;  // frames -> (ours, diffusers)
    std::stringstream ss(decode_frames);
    for (std::string f; std::getline(ss, f, ',');) {
      const std::int64_t n = std::stoll(f);
      if ((n - 1) % 4 != 0) throw std::invalid_argument("--decode-frames: " + f + " is not 4n + 1");
      const std::string args = common + " --frames " + f + " --size " + std::to_string(decode_size);
      const std::string ref_out = (dir / ("diffusers_dec" + f + ".f32")).string();
      const std::string our_out = (dir / ("mmgen_dec" + f + ".f32")).string();
      std::cout << "  decode " << f << " frames: diffusers..." << std::flush;
      Figures r{json_line(run_capture(script + " decode" + args + " --save '" + ref_out + "'"))};
      std::cout << " mmgen..." << std::flush;
      Figures o{json_line(run_capture("'" + self + "' --child decode" + args + " --save '" + our_out + "'"))};
      std::cout << " done (max |mmgen - diffusers| " << max_abs_diff(our_out, ref_out) << ")\n" << std::flush;
      fs::remove(ref_out);
      fs::remove(our_out);
      dec.emplace(n, std::make_pair(o, r));
    }
    if (!dec.empty()) {
      std::printf("\nVAE decode of fixed latents, %lld x %lld pixels, float32, one VAE-only process per run (ours: "
                  "decoder only; diffusers loads the encoder too)\n",
                  static_cast<long long>(decode_size), static_cast<long long>(decode_size));
      std::printf("%-7s %10s %10s %12s %12s %12s %12s\n", "frames", "mmgen s", "diff. s", "mmgen base", "diff. base",
                  "mmgen peak", "diff. peak");
      for (const auto& [n, p] : dec) {
        std::printf("%-7lld %10.2f %10.2f %9.0f MB %9.0f MB %9.0f MB %9.0f MB\n", static_cast<long long>(n),
                    p.first.get("decode_s"), p.second.get("decode_s"), p.first.get("before_mb"),
                    p.second.get("before_mb"), p.first.get("peak_mb"), p.second.get("peak_mb"));
      }
      const auto& lo = dec.begin()->second;
      const auto& hi = dec.rbegin()->second;
      std::printf("peak(%lld frames) / peak(%lld frames): mmgen %.2fx (target <= 1.20x), diffusers %.2fx\n",
                  static_cast<long long>(dec.rbegin()->first), static_cast<long long>(dec.begin()->first),
                  hi.first.get("peak_mb") / lo.first.get("peak_mb"), hi.second.get("peak_mb") / lo.second.get("peak_mb"));
      std::printf("decode working set (peak - base): mmgen %.0f -> %.0f MB, diffusers %.0f -> %.0f MB\n",
                  lo.first.get("peak_mb") - lo.first.get("before_mb"), hi.first.get("peak_mb") - hi.first.get("before_mb"),
                  lo.second.get("peak_mb") - lo.second.get("before_mb"),
                  hi.second.get("peak_mb") - hi.second.get("before_mb"));
    }
    std::printf("\nwhole run: %.0f s\n", seconds(t_start, Clock::now()));
  } catch (const std::exception& e) {
    std::cerr << "video_bench: " << e.what() << "\n";
    fs::remove_all(dir);
    return 1;
  }
  fs::remove_all(dir);
  return 0;
}
