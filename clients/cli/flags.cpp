// Flag tables of the `mmgen` verbs. Param names are the flag names with the
// dashes dropped and words joined by '_' (--max-tokens -> max_tokens), except
// where a row says otherwise (--negative -> negative_prompt). The services
// define what each parameter means and validate its range.
#include "cli/flags.hpp"

#include <array>

namespace mmgen::cli {

namespace {

using K = FlagKind;

constexpr FlagSpec kGlobal[] = {
    {"--broker", "", K::Broker, "", "EP", "broker client endpoint (env MMGEN_BROKER; default tcp://127.0.0.1:5555)"},
    {"--json", "", K::Json, "", "", "one JSON object per line on stdout for every event"},
    {"--detach", "", K::Detach, "", "", "print the job id once accepted and exit 0"},
    {"--priority", "", K::Priority, "", "N", "job priority 0..9, higher runs first (default 5)"},
    {"--timeout", "", K::Timeout, "", "SECONDS", "fail the job if not finished in time (exit 5); for `wait`, stop waiting"},
    {"--key", "", K::Key, "", "K", "idempotency key: a repeated key returns the existing job"},
    {"--cancel-on-interrupt", "", K::CancelOnInterrupt, "", "", "on Ctrl-C cancel the job instead of leaving it running"},
    {"--help", "-h", K::Help, "", "", "show help (for a verb: mmgen VERB --help)"},
    {"--version", "", K::Version, "", "", "show the version"},
};

constexpr FlagSpec kText[] = {
    {"--system", "", K::String, "system", "TEXT", "system prompt"},
    {"--max-tokens", "", K::PosInt, "max_tokens", "N", "maximum tokens to generate"},
    {"--temperature", "", K::Double, "temperature", "T", "sampling temperature (0: greedy)"},
    {"--top-k", "", K::NonNegInt, "top_k", "K", "top-k sampling"},
    {"--top-p", "", K::Double, "top_p", "P", "nucleus sampling"},
    {"--min-p", "", K::Double, "min_p", "P", "min-p sampling"},
    {"--seed", "", K::Int, "seed", "N", "sampling seed"},
    {"--stop", "", K::StringList, "stop", "TEXT", "stop string (repeatable)"},
    {"--think", "", K::SetTrue, "think", "", "let the model think (Qwen3)"},
    {"--no-think", "", K::SetFalse, "think", "", "no thinking (Qwen3)"},
    {"--model", "", K::Model, "", "NAME", "run on a worker that serves this model"},
    {"--chat", "--messages", K::Chat, "messages", "FILE", "JSON chat: [{\"role\":..,\"content\":..},..]"},
    {"--tools", "", K::Tools, "tools", "FILE", "JSON function definitions the model may call"},
    {"--image", "", K::InputList, "image", "FILE", "an image for the prompt (repeatable; Qwen3.5 models)"},
    {"-o", "--output", K::Output, "", "PATH", "also write the generated text to PATH"},
};

// image and edit share their flags.
constexpr FlagSpec kImage[] = {
    {"-o", "--output", K::Output, "", "PATH", "output file (several outputs: PATH-1.ext, PATH-2.ext, ...)"},
    {"--width", "", K::PosInt, "width", "PX", "image width"},
    {"--height", "", K::PosInt, "height", "PX", "image height"},
    {"--steps", "", K::PosInt, "steps", "N", "denoising steps"},
    {"--cfg", "", K::Double, "cfg", "S", "guidance scale"},
    {"--negative", "", K::String, "negative_prompt", "TEXT", "negative prompt"},
    {"--seed", "", K::Int, "seed", "N", "noise seed"},
    {"--init", "", K::Input, "init", "FILE", "initial image (img2img)"},
    {"--strength", "", K::Double, "strength", "S", "img2img strength"},
    {"--mask", "", K::Input, "mask", "FILE", "inpainting mask"},
    {"--count", "", K::PosInt, "count", "N", "images per prompt"},
    {"--format", "", K::String, "format", "FMT", "output format: png (default), jpeg or webp"},
    {"--previews", "", K::Previews, "previews", "DIR", "save preview images sent with progress into DIR"},
    {"--preview-every", "", K::PosInt, "preview_every", "N", "a preview every N steps"},
    {"--model", "", K::Model, "", "NAME", "run on a worker that serves this model"},
};

constexpr FlagSpec kVideo[] = {
    {"-o", "--output", K::Output, "", "PATH", "output file (e.g. out.mp4)"},
    {"--image", "", K::Input, "image", "FILE", "first frame (image-to-video)"},
    {"--frames", "", K::PosInt, "frames", "N", "number of frames (4n+1)"},
    {"--width", "", K::PosInt, "width", "PX", "video width"},
    {"--height", "", K::PosInt, "height", "PX", "video height"},
    {"--steps", "", K::PosInt, "steps", "N", "denoising steps"},
    {"--cfg", "", K::Double, "cfg", "S", "guidance scale (high-noise expert)"},
    {"--cfg2", "", K::Double, "cfg2", "S", "guidance scale of the low-noise expert"},
    {"--fps", "", K::PosInt, "fps", "N", "frames per second"},
    {"--seed", "", K::Int, "seed", "N", "noise seed"},
    {"--negative", "", K::String, "negative_prompt", "TEXT", "negative prompt"},
    {"--model", "", K::Model, "", "NAME", "run on a worker that serves this model"},
    {"--previews", "", K::Previews, "previews", "DIR", "save preview frames sent with progress into DIR"},
    {"--preview-every", "", K::PosInt, "preview_every", "N", "a preview every N steps"},
    {"--save-frames", "", K::SaveFrames, "save_frames", "DIR", "also save the frames as PNG files into DIR"},
};

constexpr FlagSpec kEcho[] = {
    {"--sleep-ms", "", K::NonNegInt, "sleep_ms", "N", "sleep N ms, reporting progress"},
    {"--fail", "", K::SetTrue, "fail", "", "make the job fail"},
    {"--partials", "", K::NonNegInt, "partials", "N", "stream N partial results"},
};

constexpr FlagSpec kWait[] = {
    {"-o", "--output", K::Output, "", "PATH", "where to write the outputs (default: JOB.ext here)"},
    {"--previews", "", K::Previews, "", "DIR", "save preview images into DIR"},
    {"--save-frames", "", K::SaveFrames, "", "DIR", "save image outputs of a video job into DIR"},
};

constexpr FlagSpec kFetch[] = {
    {"-o", "--output", K::Output, "", "PATH", "where to write the outputs (default: JOB.ext here)"},
    {"--save-frames", "", K::SaveFrames, "", "DIR", "save image outputs of a video job into DIR"},
};

constexpr FlagSpec kJobs[] = {
    {"--service", "", K::ListService, "", "S", "only jobs of service S"},
    {"--limit", "", K::ListLimit, "", "N", "at most N jobs (default 50)"},
};

}  // namespace

bool takes_value(FlagKind k) {
  switch (k) {
    case K::Json: case K::Detach: case K::CancelOnInterrupt: case K::Help: case K::Version:
    case K::SetTrue: case K::SetFalse:
      return false;
    default:
      return true;
  }
}

std::span<const FlagSpec> global_flags() { return kGlobal; }

std::span<const FlagSpec> verb_flags(Verb v) {
  switch (v) {
    case Verb::text: return kText;
    case Verb::image: case Verb::edit: return kImage;
    case Verb::video: return kVideo;
    case Verb::echo: return kEcho;
    case Verb::wait: return kWait;
    case Verb::fetch: return kFetch;
    case Verb::jobs: return kJobs;
    case Verb::status: case Verb::cancel: case Verb::workers: return {};
  }
  return {};
}

std::string_view verb_positionals(Verb v) {
  switch (v) {
    case Verb::text: return "[PROMPT]";
    case Verb::image: case Verb::video: return "PROMPT";
    case Verb::edit: return "IMAGE [IMAGE [IMAGE]] PROMPT";
    case Verb::echo: return "TEXT...";
    case Verb::status: case Verb::wait: case Verb::fetch: case Verb::cancel: return "ID";
    case Verb::jobs: case Verb::workers: return "";
  }
  return "";
}

std::string_view verb_summary(Verb v) {
  switch (v) {
    case Verb::text: return "generate text (service text); tokens stream to stdout";
    case Verb::image: return "generate images (service image)";
    case Verb::edit: return "edit 1 to 3 images by an instruction (service image)";
    case Verb::video: return "generate a video (service video)";
    case Verb::echo: return "diagnostic job (service echo); prints the echoed text";
    case Verb::status: return "show a job's state";
    case Verb::wait: return "attach to a job and wait for its end; write its outputs";
    case Verb::fetch: return "write a finished job's outputs";
    case Verb::cancel: return "cancel a job";
    case Verb::jobs: return "list recent jobs";
    case Verb::workers: return "list services, workers, models and load";
  }
  return "";
}

}  // namespace mmgen::cli
