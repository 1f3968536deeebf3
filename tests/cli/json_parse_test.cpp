// The JSON reader used for --chat files.
#include <gtest/gtest.h>

#include "cli/json_parse.hpp"

namespace mmgen::cli {
namespace {

TEST(JsonParse, Values) {
  Value v = parse_json(R"( {"a": [1, -2, 3.5, 1e3, true, false, null], "s": "x\n\u00e9\ud83d\ude00\"", "o": {}} )");
  const auto& m = v.as_map();
  const auto& a = m.at("a").as_array();
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a[0], Value(1));
  EXPECT_EQ(a[1], Value(-2));
  EXPECT_EQ(a[2], Value(3.5));
  EXPECT_EQ(a[3], Value(1000.0));
  EXPECT_EQ(a[4], Value(true));
  EXPECT_EQ(a[5], Value(false));
  EXPECT_TRUE(a[6].is_null());
  EXPECT_EQ(m.at("s"), Value("x\n\xC3\xA9\xF0\x9F\x98\x80\""));
  EXPECT_TRUE(m.at("o").as_map().empty());
  // Beyond int64: a double, not an overflow.
  EXPECT_TRUE(parse_json("99999999999999999999").is_double());
}

TEST(JsonParse, RejectsMalformed) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"abc", "\"\\x\"", "tru", "[1] 2",
                          "\"\\ud800\"", "{1: 2}", "\"a\tb\"", "1e999"}) {
    EXPECT_THROW(parse_json(bad), JsonError) << bad;
  }
}

TEST(JsonParse, DepthIsBounded) {
  std::string deep(10000, '[');
  try {
    parse_json(deep);
    FAIL() << "deep nesting accepted";
  } catch (const JsonError& e) {
    EXPECT_NE(std::string(e.what()).find("nesting"), std::string::npos) << e.what();
  }
  std::string ok(std::string(kMaxJsonDepth - 1, '[') + std::string(kMaxJsonDepth - 1, ']'));
  EXPECT_NO_THROW(parse_json(ok));
}

TEST(JsonParse, ErrorsNameThePosition) {
  try {
    parse_json("{\n  \"a\": ?\n}");
    FAIL();
  } catch (const JsonError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace mmgen::cli
