// Prometheus text exposition format 0.0.4 writer.
// Guarantees: one HELP and one TYPE line per family, written before its samples;
// label values escaped (\\, \", \n); metric and label names validated; integer
// counters printed exactly (no double rounding above 2^53); NaN/+Inf/-Inf spelled
// as Prometheus expects.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace netprobe::metrics {

enum class MetricType { Counter, Gauge, Histogram, Untyped };

struct Label {
    std::string_view name;
    std::string_view value;
};

class ExpositionWriter {
public:
    // Starts a metric family. Throws std::invalid_argument on an invalid name or a
    // family started twice (programming errors, caught by the unit tests).
    void family(std::string_view name, MetricType type, std::string_view help);

    // One sample of the current family. For histograms, name may carry the
    // _bucket/_sum/_count suffix. Label names are validated; values escaped.
    void sample(std::string_view name, std::span<const Label> labels, double value);
    void sample(std::string_view name, std::span<const Label> labels, std::uint64_t value);
    void sample(std::string_view name, std::initializer_list<Label> labels, double value) {
        sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
    }
    void sample(std::string_view name, std::initializer_list<Label> labels, std::uint64_t value) {
        sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
    }

    [[nodiscard]] const std::string& str() const { return out_; }
    [[nodiscard]] std::string take() { return std::move(out_); }
    void reserve(std::size_t n) { out_.reserve(n); }

private:
    // Validates name/labels against the current family and writes `name{labels} `.
    void beginSample(std::string_view name, std::span<const Label> labels);
    void writeLabels(std::span<const Label> labels);
    std::string out_;
    std::string current_;  // name of the current family
    MetricType currentType_ = MetricType::Untyped;
    std::string families_; // "\n"-separated names already started (duplicate check)
};

[[nodiscard]] bool isValidMetricName(std::string_view name);
[[nodiscard]] bool isValidLabelName(std::string_view name);
void appendEscapedLabelValue(std::string& out, std::string_view value);
void appendHelpText(std::string& out, std::string_view help);  // escapes \\ and \n
void appendValue(std::string& out, double value);
void appendValue(std::string& out, std::uint64_t value);

}  // namespace netprobe::metrics
