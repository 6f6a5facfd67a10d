#include "netprobe/util/json_text.hpp"

#include <charconv>
#include <cmath>

namespace netprobe::util {

void appendJsonString(std::string& out, std::string_view v) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : v) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x80) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
}

void appendJsonUint(std::string& out, std::uint64_t v) {
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
}

void appendJsonInt(std::string& out, std::int64_t v) {
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
}

void appendJsonDouble(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[32];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
    out.append(buf, p);
}

void appendJsonKey(std::string& out, std::string_view key) {
    if (!out.empty() && out.back() != '{') out += ',';
    out += '"';
    out += key;
    out += "\":";
}

}  // namespace netprobe::util
