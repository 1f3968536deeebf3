// Value's JSON form (what `mmgen --json` prints) and the typed Params getters
// that services use to read job params with errors naming the key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "mmgen/protocol.hpp"
#include "mmgen/value.hpp"

namespace proto_test {
namespace {

using mmgen::json_escape;
using mmgen::Params;
using mmgen::Value;
using mmgen::ValueArray;
using mmgen::ValueMap;
using mmgen::proto::ErrorCode;
using mmgen::proto::ProtocolError;

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Json, Scalars) {
  EXPECT_EQ(Value().to_json(), "null");
  EXPECT_EQ(Value(nullptr).to_json(), "null");
  EXPECT_EQ(Value(true).to_json(), "true");
  EXPECT_EQ(Value(false).to_json(), "false");
  EXPECT_EQ(Value(0).to_json(), "0");
  EXPECT_EQ(Value(-42).to_json(), "-42");
  EXPECT_EQ(Value(std::numeric_limits<std::int64_t>::min()).to_json(), "-9223372036854775808");
  EXPECT_EQ(Value(std::numeric_limits<std::int64_t>::max()).to_json(), "9223372036854775807");
  EXPECT_EQ(Value("").to_json(), "\"\"");
  EXPECT_EQ(Value(Value::Binary{std::string(1234, '\0')}).to_json(), "{\"$binary\":1234}");
}

TEST(Json, DoublesAreShortestAndStayDoubles) {
  EXPECT_EQ(Value(0.1).to_json(), "0.1");
  EXPECT_EQ(Value(1.0).to_json(), "1.0");  // a whole double still reads back as a double
  EXPECT_EQ(Value(-0.0).to_json(), "-0.0");
  EXPECT_EQ(Value(100.0).to_json(), "100.0");
  EXPECT_EQ(Value(1e300).to_json(), "1e+300");
  EXPECT_EQ(Value(-2.5e-300).to_json(), "-2.5e-300");
  EXPECT_EQ(Value(1.0 / 3.0).to_json(), "0.3333333333333333");
}

TEST(Json, DoublesRoundTripExactly) {
  const double samples[] = {0.1,
                            1.0 / 3.0,
                            2.0 / 3.0,
                            1e-7,
                            123456789.123456789,
                            9007199254740993.0,
                            std::numeric_limits<double>::min(),
                            std::numeric_limits<double>::denorm_min(),
                            std::numeric_limits<double>::max(),
                            -std::numeric_limits<double>::max(),
                            std::nextafter(1.0, 2.0),
                            6.02214076e23};
  for (double d : samples) {
    const std::string s = Value(d).to_json();
    char* end = nullptr;
    const double back = std::strtod(s.c_str(), &end);
    EXPECT_EQ(*end, '\0') << s;
    EXPECT_EQ(std::memcmp(&back, &d, sizeof d), 0) << s;
  }
}

TEST(Json, NonFiniteDoublesAreNull) {
  EXPECT_EQ(Value(std::nan("")).to_json(), "null");
  EXPECT_EQ(Value(std::numeric_limits<double>::infinity()).to_json(), "null");
  EXPECT_EQ(Value(-std::numeric_limits<double>::infinity()).to_json(), "null");
  EXPECT_EQ(Value(ValueArray{std::nan(""), 1.5}).to_json(), "[null,1.5]");
}

TEST(Json, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_escape("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_escape("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(json_escape(std::string("\0\x01\x1f", 3)), "\"\\u0000\\u0001\\u001f\"");
  EXPECT_EQ(json_escape("\x7f/ <>&'"), "\"\x7f/ <>&'\"");  // legal in JSON strings as they are
}

TEST(Json, ValidUtf8PassesThrough) {
  const std::string s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";  // é € 😀 U+10FFFF
  EXPECT_EQ(json_escape(s), "\"" + s + "\"");
}

TEST(Json, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(json_escape("\x80"), "\"" + kFFFD + "\"");                       // lone continuation
  EXPECT_EQ(json_escape("a\xff" "b"), "\"a" + kFFFD + "b\"");                // never valid
  EXPECT_EQ(json_escape("\xe2\x82"), "\"" + kFFFD + kFFFD + "\"");          // cut short at the end
  EXPECT_EQ(json_escape("\xe2\x82x"), "\"" + kFFFD + kFFFD + "x\"");        // cut short mid-string
  EXPECT_EQ(json_escape("\xc0\xaf"), "\"" + kFFFD + kFFFD + "\"");          // overlong '/'
  EXPECT_EQ(json_escape("\xe0\x80\xaf"), "\"" + kFFFD + kFFFD + kFFFD + "\"");  // overlong
  EXPECT_EQ(json_escape("\xed\xa0\x80"), "\"" + kFFFD + kFFFD + kFFFD + "\"");  // surrogate
  EXPECT_EQ(json_escape("\xf4\x90\x80\x80"), "\"" + kFFFD + kFFFD + kFFFD + kFFFD + "\"");  // > U+10FFFF
  EXPECT_EQ(json_escape("\xf5\x80"), "\"" + kFFFD + kFFFD + "\"");
}

TEST(Json, ContainersNestAndMapsSortByKey) {
  ValueMap m{{"z", ValueArray{1, "two", ValueArray{}, ValueMap{}}},
             {"a", ValueMap{{"k\"q", Value::Binary{"xy"}}, {"n", nullptr}}},
             {"m", 2.5}};
  const std::string want =
      "{\"a\":{\"k\\\"q\":{\"$binary\":2},\"n\":null},\"m\":2.5,\"z\":[1,\"two\",[],{}]}";
  EXPECT_EQ(Value(m).to_json(), want);
  EXPECT_EQ(mmgen::to_json(m), want);
  EXPECT_EQ(mmgen::to_json(ValueMap{}), "{}");
}

TEST(Value, KindsAndAccessors) {
  const Value i(7), d(7.5), s("x"), b(Value::Binary{"\x01"});
  EXPECT_TRUE(i.is_int() && i.is_number() && !i.is_double());
  EXPECT_TRUE(d.is_double() && d.is_number());
  EXPECT_EQ(i.as_double(), 7.0);  // an integer reads as a double on request
  EXPECT_TRUE(s.is_string() && b.is_binary());
  EXPECT_THROW((void)s.as_int(), std::bad_variant_access);
  EXPECT_NE(Value(1), Value(1.0));  // different kinds are different values
}

// ---- Params ----------------------------------------------------------------------------

std::string params_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_request);
    return e.what();
  }
  return "<no error>";
}

const Params kParams(ValueMap{{"n", 5},
                              {"whole", 3.0},
                              {"frac", 3.5},
                              {"huge", 1e19},
                              {"s", "text"},
                              {"t", true},
                              {"null", nullptr},
                              {"nan", std::nan("")},
                              {"arr", ValueArray{1}}});

TEST(Params, IntegerGetter) {
  EXPECT_EQ(kParams.get_int("n", 0), 5);
  EXPECT_EQ(kParams.get_int("absent", 11), 11);
  EXPECT_EQ(kParams.get_int("null", 12), 12);  // null means "use the default"
  EXPECT_EQ(kParams.get_int("whole", 0), 3);   // a whole double is an integer
  EXPECT_EQ(kParams.get_int("n", 0, 5, 5), 5);
  EXPECT_EQ(params_error([] { kParams.get_int("frac", 0); }), "param 'frac': expected an integer, got 3.5");
  EXPECT_EQ(params_error([] { kParams.get_int("huge", 0); }),
            "param 'huge': expected an integer, got 1e+19");
  EXPECT_EQ(params_error([] { kParams.get_int("s", 0); }), "param 's': expected an integer, got \"text\"");
  EXPECT_EQ(params_error([] { kParams.get_int("t", 0); }), "param 't': expected an integer, got true");
  EXPECT_EQ(params_error([] { kParams.get_int("arr", 0); }), "param 'arr': expected an integer, got [1]");
  EXPECT_EQ(params_error([] { kParams.get_int("n", 0, 6, 10); }),
            "param 'n': expected an integer in [6, 10], got 5");
  EXPECT_EQ(params_error([] { kParams.get_int("n", 0, 0, 4); }),
            "param 'n': expected an integer in [0, 4], got 5");
}

TEST(Params, DoubleGetter) {
  EXPECT_EQ(kParams.get_double("frac", 0), 3.5);
  EXPECT_EQ(kParams.get_double("n", 0), 5.0);  // an integer is a number
  EXPECT_EQ(kParams.get_double("absent", 0.25), 0.25);
  EXPECT_EQ(kParams.get_double("null", 0.5), 0.5);
  EXPECT_EQ(params_error([] { kParams.get_double("s", 0); }), "param 's': expected a number, got \"text\"");
  EXPECT_EQ(params_error([] { kParams.get_double("frac", 0, 0, 1); }),
            "param 'frac': expected a number in [0.0, 1.0], got 3.5");
  EXPECT_EQ(params_error([] { kParams.get_double("n", 0, 0.5, 1.5); }),
            "param 'n': expected a number in [0.5, 1.5], got 5");
  // NaN is in no range.
  EXPECT_EQ(params_error([] { kParams.get_double("nan", 0); }),
            "param 'nan': expected a number in [-1e+300, 1e+300], got null");
}

TEST(Params, BoolAndStringGetters) {
  EXPECT_TRUE(kParams.get_bool("t", false));
  EXPECT_FALSE(kParams.get_bool("absent", false));
  EXPECT_TRUE(kParams.get_bool("null", true));
  EXPECT_EQ(params_error([] { kParams.get_bool("n", false); }), "param 'n': expected a boolean, got 5");
  EXPECT_EQ(kParams.get_string("s", ""), "text");
  EXPECT_EQ(kParams.get_string("absent", "dflt"), "dflt");
  EXPECT_EQ(params_error([] { kParams.get_string("n", ""); }), "param 'n': expected a string, got 5");
  EXPECT_EQ(params_error([] { kParams.get_string("t", ""); }), "param 't': expected a string, got true");
}

TEST(Params, KeysAreEscapedInMessages) {
  const Params p(ValueMap{{"a\nb\"c", "x"}});
  EXPECT_EQ(params_error([&] { p.get_int("a\nb\"c", 0); }),
            "param 'a\\nb\\\"c': expected an integer, got \"x\"");
}

TEST(Params, HasAndMap) {
  EXPECT_TRUE(kParams.has("null"));
  EXPECT_FALSE(kParams.has("absent"));
  EXPECT_EQ(kParams.map().size(), 9u);
  EXPECT_EQ(Params().get_int("x", 3), 3);
}

}  // namespace
}  // namespace proto_test
