#include "netprobe/util/parse.hpp"

#include <cctype>

namespace netprobe::util {

std::expected<std::uint64_t, std::string> parseByteSize(std::string_view s) {
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || p == s.data())
        return std::unexpected("\"" + std::string(s) + "\" is not a size (4096, 64KiB, 100MiB, 1GiB)");
    std::string unit(p, s.data() + s.size());
    for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "b") mult = 1;
    else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1ull << 10;
    else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1ull << 20;
    else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1ull << 30;
    else return std::unexpected("\"" + std::string(s) + "\": unknown unit (B, KiB, MiB, GiB)");
    if (n > (1ull << 50) / mult) return std::unexpected("\"" + std::string(s) + "\" is too large");
    return n * mult;
}

std::string urlEncode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace netprobe::util
