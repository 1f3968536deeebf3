// Job params -> ImageJob (image_params.hpp).
#include "image_params.hpp"

#include <random>
#include <string>

#include "mmgen/protocol.hpp"

namespace mmgen::image {

namespace {

[[noreturn]] void bad(const std::string& msg) { throw proto::ProtocolError(proto::ErrorCode::invalid_request, msg); }

}  // namespace

ImageJob parse_image_job(const Params& p, const std::vector<worker::Input>& inputs) {
  ImageJob job;
  ImageRequest& r = job.request;
  r.prompt = p.get_string("prompt", "");
  if (r.prompt.empty()) bad("prompt is required");
  if (p.has("negative_prompt")) r.negative_prompt = p.get_string("negative_prompt", "");
  r.true_cfg_scale = p.get_double("cfg", r.true_cfg_scale, 0.0, 100.0);
  r.width = p.get_int("width", 0, 16, 8192);
  r.height = p.get_int("height", 0, 16, 8192);
  r.steps = p.get_int("steps", r.steps, 1, 1000);
  r.images = p.get_int("count", 1, 1, 16);
  r.strength = p.get_double("strength", r.strength, 0.0, 1.0);
  r.max_sequence_length = p.get_int("max_sequence_length", r.max_sequence_length, 1, 1024);
  job.seed_given = p.has("seed");
  if (job.seed_given) {
    r.seed = static_cast<std::uint64_t>(p.get_int("seed", 0, 0, INT64_MAX));
  } else {
    r.seed = std::random_device{}() & 0x7fffffffu;  // reported back in the result
  }
  const bool previews = p.get_bool("previews", false);
  job.preview_every = p.get_int("preview_every", previews ? 1 : 0, 0, 1000);
  if (previews && job.preview_every == 0) job.preview_every = 1;
  try {
    job.format = media::image_format_from_name(p.get_string("format", "png"));
  } catch (const std::exception&) {
    bad("format must be png, jpeg or webp, got '" + p.get_string("format", "") + "'");
  }
  const std::string tiling = p.get_string("tiling", "auto");
  if (tiling == "on") job.tiling = ImageJob::Tiling::on;
  else if (tiling == "off") job.tiling = ImageJob::Tiling::off;
  else if (tiling != "auto") bad("tiling must be auto, on or off, got '" + tiling + "'");
  job.quality = static_cast<int>(p.get_int("quality", job.format == media::ImageFormat::webp ? 90 : 95, 1, 100));

  media::DecodeOptions opts;
  opts.alpha = media::AlphaMode::drop;  // PIL convert("RGB"), as the reference pipelines read images
  // Edit: one to three blobs named "image", in order.
  int edit_index = 0;
  for (const auto& in : inputs) {
    if (in.name != "image") continue;
    if (++edit_index > 3) bad("edit takes at most 3 images (blobs named 'image')");
    r.edit_images.push_back(media::decode_image("image " + std::to_string(edit_index), in.octets(), opts));
  }
  if (!r.edit_images.empty()) {
    if (worker::find_input(inputs, "init") || worker::find_input(inputs, "mask")) {
      bad("an edit job (blobs 'image') takes no 'init' or 'mask' blob");
    }
    r.mode = ImageMode::edit;
    const std::string style = p.get_string("edit_style", "auto");
    if (style == "edit") r.edit_style = EditStyle::edit;
    else if (style == "edit_plus") r.edit_style = EditStyle::edit_plus;
    else if (style != "auto") bad("edit_style must be auto, edit or edit_plus, got '" + style + "'");
  }
  if (const auto* init = worker::find_input(inputs, "init")) {
    r.init_image = media::decode_image("init", init->octets(), opts);
    r.mode = ImageMode::img2img;
  }
  if (const auto* mask = worker::find_input(inputs, "mask")) {
    if (!r.init_image) bad("a mask needs an init image (blob 'init') to inpaint");
    r.mask = media::decode_mask("mask", mask->octets(), opts);
    media::check_mask_size("mask", *r.mask, "init", r.init_image->width, r.init_image->height);
    r.mode = ImageMode::inpaint;
  }
  for (const auto& in : inputs) {
    if (in.name != "init" && in.name != "mask" && in.name != "image") {
      bad("unknown input blob '" + in.name + "' (expected init, mask or image)");
    }
  }
  return job;
}

}  // namespace mmgen::image
