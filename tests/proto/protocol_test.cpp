// protocol.hpp against common/PROTOCOL.md: the command tables (names and byte
// values) and the error-code table must agree, so spec and constants cannot
// drift apart. Also the enums' wire strings.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "mmgen/protocol.hpp"

namespace proto_test {
namespace {

using namespace mmgen::proto;

std::string read_spec() {
  std::ifstream in(MMGEN_PROTOCOL_MD);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The text from the heading line that contains `title` to the next heading
// of the same or a higher level.
std::string section(const std::string& spec, const std::string& title) {
  std::istringstream in(spec);
  std::string line, out;
  int level = 0;
  while (std::getline(in, line)) {
    const auto hashes = line.find_first_not_of('#');
    const bool heading = !line.empty() && line[0] == '#' && hashes != std::string::npos && line[hashes] == ' ';
    if (level) {
      if (heading && static_cast<int>(hashes) <= level) break;
      out += line + "\n";
    } else if (heading && line.find(title) != std::string::npos) {
      level = static_cast<int>(hashes);
    }
  }
  return out;
}

// Rows "| 0x01 | SUBMIT | ..." of a command table: name -> value.
std::map<std::string, int> command_rows(const std::string& text) {
  std::map<std::string, int> out;
  const std::regex row(R"(^\|\s*0x([0-9A-Fa-f]{2})\s*\|\s*([A-Z]+)\s*\|)");
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) {
      EXPECT_FALSE(out.count(m[2])) << "listed twice: " << m[2];
      out[m[2]] = std::stoi(m[1], nullptr, 16);
    }
  }
  return out;
}

template <class E>
std::map<std::string, int> enum_rows(E first, E last) {
  std::map<std::string, int> out;
  for (int v = static_cast<int>(first); v <= static_cast<int>(last); ++v)
    out[std::string(to_string(static_cast<E>(v)))] = v;
  return out;
}

TEST(Spec, ClientCommandTableMatchesTheHeader) {
  const auto rows = command_rows(section(read_spec(), "Client commands"));
  EXPECT_EQ(rows, enum_rows(ClientCmd::Submit, ClientCmd::Workers));
}

TEST(Spec, EventTableMatchesTheHeader) {
  const auto rows = command_rows(section(read_spec(), "Broker events"));
  EXPECT_EQ(rows, enum_rows(EventCmd::Accepted, EventCmd::WorkerList));
}

TEST(Spec, WorkerCommandTableMatchesTheHeader) {
  const auto rows = command_rows(section(read_spec(), "Worker commands"));
  EXPECT_EQ(rows, enum_rows(WorkerCmd::Ready, WorkerCmd::Disconnect));
}

TEST(Spec, ErrorCodeTableMatchesTheHeader) {
  const std::string text = section(read_spec(), "Error codes");
  const std::regex row(R"(^\|\s*`([a-z_]+)`\s*\|)");
  std::set<std::string> listed;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, row)) listed.insert(m[1]);
  }
  std::set<std::string> codes;
  for (int c = 0; c <= static_cast<int>(ErrorCode::not_finished); ++c)
    codes.insert(std::string(to_string(static_cast<ErrorCode>(c))));
  EXPECT_EQ(listed, codes);
}

TEST(Spec, ProtocolFramesAndLimitsAreThoseOfTheSpec) {
  const std::string spec = read_spec();
  EXPECT_NE(spec.find("\"MMGC01\""), std::string::npos);
  EXPECT_NE(spec.find("\"MMGW01\""), std::string::npos);
  EXPECT_EQ(kClientProtocol, "MMGC01");
  EXPECT_EQ(kWorkerProtocol, "MMGW01");
  const Limits l;
  EXPECT_EQ(l.max_body_bytes, 4u << 20);
  EXPECT_EQ(l.max_input_bytes, 64ull << 20);
  EXPECT_EQ(l.max_result_bytes, 256ull << 20);
  EXPECT_EQ(l.max_blobs, 1024u);
  EXPECT_EQ(l.max_container, 65536u);
  EXPECT_EQ(l.max_depth, 16u);
  EXPECT_EQ(kMinPriority, 0);
  EXPECT_EQ(kMaxPriority, 9);
  EXPECT_EQ(kDefaultPriority, 5);
}

// ---- wire strings ------------------------------------------------------------------------

TEST(Enums, ErrorCodesRoundTripAndUnknownIsInternal) {
  const char* names[] = {"invalid_request", "unknown_service", "unsupported", "queue_full",
                         "too_large",       "timeout",         "cancelled",   "worker_lost",
                         "internal",        "not_found",       "not_finished"};
  for (int c = 0; c <= static_cast<int>(ErrorCode::not_finished); ++c) {
    const auto code = static_cast<ErrorCode>(c);
    EXPECT_EQ(to_string(code), names[c]);
    EXPECT_EQ(error_code_from_string(names[c]), code);
  }
  EXPECT_EQ(error_code_from_string(""), ErrorCode::internal);
  EXPECT_EQ(error_code_from_string("Timeout"), ErrorCode::internal);
  EXPECT_EQ(error_code_from_string("something_new"), ErrorCode::internal);
  EXPECT_EQ(to_string(static_cast<ErrorCode>(200)), "internal");
}

TEST(Enums, JobStates) {
  const char* names[] = {"queued", "running", "succeeded", "failed", "cancelled"};
  for (int s = 0; s <= static_cast<int>(JobState::cancelled); ++s) {
    const auto st = static_cast<JobState>(s);
    EXPECT_EQ(to_string(st), names[s]);
    EXPECT_EQ(job_state_from_string(names[s]), st);
    EXPECT_EQ(is_final(st), s >= 2) << names[s];
  }
  EXPECT_EQ(job_state_from_string("done"), std::nullopt);
}

TEST(Enums, CommandNamesAndUnknownValues) {
  EXPECT_EQ(to_string(ClientCmd::Submit), "SUBMIT");
  EXPECT_EQ(to_string(EventCmd::JobInfo), "JOBINFO");
  EXPECT_EQ(to_string(WorkerCmd::Disconnect), "DISCONNECT");
  EXPECT_EQ(to_string(static_cast<ClientCmd>(0x7f)), "?");
  EXPECT_EQ(to_string(static_cast<EventCmd>(0x00)), "?");
  EXPECT_EQ(to_string(static_cast<WorkerCmd>(0xff)), "?");
}

}  // namespace
}  // namespace proto_test
