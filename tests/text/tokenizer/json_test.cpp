#include "mmgen/text/json.hpp"

#include <gtest/gtest.h>

#include "mmgen/protocol.hpp"

namespace mmgen::text {
namespace {

TEST(Json, ParsesNestedDocumentKeepingKeyOrder) {
  Json v = parse_json(R"( {"z": 1, "a": [true, false, null, -2.5e3, "x\u00e9\n"], "m": {}} )");
  const auto& obj = v.as_object();
  ASSERT_EQ(obj.size(), 3u);
  EXPECT_EQ(obj[0].first, "z");
  EXPECT_EQ(obj[1].first, "a");
  EXPECT_EQ(obj[2].first, "m");
  const auto& arr = v.find("a")->as_array();
  EXPECT_TRUE(arr[0].as_bool());
  EXPECT_TRUE(arr[2].is_null());
  EXPECT_DOUBLE_EQ(arr[3].as_double(), -2500.0);
  EXPECT_EQ(arr[4].as_string(), "x\xC3\xA9\n");
}

TEST(Json, DecodesSurrogatePairs) {
  EXPECT_EQ(parse_json(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");
}

TEST(Json, DumpsLikePythonJsonDumps) {
  // json.dumps({"type": "function", "f": {"a": [1, 2.0, 1e-05, 1e+16, 0.1]}, "s": "é\"\\\t\x01"},
  //            ensure_ascii=False)
  Json v = parse_json(R"({"type": "function", "f": {"a": [1, 2.0, 1e-5, 1e16, 0.1, 123456.789]},
                          "s": "\u00e9\"\\\t\u0001", "b": [true, null]})");
  EXPECT_EQ(dump_json(v),
            "{\"type\": \"function\", \"f\": {\"a\": [1, 2.0, 1e-05, 1e+16, 0.1, 123456.789]}, "
            "\"s\": \"\xC3\xA9\\\"\\\\\\t\\u0001\", \"b\": [true, null]}");
}

TEST(Json, PythonFloatReprBoundaries) {
  EXPECT_EQ(dump_json(Json(1e15)), "1000000000000000.0");
  EXPECT_EQ(dump_json(Json(1e16)), "1e+16");
  EXPECT_EQ(dump_json(Json(0.0001)), "0.0001");
  EXPECT_EQ(dump_json(Json(0.00001)), "1e-05");
  EXPECT_EQ(dump_json(Json(-1.5e-7)), "-1.5e-07");
  EXPECT_EQ(dump_json(Json(1.7976931348623157e308)), "1.7976931348623157e+308");
  EXPECT_EQ(dump_json(Json(0.0)), "0.0");
}

TEST(Json, BigIntegersBecomeDoubles) {
  EXPECT_TRUE(parse_json("123456789012345678901234567890").is_number());
  EXPECT_FALSE(parse_json("123456789012345678901234567890").is_int());
  EXPECT_EQ(parse_json("-9223372036854775808").as_int(), INT64_MIN);
}

TEST(Json, MalformedInputIsATypedErrorWithOffset) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "01", "1.", "\"\\x\"",
                          "\"\\ud800\"", "[1] 2", "{\"a\":\"\x01\"}"}) {
    try {
      parse_json(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const proto::ProtocolError& e) {
      EXPECT_EQ(e.code(), proto::ErrorCode::invalid_request);
      EXPECT_NE(std::string(e.what()).find("at byte"), std::string::npos) << e.what();
    }
  }
}

TEST(Json, DeepNestingIsRejectedNotACrash) {
  std::string deep(100000, '[');
  EXPECT_THROW(parse_json(deep), proto::ProtocolError);
}

TEST(Json, TypeMismatchNamesTheField) {
  Json v = parse_json(R"({"n": "x"})");
  try {
    v.find("n")->as_int("model.vocab");
    FAIL();
  } catch (const proto::ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("model.vocab"), std::string::npos);
  }
}

}  // namespace
}  // namespace mmgen::text
