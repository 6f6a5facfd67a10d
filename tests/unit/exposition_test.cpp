#include "netprobe/metrics/exposition.hpp"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {

using netprobe::metrics::ExpositionWriter;
using netprobe::metrics::Label;
using netprobe::metrics::MetricType;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string valueOf(double v) {
    std::string s;
    netprobe::metrics::appendValue(s, v);
    return s;
}

std::string valueOf(std::uint64_t v) {
    std::string s;
    netprobe::metrics::appendValue(s, v);
    return s;
}

// ---- golden output ----

TEST(Exposition, CounterFamilyWithHelpTypeAndLabels) {
    ExpositionWriter w;
    w.family("netprobe_packets_total", MetricType::Counter, "Packets seen.");
    w.sample("netprobe_packets_total", {{"iface", "eth0"}, {"dir", "ingress"}}, std::uint64_t{42});
    w.sample("netprobe_packets_total", {{"iface", "eth0"}, {"dir", "egress"}}, std::uint64_t{7});
    EXPECT_EQ(w.str(),
              "# HELP netprobe_packets_total Packets seen.\n"
              "# TYPE netprobe_packets_total counter\n"
              "netprobe_packets_total{iface=\"eth0\",dir=\"ingress\"} 42\n"
              "netprobe_packets_total{iface=\"eth0\",dir=\"egress\"} 7\n");
}

TEST(Exposition, AllTypeNames) {
    ExpositionWriter w;
    w.family("c_total", MetricType::Counter, "c");
    w.family("g", MetricType::Gauge, "g");
    w.family("h", MetricType::Histogram, "h");
    w.family("u", MetricType::Untyped, "u");
    EXPECT_EQ(w.str(),
              "# HELP c_total c\n# TYPE c_total counter\n"
              "# HELP g g\n# TYPE g gauge\n"
              "# HELP h h\n# TYPE h histogram\n"
              "# HELP u u\n# TYPE u untyped\n");
}

TEST(Exposition, NoLabelSampleHasNoBraces) {
    ExpositionWriter w;
    w.family("netprobe_up", MetricType::Gauge, "Agent is up.");
    w.sample("netprobe_up", {}, 1.0);
    EXPECT_EQ(w.str(),
              "# HELP netprobe_up Agent is up.\n"
              "# TYPE netprobe_up gauge\n"
              "netprobe_up 1\n");
}

TEST(Exposition, SpanOverloadMatchesInitializerList) {
    const std::array<Label, 2> labels{{{"a", "1"}, {"b", "2"}}};
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "m");
    w.sample("m", std::span<const Label>(labels), 0.5);
    w.sample("m", std::span<const Label>(), std::uint64_t{3});
    EXPECT_EQ(w.str(), "# HELP m m\n# TYPE m gauge\nm{a=\"1\",b=\"2\"} 0.5\nm 3\n");
}

TEST(Exposition, LabelValueEscaping) {
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "m");
    w.sample("m", {{"path", "C:\\dir\\x"}, {"q", "say \"hi\""}, {"nl", "a\nb"}}, 1.0);
    EXPECT_EQ(w.str(),
              "# HELP m m\n# TYPE m gauge\n"
              "m{path=\"C:\\\\dir\\\\x\",q=\"say \\\"hi\\\"\",nl=\"a\\nb\"} 1\n");
}

TEST(Exposition, LabelValueEscapingHelper) {
    std::string out;
    netprobe::metrics::appendEscapedLabelValue(out, "\\\"\n");
    EXPECT_EQ(out, "\\\\\\\"\\n");
    out.clear();
    netprobe::metrics::appendEscapedLabelValue(out, "plain µ text\t");
    EXPECT_EQ(out, "plain µ text\t");
    out.clear();
    netprobe::metrics::appendEscapedLabelValue(out, "");
    EXPECT_EQ(out, "");
}

TEST(Exposition, EmptyLabelValue) {
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "m");
    w.sample("m", {{"a", ""}}, 2.0);
    EXPECT_EQ(w.str(), "# HELP m m\n# TYPE m gauge\nm{a=\"\"} 2\n");
}

TEST(Exposition, HelpEscapingKeepsQuotes) {
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "back\\slash \"quoted\"\nsecond line");
    EXPECT_EQ(w.str(),
              "# HELP m back\\\\slash \"quoted\"\\nsecond line\n"
              "# TYPE m gauge\n");
}

TEST(Exposition, SpecialFloatValues) {
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "m");
    w.sample("m", {{"v", "nan"}}, kNaN);
    w.sample("m", {{"v", "pinf"}}, kInf);
    w.sample("m", {{"v", "ninf"}}, -kInf);
    EXPECT_EQ(w.str(),
              "# HELP m m\n# TYPE m gauge\n"
              "m{v=\"nan\"} NaN\n"
              "m{v=\"pinf\"} +Inf\n"
              "m{v=\"ninf\"} -Inf\n");
    EXPECT_EQ(valueOf(-kNaN), "NaN");
}

TEST(Exposition, DoubleShortestRoundTrip) {
    EXPECT_EQ(valueOf(0.0), "0");
    EXPECT_EQ(valueOf(1.0), "1");
    EXPECT_EQ(valueOf(-3.0), "-3");
    EXPECT_EQ(valueOf(0.1), "0.1");
    EXPECT_EQ(valueOf(2.5), "2.5");
    EXPECT_EQ(valueOf(0.005), "0.005");
    EXPECT_EQ(valueOf(1e-9), "1e-09");
    EXPECT_EQ(valueOf(1e21), "1e+21");
    for (const double v : {0.1, 1.0 / 3.0, 123456.789, 1e-300, 1.7976931348623157e308}) {
        EXPECT_EQ(std::strtod(valueOf(v).c_str(), nullptr), v) << valueOf(v);
    }
}

TEST(Exposition, Uint64PrintedExactly) {
    EXPECT_EQ(valueOf(std::uint64_t{0}), "0");
    EXPECT_EQ(valueOf(std::numeric_limits<std::uint64_t>::max()), "18446744073709551615");
    EXPECT_EQ(valueOf(std::uint64_t{9007199254740993}), "9007199254740993");  // 2^53 + 1

    ExpositionWriter w;
    w.family("bytes_total", MetricType::Counter, "b");
    w.sample("bytes_total", {}, std::numeric_limits<std::uint64_t>::max());
    w.sample("bytes_total", {{"k", "v"}}, std::uint64_t{9007199254740993});
    EXPECT_EQ(w.str(),
              "# HELP bytes_total b\n# TYPE bytes_total counter\n"
              "bytes_total 18446744073709551615\n"
              "bytes_total{k=\"v\"} 9007199254740993\n");
}

TEST(Exposition, HistogramSuffixes) {
    ExpositionWriter w;
    w.family("rtt_seconds", MetricType::Histogram, "RTT.");
    w.sample("rtt_seconds_bucket", {{"iface", "lo"}, {"le", "0.001"}}, std::uint64_t{1});
    w.sample("rtt_seconds_bucket", {{"iface", "lo"}, {"le", "+Inf"}}, std::uint64_t{3});
    w.sample("rtt_seconds_sum", {{"iface", "lo"}}, 0.25);
    w.sample("rtt_seconds_count", {{"iface", "lo"}}, std::uint64_t{3});
    EXPECT_EQ(w.str(),
              "# HELP rtt_seconds RTT.\n# TYPE rtt_seconds histogram\n"
              "rtt_seconds_bucket{iface=\"lo\",le=\"0.001\"} 1\n"
              "rtt_seconds_bucket{iface=\"lo\",le=\"+Inf\"} 3\n"
              "rtt_seconds_sum{iface=\"lo\"} 0.25\n"
              "rtt_seconds_count{iface=\"lo\"} 3\n");
}

TEST(Exposition, TakeMovesOutput) {
    ExpositionWriter w;
    w.reserve(1024);
    w.family("m", MetricType::Gauge, "m");
    const std::string taken = w.take();
    EXPECT_EQ(taken, "# HELP m m\n# TYPE m gauge\n");
}

// ---- name validation ----

TEST(Exposition, MetricNameValidation) {
    using netprobe::metrics::isValidMetricName;
    EXPECT_TRUE(isValidMetricName("a"));
    EXPECT_TRUE(isValidMetricName("_a"));
    EXPECT_TRUE(isValidMetricName(":a:b"));
    EXPECT_TRUE(isValidMetricName("netprobe_rx_bytes_total"));
    EXPECT_TRUE(isValidMetricName("A9_:z"));
    EXPECT_TRUE(isValidMetricName("__reserved_is_fine_for_metrics"));
    EXPECT_FALSE(isValidMetricName(""));
    EXPECT_FALSE(isValidMetricName("9a"));
    EXPECT_FALSE(isValidMetricName("a-b"));
    EXPECT_FALSE(isValidMetricName("a b"));
    EXPECT_FALSE(isValidMetricName("a.b"));
    EXPECT_FALSE(isValidMetricName("µ"));
    EXPECT_FALSE(isValidMetricName(std::string_view("a\0b", 3)));
}

TEST(Exposition, LabelNameValidation) {
    using netprobe::metrics::isValidLabelName;
    EXPECT_TRUE(isValidLabelName("a"));
    EXPECT_TRUE(isValidLabelName("_a"));
    EXPECT_TRUE(isValidLabelName("le"));
    EXPECT_TRUE(isValidLabelName("a_9"));
    EXPECT_FALSE(isValidLabelName(""));
    EXPECT_FALSE(isValidLabelName("__name__"));
    EXPECT_FALSE(isValidLabelName("__"));
    EXPECT_FALSE(isValidLabelName("9a"));
    EXPECT_FALSE(isValidLabelName("a:b"));
    EXPECT_FALSE(isValidLabelName(":a"));
    EXPECT_FALSE(isValidLabelName("a-b"));
}

// ---- error cases ----

TEST(ExpositionErrors, InvalidFamilyName) {
    ExpositionWriter w;
    EXPECT_THROW(w.family("", MetricType::Gauge, "x"), std::invalid_argument);
    EXPECT_THROW(w.family("1abc", MetricType::Gauge, "x"), std::invalid_argument);
    EXPECT_THROW(w.family("a-b", MetricType::Counter, "x"), std::invalid_argument);
    EXPECT_THROW(w.family("a{b}", MetricType::Histogram, "x"), std::invalid_argument);
    EXPECT_EQ(w.str(), "");
}

TEST(ExpositionErrors, FamilyStartedTwice) {
    ExpositionWriter w;
    w.family("a", MetricType::Gauge, "x");
    w.family("ab", MetricType::Gauge, "x");
    w.family("b", MetricType::Gauge, "x");
    EXPECT_THROW(w.family("a", MetricType::Gauge, "x"), std::invalid_argument);
    EXPECT_THROW(w.family("ab", MetricType::Counter, "y"), std::invalid_argument);
    EXPECT_THROW(w.family("b", MetricType::Gauge, "x"), std::invalid_argument);
    EXPECT_NO_THROW(w.family("c", MetricType::Gauge, "x"));
}

TEST(ExpositionErrors, SampleBeforeAnyFamily) {
    ExpositionWriter w;
    EXPECT_THROW(w.sample("m", {}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("", {}, 1.0), std::invalid_argument);
}

TEST(ExpositionErrors, SampleOfOtherFamily) {
    ExpositionWriter w;
    w.family("a", MetricType::Gauge, "x");
    w.family("b", MetricType::Gauge, "x");
    EXPECT_THROW(w.sample("a", {}, 1.0), std::invalid_argument);  // a is no longer current
    EXPECT_THROW(w.sample("bb", {}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("", {}, 1.0), std::invalid_argument);
    EXPECT_NO_THROW(w.sample("b", {}, 1.0));
}

TEST(ExpositionErrors, CounterAllowsExactNameOnly) {
    ExpositionWriter w;
    w.family("rx_total", MetricType::Counter, "x");
    EXPECT_THROW(w.sample("rx_total_bucket", {{"le", "1"}}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(w.sample("rx_total_sum", {}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(w.sample("rx_total_count", {}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(w.sample("rx", {}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(w.sample("rx_totals", {}, std::uint64_t{1}), std::invalid_argument);
}

TEST(ExpositionErrors, GaugeAndUntypedAllowExactNameOnly) {
    ExpositionWriter w;
    w.family("g", MetricType::Gauge, "x");
    EXPECT_THROW(w.sample("g_sum", {}, 1.0), std::invalid_argument);
    w.family("u", MetricType::Untyped, "x");
    EXPECT_THROW(w.sample("u_count", {}, 1.0), std::invalid_argument);
    EXPECT_NO_THROW(w.sample("u", {}, 1.0));
}

TEST(ExpositionErrors, HistogramRejectsBareAndUnknownSuffix) {
    ExpositionWriter w;
    w.family("h", MetricType::Histogram, "x");
    EXPECT_THROW(w.sample("h", {}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("h_total", {}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("h_buckets", {{"le", "1"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("h_bucket_sum", {}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("x_sum", {}, 1.0), std::invalid_argument);
}

TEST(ExpositionErrors, HistogramBucketWithoutLe) {
    ExpositionWriter w;
    w.family("h", MetricType::Histogram, "x");
    EXPECT_THROW(w.sample("h_bucket", {}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(w.sample("h_bucket", {{"iface", "lo"}}, std::uint64_t{1}), std::invalid_argument);
}

TEST(ExpositionErrors, InvalidLabelName) {
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "x");
    const std::string before = w.str();
    EXPECT_THROW(w.sample("m", {{"", "v"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("m", {{"__name__", "v"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("m", {{"ok", "v"}, {"__x", "v"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("m", {{"9x", "v"}}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_THROW(w.sample("m", {{"a:b", "v"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("m", {{"a-b", "v"}}, 1.0), std::invalid_argument);
    EXPECT_EQ(w.str(), before) << "a rejected sample must not leave partial output";
}

TEST(ExpositionErrors, DuplicateLabelName) {
    ExpositionWriter w;
    w.family("m", MetricType::Gauge, "x");
    const std::string before = w.str();
    EXPECT_THROW(w.sample("m", {{"a", "1"}, {"a", "2"}}, 1.0), std::invalid_argument);
    EXPECT_THROW(w.sample("m", {{"a", "1"}, {"b", "2"}, {"a", "1"}}, std::uint64_t{1}), std::invalid_argument);
    EXPECT_EQ(w.str(), before);
    EXPECT_NO_THROW(w.sample("m", {{"a", "1"}, {"ab", "2"}}, 1.0));
}

// ---- promtool ----

TEST(ExpositionPromtool, RenderedExpositionPassesPromtoolCheckMetrics) {
    constexpr const char* kPromtool = "/usr/bin/promtool";
    ASSERT_EQ(::access(kPromtool, X_OK), 0)
        << kPromtool << " not found; install the Debian package 'prometheus' (scripts/setup does)";

    ExpositionWriter w;
    w.family("netprobe_rx_bytes_total", MetricType::Counter, "Bytes received, by interface.\nSecond \\ line.");
    w.sample("netprobe_rx_bytes_total", {{"iface", "eth0"}}, std::numeric_limits<std::uint64_t>::max());
    w.sample("netprobe_rx_bytes_total", {{"iface", "we\"ird\\name\nx"}}, std::uint64_t{9007199254740993});
    w.family("netprobe_active_flows", MetricType::Gauge, "Flows currently tracked.");
    w.sample("netprobe_active_flows", {}, 12.0);
    w.sample("netprobe_active_flows", {{"iface", "lo"}}, kNaN);
    w.sample("netprobe_active_flows", {{"iface", "pinf"}}, kInf);
    w.sample("netprobe_active_flows", {{"iface", "ninf"}}, -kInf);
    w.family("netprobe_rtt_seconds", MetricType::Histogram, "Round-trip time.");
    w.sample("netprobe_rtt_seconds_bucket", {{"iface", "eth0"}, {"le", "0.001"}}, std::uint64_t{1});
    w.sample("netprobe_rtt_seconds_bucket", {{"iface", "eth0"}, {"le", "0.01"}}, std::uint64_t{4});
    w.sample("netprobe_rtt_seconds_bucket", {{"iface", "eth0"}, {"le", "+Inf"}}, std::uint64_t{5});
    w.sample("netprobe_rtt_seconds_sum", {{"iface", "eth0"}}, 0.0375);
    w.sample("netprobe_rtt_seconds_count", {{"iface", "eth0"}}, std::uint64_t{5});
    w.family("netprobe_build_info", MetricType::Untyped, "Build information.");
    w.sample("netprobe_build_info", {{"version", "0.1.0"}}, 1.0);
    const std::string text = w.str();

    char outPath[] = "/tmp/netprobe_promtool_XXXXXX";
    const int fd = ::mkstemp(outPath);
    ASSERT_GE(fd, 0);
    ::close(fd);
    const std::string cmd = std::string(kPromtool) + " check metrics >" + outPath + " 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "w");
    ASSERT_NE(pipe, nullptr);
    const std::size_t written = std::fwrite(text.data(), 1, text.size(), pipe);
    const int status = ::pclose(pipe);

    std::string output;
    if (FILE* f = std::fopen(outPath, "r")) {
        std::array<char, 4096> buf;
        std::size_t n = 0;
        while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) output.append(buf.data(), n);
        std::fclose(f);
    }
    ::unlink(outPath);

    EXPECT_EQ(written, text.size());
    ASSERT_TRUE(WIFEXITED(status)) << "promtool did not exit normally; output:\n" << output;
    EXPECT_EQ(WEXITSTATUS(status), 0) << "promtool output:\n" << output << "\ninput:\n" << text;
    EXPECT_EQ(output, "") << "promtool reported problems:\n" << output << "\ninput:\n" << text;
}

}  // namespace
