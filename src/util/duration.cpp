// Go-style duration parsing and formatting (see duration.hpp).
#include "netprobe/util/duration.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace netprobe::util {
namespace {

__extension__ using u128 = unsigned __int128;

constexpr std::uint64_t kMaxNanos = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
constexpr std::uint64_t kMicro = 1'000;
constexpr std::uint64_t kMilli = 1'000'000;
constexpr std::uint64_t kSecond = 1'000'000'000;

constexpr bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Nanoseconds per unit, or 0 for an unknown unit.
std::uint64_t unitNanos(std::string_view unit) {
    if (unit == "ns") return 1;
    if (unit == "us" || unit == "\u00b5s" || unit == "\u03bcs") return kMicro;
    if (unit == "ms") return kMilli;
    if (unit == "s") return kSecond;
    if (unit == "m") return 60 * kSecond;
    if (unit == "h") return 3600 * kSecond;
    if (unit == "d") return 86400 * kSecond;  // not Go's; Prometheus's (retention periods)
    return 0;
}

// Appends `text` as a double-quoted string; '"', '\\' and control bytes are escaped.
void appendQuoted(std::string& out, std::string_view text) {
    out += '"';
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            constexpr std::string_view hex = "0123456789abcdef";
            out += "\\x";
            out += hex[u >> 4];
            out += hex[u & 0xf];
        } else {
            out += c;
        }
    }
    out += '"';
}

std::unexpected<std::string> error(std::string_view input, std::string_view problem, std::string_view detail = {}) {
    std::string msg = "invalid duration ";
    appendQuoted(msg, input);
    msg += ": ";
    msg += problem;
    if (!detail.empty()) {
        msg += ' ';
        appendQuoted(msg, detail);
    }
    return std::unexpected(std::move(msg));
}

void appendUint(std::string& out, std::uint64_t v) {
    std::array<char, 20> buf;
    const auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    out.append(buf.data(), res.ptr);
}

// Appends "." and the `digits`-digit fraction without trailing zeros; nothing if 0.
void appendFraction(std::string& out, std::uint64_t frac, int digits) {
    if (frac == 0) return;
    std::array<char, 20> buf;
    int n = digits;
    while (frac % 10 == 0) {
        frac /= 10;
        --n;
    }
    for (int i = n - 1; i >= 0; --i) {
        buf[static_cast<std::size_t>(i)] = static_cast<char>('0' + frac % 10);
        frac /= 10;
    }
    out += '.';
    out.append(buf.data(), static_cast<std::size_t>(n));
}

}  // namespace

std::expected<std::chrono::nanoseconds, std::string> parseDuration(std::string_view text) {
    std::string_view s = text;
    if (s.empty()) return error(text, "empty string");
    if (s.front() == '-') return error(text, "negative durations are not allowed");
    if (s.front() == '+') s.remove_prefix(1);
    if (s == "0") return std::chrono::nanoseconds{0};
    if (s.empty()) return error(text, "expected a number after the sign");

    u128 total = 0;
    while (!s.empty()) {
        // Integer part.
        u128 whole = 0;
        std::size_t i = 0;
        bool overflow = false;
        for (; i < s.size() && isDigit(s[i]); ++i) {
            whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
            overflow = overflow || whole > kMaxNanos;
            if (overflow) whole = kMaxNanos + 1;  // keep scanning digits, stay bounded
        }
        const bool haveWhole = i > 0;

        // Fraction: keep at most 19 digits (further digits are below 1e-19 of the unit).
        std::uint64_t frac = 0;
        std::uint64_t scale = 1;
        bool haveFrac = false;
        if (i < s.size() && s[i] == '.') {
            ++i;
            for (; i < s.size() && isDigit(s[i]); ++i) {
                haveFrac = true;
                if (scale <= std::numeric_limits<std::uint64_t>::max() / 10) {
                    frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
                    scale *= 10;
                }
            }
        }
        if (!haveWhole && !haveFrac) {
            return error(text, "expected a number at", s);
        }
        s.remove_prefix(i);

        // Unit: everything up to the next number.
        std::size_t u = 0;
        while (u < s.size() && !isDigit(s[u]) && s[u] != '.') ++u;
        if (u == 0) return error(text, "missing unit");
        const std::string_view unitText = s.substr(0, u);
        const std::uint64_t unit = unitNanos(unitText);
        if (unit == 0) return error(text, "unknown unit", unitText);
        s.remove_prefix(u);

        if (overflow) return error(text, "value overflows int64 nanoseconds");
        total += whole * unit + static_cast<u128>(frac) * unit / scale;
        if (total > kMaxNanos) return error(text, "value overflows int64 nanoseconds");
    }
    return std::chrono::nanoseconds{static_cast<std::int64_t>(total)};
}

std::string formatDuration(std::chrono::nanoseconds d) {
    const std::int64_t count = d.count();
    if (count == 0) return "0s";

    std::string out;
    // Magnitude as unsigned so that INT64_MIN is representable.
    std::uint64_t u = static_cast<std::uint64_t>(count);
    if (count < 0) {
        out += '-';
        u = ~u + 1;
    }

    if (u < kSecond) {
        // Sub-second: the largest of ns/µs/ms that keeps the integer part non-zero.
        std::string_view unit;
        std::uint64_t per = 1;
        int digits = 0;
        if (u < kMicro) {
            unit = "ns";
        } else if (u < kMilli) {
            unit = "\u00b5s";
            per = kMicro;
            digits = 3;
        } else {
            unit = "ms";
            per = kMilli;
            digits = 6;
        }
        appendUint(out, u / per);
        appendFraction(out, u % per, digits);
        out += unit;
        return out;
    }

    const std::uint64_t seconds = u / kSecond;
    const std::uint64_t hours = seconds / 3600;
    const std::uint64_t minutes = seconds / 60 % 60;
    if (hours > 0) {
        appendUint(out, hours);
        out += 'h';
    }
    if (seconds >= 60) {
        appendUint(out, minutes);
        out += 'm';
    }
    appendUint(out, seconds % 60);
    appendFraction(out, u % kSecond, 9);
    out += 's';
    return out;
}

}  // namespace netprobe::util
