#include "netprobe/util/duration.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace {

using netprobe::util::formatDuration;
using netprobe::util::parseDuration;
using std::chrono::nanoseconds;

constexpr std::int64_t kUs = 1'000;
constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kS = 1'000'000'000;
constexpr std::int64_t kMin = 60 * kS;
constexpr std::int64_t kH = 60 * kMin;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

template <typename Case>
std::string caseName(const testing::TestParamInfo<Case>& info) {
    return std::string(info.param.name);
}

// ---- valid input ----

struct ValidCase {
    std::string_view name;
    std::string_view input;
    std::int64_t nanos;
};

class ParseDurationValid : public testing::TestWithParam<ValidCase> {};

TEST_P(ParseDurationValid, ExactNanoseconds) {
    const ValidCase& c = GetParam();
    const auto result = parseDuration(c.input);
    ASSERT_TRUE(result.has_value()) << "input \"" << c.input << "\": " << result.error();
    EXPECT_EQ(result->count(), c.nanos) << "input \"" << c.input << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    Duration, ParseDurationValid,
    testing::Values(
        ValidCase{"Zero", "0", 0},
        ValidCase{"PlusZero", "+0", 0},
        ValidCase{"ZeroSeconds", "0s", 0},
        ValidCase{"ZeroPointZeroHours", "0.0h", 0},
        ValidCase{"Nanoseconds", "100ns", 100},
        ValidCase{"MicrosecondsAscii", "7us", 7 * kUs},
        ValidCase{"MicrosecondsMicroSign", "7\u00b5s", 7 * kUs},
        ValidCase{"MicrosecondsGreekMu", "7\u03bcs", 7 * kUs},
        ValidCase{"Milliseconds", "300ms", 300 * kMs},
        ValidCase{"Seconds", "5s", 5 * kS},
        ValidCase{"Minutes", "2m", 2 * kMin},
        ValidCase{"Hours", "1h", kH},
        ValidCase{"Days", "7d", 7 * 24 * kH},
        ValidCase{"DaysHours", "1d12h", 36 * kH},
        ValidCase{"FractionalHours", "1.5h", kH + 30 * kMin},
        ValidCase{"FractionalSeconds", "1.5s", 1500 * kMs},
        ValidCase{"LeadingDotFraction", ".5s", 500 * kMs},
        ValidCase{"TrailingDot", "5.s", 5 * kS},
        ValidCase{"FractionalMilliseconds", "2.25ms", 2250 * kUs},
        ValidCase{"FractionBelowNanosecondTruncates", "1.9ns", 1},
        ValidCase{"TinyFractionIsZero", "0.0000000001s", 0},
        ValidCase{"NineFractionDigits", "0.000000001s", 1},
        ValidCase{"ManyFractionDigits", "1.00000000000000000000000000001s", kS},
        ValidCase{"OneThirdMinute", "0.3333333333333333333m", 19'999'999'999},
        ValidCase{"HoursMinutes", "2h45m", 2 * kH + 45 * kMin},
        ValidCase{"HoursMinutesSeconds", "1h0m0s", kH},
        ValidCase{"AllUnits", "1h2m3s4ms5us6ns", kH + 2 * kMin + 3 * kS + 4 * kMs + 5 * kUs + 6},
        ValidCase{"RepeatedUnits", "1s1s", 2 * kS},
        ValidCase{"MinutesThenMs", "1m30s500ms", kMin + 30 * kS + 500 * kMs},
        ValidCase{"LeadingPlus", "+5s", 5 * kS},
        ValidCase{"LeadingZeros", "0005s", 5 * kS},
        ValidCase{"MaxInt64Nanoseconds", "9223372036854775807ns", kMax},
        ValidCase{"MaxInt64Composite", "2562047h47m16s854ms775us807ns", kMax},
        ValidCase{"MaxAsFractionalSeconds", "9223372036.854775807s", kMax},
        ValidCase{"LargeHours", "2562047h", 2562047 * kH}),
    caseName<ValidCase>);

// ---- invalid input ----

struct InvalidCase {
    std::string_view name;
    std::string_view input;
    std::string_view problem;  // must appear in the error message
};

class ParseDurationInvalid : public testing::TestWithParam<InvalidCase> {};

TEST_P(ParseDurationInvalid, ErrorNamesProblem) {
    const InvalidCase& c = GetParam();
    const auto result = parseDuration(c.input);
    ASSERT_FALSE(result.has_value()) << "input \"" << c.input << "\" parsed as " << result->count() << "ns";
    const std::string& msg = result.error();
    EXPECT_TRUE(msg.starts_with("invalid duration ")) << msg;
    EXPECT_NE(msg.find(c.problem), std::string::npos) << "error \"" << msg << "\" lacks \"" << c.problem << "\"";
}

INSTANTIATE_TEST_SUITE_P(
    Duration, ParseDurationInvalid,
    testing::Values(
        InvalidCase{"Empty", "", "empty"},
        InvalidCase{"SignOnly", "+", "expected a number"},
        InvalidCase{"MissingUnit", "5", "missing unit"},
        InvalidCase{"MissingUnitQuotesInput", "5", "\"5\""},
        InvalidCase{"MissingUnitOnLastComponent", "1h30", "missing unit"},
        InvalidCase{"MissingUnitFraction", "1.5", "missing unit"},
        InvalidCase{"ZeroPointZeroWithoutUnit", "0.0", "missing unit"},
        InvalidCase{"DoubleDot", "1.5.5s", "missing unit"},
        InvalidCase{"UnknownUnit", "5x", "unknown unit \"x\""},
        InvalidCase{"UnknownUnitQuotesInput", "5x", "invalid duration \"5x\""},
        InvalidCase{"UnknownUnitWeeks", "1w", "unknown unit \"w\""},
        InvalidCase{"UnknownUnitUppercase", "5S", "unknown unit \"S\""},
        InvalidCase{"UnknownUnitSeconds", "5sec", "unknown unit \"sec\""},
        InvalidCase{"UnknownUnitMicroOnly", "5\u00b5", "unknown unit"},
        InvalidCase{"TrailingSpace", "5s ", "unknown unit \"s \""},
        InvalidCase{"Exponent", "1e3s", "unknown unit \"e\""},
        InvalidCase{"Negative", "-5s", "negative"},
        InvalidCase{"NegativeZero", "-0", "negative"},
        InvalidCase{"DoubleSign", "+-5s", "expected a number"},
        InvalidCase{"Garbage", "abc", "expected a number"},
        InvalidCase{"UnitOnly", "s", "expected a number"},
        InvalidCase{"DotOnly", ".s", "expected a number"},
        InvalidCase{"LeadingSpace", " 5s", "expected a number"},
        InvalidCase{"ControlCharQuoted", "5\ts", "\\x09"},
        InvalidCase{"OverflowNanoseconds", "9223372036854775808ns", "overflow"},
        InvalidCase{"OverflowHours", "2562048h", "overflow"},
        InvalidCase{"OverflowSum", "2562047h47m16s854ms775us808ns", "overflow"},
        InvalidCase{"OverflowFraction", "9223372036.854775808s", "overflow"},
        InvalidCase{"OverflowHugeInteger", "99999999999999999999999999999s", "overflow"}),
    caseName<InvalidCase>);

// ---- formatting ----

struct FormatCase {
    std::string_view name;
    std::int64_t nanos;
    std::string_view text;
};

class FormatDuration : public testing::TestWithParam<FormatCase> {};

TEST_P(FormatDuration, MatchesGoAndRoundTrips) {
    const FormatCase& c = GetParam();
    EXPECT_EQ(formatDuration(nanoseconds{c.nanos}), c.text);
    if (c.nanos >= 0) {
        const auto parsed = parseDuration(c.text);
        ASSERT_TRUE(parsed.has_value()) << parsed.error();
        EXPECT_EQ(parsed->count(), c.nanos);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Duration, FormatDuration,
    testing::Values(
        FormatCase{"Zero", 0, "0s"},
        FormatCase{"OneNanosecond", 1, "1ns"},
        FormatCase{"Nanoseconds", 100, "100ns"},
        FormatCase{"OneMicrosecond", kUs, "1\u00b5s"},
        FormatCase{"FractionalMicroseconds", 1500, "1.5\u00b5s"},
        FormatCase{"MicrosecondsWithNanos", 999'999, "999.999\u00b5s"},
        FormatCase{"Milliseconds", 500 * kMs, "500ms"},
        FormatCase{"FractionalMilliseconds", 2250 * kUs, "2.25ms"},
        FormatCase{"MillisecondsWithNanos", 1'000'001, "1.000001ms"},
        FormatCase{"OneSecond", kS, "1s"},
        FormatCase{"FractionalSeconds", 1500 * kMs, "1.5s"},
        FormatCase{"SecondsWithNanos", kS + 1, "1.000000001s"},
        FormatCase{"OneMinute", kMin, "1m0s"},
        FormatCase{"MinuteThirty", kMin + 30 * kS, "1m30s"},
        FormatCase{"OneHour", kH, "1h0m0s"},
        FormatCase{"HourMinutesSeconds", 2 * kH + 45 * kMin + 5 * kS, "2h45m5s"},
        FormatCase{"HourAndFraction", kH + 500 * kMs, "1h0m0.5s"},
        FormatCase{"Max", kMax, "2562047h47m16.854775807s"},
        FormatCase{"NegativeSeconds", -5 * kS, "-5s"},
        FormatCase{"NegativeMicros", -1500, "-1.5\u00b5s"},
        FormatCase{"Min", std::numeric_limits<std::int64_t>::min(), "-2562047h47m16.854775808s"}),
    caseName<FormatCase>);

TEST(DurationRoundTrip, ParseFormatParseIsStable) {
    for (std::int64_t n = 1; n > 0 && n <= kMax / 7; n = n * 7 + 3) {
        const std::string text = formatDuration(nanoseconds{n});
        const auto parsed = parseDuration(text);
        ASSERT_TRUE(parsed.has_value()) << text << ": " << parsed.error();
        EXPECT_EQ(parsed->count(), n) << text;
    }
}

}  // namespace
