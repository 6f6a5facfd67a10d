// Prometheus text exposition format 0.0.4 writer (see exposition.hpp).
#include "netprobe/metrics/exposition.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <system_error>

namespace netprobe::metrics {
namespace {

constexpr bool isAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool isAsciiDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view typeName(MetricType type) {
    switch (type) {
    case MetricType::Counter: return "counter";
    case MetricType::Gauge: return "gauge";
    case MetricType::Histogram: return "histogram";
    case MetricType::Untyped: return "untyped";
    }
    throw std::invalid_argument("exposition: unknown metric type");
}

// Appends `text`, replacing each character that needs escaping. `quote` selects
// whether '"' is escaped (label values) or left as is (HELP text).
template <bool EscapeQuote>
void appendEscaped(std::string& out, std::string_view text) {
    std::size_t run = 0;  // start of the pending run of characters copied verbatim
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const char* rep = nullptr;
        if (c == '\\') {
            rep = "\\\\";
        } else if (c == '\n') {
            rep = "\\n";
        } else if (EscapeQuote && c == '"') {
            rep = "\\\"";
        } else {
            continue;
        }
        out.append(text.data() + run, i - run);
        out.append(rep, 2);
        run = i + 1;
    }
    out.append(text.data() + run, text.size() - run);
}

[[noreturn]] void fail(std::string message) { throw std::invalid_argument("exposition: " + message); }

}  // namespace

bool isValidMetricName(std::string_view name) {
    if (name.empty()) return false;
    const char first = name.front();
    if (!isAsciiLetter(first) && first != '_' && first != ':') return false;
    for (const char c : name.substr(1)) {
        if (!isAsciiLetter(c) && !isAsciiDigit(c) && c != '_' && c != ':') return false;
    }
    return true;
}

bool isValidLabelName(std::string_view name) {
    if (name.empty() || name.starts_with("__")) return false;
    const char first = name.front();
    if (!isAsciiLetter(first) && first != '_') return false;
    for (const char c : name.substr(1)) {
        if (!isAsciiLetter(c) && !isAsciiDigit(c) && c != '_') return false;
    }
    return true;
}

void appendEscapedLabelValue(std::string& out, std::string_view value) { appendEscaped<true>(out, value); }

void appendHelpText(std::string& out, std::string_view help) { appendEscaped<false>(out, help); }

void appendValue(std::string& out, double value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value > 0 ? "+Inf" : "-Inf";
        return;
    }
    std::array<char, 32> buf;  // shortest round-trip double is at most 24 characters
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    if (ec != std::errc{}) fail("cannot format value");
    out.append(buf.data(), end);
}

void appendValue(std::string& out, std::uint64_t value) {
    std::array<char, 20> buf;  // 18446744073709551615 has 20 digits
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), value);
    if (ec != std::errc{}) fail("cannot format value");
    out.append(buf.data(), end);
}

void ExpositionWriter::family(std::string_view name, MetricType type, std::string_view help) {
    if (!isValidMetricName(name)) fail("invalid metric name \"" + std::string(name) + "\"");

    // families_ holds every started name, each terminated by '\n' (names never
    // contain '\n', so a match aligned to a record boundary is an exact match).
    for (std::size_t pos = 0; pos < families_.size();) {
        const std::size_t nl = families_.find('\n', pos);
        if (std::string_view(families_).substr(pos, nl - pos) == name) {
            fail("metric family \"" + std::string(name) + "\" started twice");
        }
        pos = nl + 1;
    }
    families_.append(name);
    families_.push_back('\n');

    current_.assign(name);
    currentType_ = type;

    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    appendHelpText(out_, help);
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += typeName(type);
    out_ += '\n';
}

void ExpositionWriter::beginSample(std::string_view name, std::span<const Label> labels) {
    if (current_.empty()) fail("sample \"" + std::string(name) + "\" written before any family");

    bool belongs = false;
    bool isBucket = false;
    if (name.starts_with(current_)) {
        const std::string_view suffix = name.substr(current_.size());
        if (currentType_ == MetricType::Histogram) {
            isBucket = suffix == "_bucket";
            belongs = isBucket || suffix == "_sum" || suffix == "_count";
        } else {
            belongs = suffix.empty();
        }
    }
    if (!belongs) {
        fail("sample \"" + std::string(name) + "\" does not belong to family \"" + current_ + "\"");
    }

    bool hasLe = false;
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const std::string_view labelName = labels[i].name;
        if (!isValidLabelName(labelName)) {
            fail("invalid label name \"" + std::string(labelName) + "\" on sample \"" + std::string(name) + "\"");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (labels[j].name == labelName) {
                fail("duplicate label \"" + std::string(labelName) + "\" on sample \"" + std::string(name) + "\"");
            }
        }
        hasLe = hasLe || labelName == "le";
    }
    if (isBucket && !hasLe) fail("histogram bucket \"" + std::string(name) + "\" has no \"le\" label");

    out_ += name;
    writeLabels(labels);
    out_ += ' ';
}

void ExpositionWriter::writeLabels(std::span<const Label> labels) {
    if (labels.empty()) return;
    char sep = '{';
    for (const Label& label : labels) {
        out_ += sep;
        out_ += label.name;
        out_ += "=\"";
        appendEscapedLabelValue(out_, label.value);
        out_ += '"';
        sep = ',';
    }
    out_ += '}';
}

void ExpositionWriter::sample(std::string_view name, std::span<const Label> labels, double value) {
    beginSample(name, labels);
    appendValue(out_, value);
    out_ += '\n';
}

void ExpositionWriter::sample(std::string_view name, std::span<const Label> labels, std::uint64_t value) {
    beginSample(name, labels);
    appendValue(out_, value);
    out_ += '\n';
}

}  // namespace netprobe::metrics
