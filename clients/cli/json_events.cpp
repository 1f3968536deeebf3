// See json_events.hpp.
#include "cli/json_events.hpp"

namespace mmgen::cli {

using proto::EventCmd;

namespace {
// A JSON string literal, quotes included (Value's encoder escapes it).
std::string json_string(std::string_view s) { return Value(s).to_json(); }
}  // namespace

void JsonObject::key(std::string_view k) {
  if (body_.size() > 1) body_ += ',';
  body_ += json_string(k);
  body_ += ':';
}

JsonObject& JsonObject::str(std::string_view k, std::string_view v) {
  key(k);
  body_ += json_string(v);
  return *this;
}

JsonObject& JsonObject::num(std::string_view k, std::int64_t v) {
  key(k);
  body_ += std::to_string(v);
  return *this;
}

JsonObject& JsonObject::real(std::string_view k, double v) { return value(k, Value(v)); }

JsonObject& JsonObject::boolean(std::string_view k, bool v) {
  key(k);
  body_ += v ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::value(std::string_view k, const Value& v) {
  key(k);
  body_ += v.to_json();
  return *this;
}

JsonObject& JsonObject::strings(std::string_view k, const std::vector<std::string>& values) {
  key(k);
  body_ += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i) body_ += ',';
    body_ += json_string(values[i]);
  }
  body_ += ']';
  return *this;
}

JsonObject& JsonObject::raw(std::string_view k, std::string_view json) {
  key(k);
  body_ += json;
  return *this;
}

std::string accepted_json(const proto::Accepted& a) {
  return JsonObject().str("job", a.job).str("event", "accepted").boolean("existing", a.existing).done();
}

std::string event_json(const client::Event& ev, const std::vector<std::string>& paths) {
  JsonObject o;
  o.str("job", ev.job);
  switch (ev.kind) {
    case EventCmd::Accepted: return accepted_json(ev.as<proto::Accepted>());
    case EventCmd::Queued: {
      const auto& q = ev.as<proto::Queued>();
      o.str("event", "queued").num("position", q.position);
      if (!q.waiting_for.empty()) o.str("waiting_for", q.waiting_for);
      break;
    }
    case EventCmd::Started: {
      const auto& s = ev.as<proto::Started>();
      o.str("event", "started").str("worker", s.worker).num("attempt", s.attempt);
      break;
    }
    case EventCmd::Progress: {
      const auto& p = ev.as<proto::Progress>();
      o.str("event", "progress").num("step", p.step).num("total", p.total);
      if (p.eta_s >= 0) o.real("eta_s", p.eta_s);
      if (!p.message.empty()) o.str("message", p.message);
      if (!paths.empty()) o.str("preview", paths.front());
      break;
    }
    case EventCmd::Partial: {
      const auto& p = ev.as<proto::Partial>();
      o.str("event", "partial").num("seq", static_cast<std::int64_t>(p.seq)).raw("data", to_json(p.data));
      break;
    }
    case EventCmd::Result: {
      const auto& r = ev.as<proto::Result>();
      o.str("event", "result").strings("outputs", paths).raw("data", to_json(r.data)).raw(
          "metrics", to_json(r.metrics));
      break;
    }
    case EventCmd::Error: {
      const auto& e = ev.as<proto::Error>();
      o.str("event", "error").str("code", proto::to_string(e.code)).str("message", e.message);
      break;
    }
    case EventCmd::Cancelled: o.str("event", "cancelled"); break;
    case EventCmd::JobInfo: return jobinfo_json(ev.as<proto::JobInfo>());
    case EventCmd::JobList:
    case EventCmd::WorkerList: o.str("event", proto::to_string(ev.kind)); break;
  }
  return o.done();
}

std::optional<std::string> replay_json(const proto::JobInfo& info) {
  JsonObject o;
  o.str("job", info.job);
  if (info.state == proto::JobState::queued) {
    o.str("event", "queued").num("position", info.position);
    if (!info.waiting_for.empty()) o.str("waiting_for", info.waiting_for);
    return o.done();
  }
  if (info.state == proto::JobState::running) {
    o.str("event", "started").str("worker", info.worker).num("attempt", info.attempts);
    return o.done();
  }
  return std::nullopt;
}

std::string jobinfo_json(const proto::JobInfo& info) {
  JsonObject o;
  o.str("job", info.job).str("event", "jobinfo").str("service", info.service);
  if (!info.model.empty()) o.str("model", info.model);
  o.str("state", proto::to_string(info.state)).num("priority", info.priority).num("attempts", info.attempts);
  if (info.state == proto::JobState::queued) {
    o.num("position", info.position);
    if (!info.waiting_for.empty()) o.str("waiting_for", info.waiting_for);
  }
  if (!info.worker.empty()) o.str("worker", info.worker);
  o.real("created_s", info.created_s).real("updated_s", info.updated_s);
  if (info.error) {
    o.raw("error", JsonObject()
                       .str("code", proto::to_string(info.error->code))
                       .str("message", info.error->message)
                       .done());
  }
  return o.done();
}

std::string service_json(const proto::ServiceInfo& s) {
  return JsonObject()
      .str("event", "service")
      .str("service", s.service)
      .num("workers", s.workers)
      .strings("models", s.models)
      .num("capacity", s.capacity)
      .num("load", s.load)
      .num("queued", s.queued)
      .done();
}

}  // namespace mmgen::cli
