// Figures in a text and where they are in the tool results (llm.hpp).
#include <netprobe/assistant/llm.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include <netprobe/util/duration.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::assistant {

namespace {

using nlohmann::json;
constexpr std::size_t npos = std::string_view::npos;

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isAlnum(char c) { return isDigit(c) || isAlpha(c); }
bool isHex(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
std::string lowerStr(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = lower(c);
    return o;
}

// One UTF-8 code point at i (its value and length); invalid bytes are themselves.
std::pair<char32_t, std::size_t> cpAt(std::string_view s, std::size_t i) {
    const auto b = static_cast<unsigned char>(s[i]);
    auto cont = [&](std::size_t k) { return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
    if (b < 0x80) return {b, 1};
    if ((b & 0xE0) == 0xC0 && cont(1)) return {static_cast<char32_t>(((b & 0x1F) << 6) | (s[i + 1] & 0x3F)), 2};
    if ((b & 0xF0) == 0xE0 && cont(1) && cont(2))
        return {static_cast<char32_t>(((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F)), 3};
    if ((b & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3))
        return {static_cast<char32_t>(((b & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
                                      (s[i + 3] & 0x3F)),
                4};
    return {b, 1};
}

// The code point that ends right before i, and where it starts.
std::pair<char32_t, std::size_t> cpBefore(std::string_view s, std::size_t i) {
    if (i == 0) return {0, 0};
    std::size_t j = i - 1;
    while (j > 0 && i - j < 4 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    auto [cp, len] = cpAt(s, j);
    if (j + len != i) return {static_cast<unsigned char>(s[i - 1]), i - 1};
    return {cp, j};
}

// Spaces that may stand between a number and its unit, or group its thousands.
bool isSpaceCp(char32_t c) { return c == ' ' || c == 0xA0 || c == 0x202F || c == 0x2009; }

// A letter (of a word or a name): ASCII letters, digits and '_', and non-ASCII code
// points other than the punctuation and spaces an answer uses around figures.
bool isWordCp(char32_t c) {
    if (c < 0x80) return isAlnum(static_cast<char>(c)) || c == '_';
    static constexpr char32_t kPunct[] = {0xA0,   0x202F, 0x2009, 0x2013, 0x2014, 0x2212, 0x2248, 0xD7,
                                          0x201C, 0x201D, 0x2018, 0x2019, 0x2026, 0xB1,   0x2264, 0x2265,
                                          0x2192, 0x2190, 0x2022, 0xB7,   0xAB,   0xBB,   0x2011, 0x2010};
    return std::find(std::begin(kPunct), std::end(kPunct), c) == std::end(kPunct);
}

struct Unit {
    const char* name;
    Dim dim;
    double f1;
    double f2;  // a second reading (KB: 1000 and 1024), 0: none
    bool any_case;
};
// Bits have a second reading in bytes (/8), added where they are used.
constexpr Unit kUnits[] = {
    {"B", Dim::Bytes, 1, 0, false},
    {"byte", Dim::Bytes, 1, 0, true},
    {"bytes", Dim::Bytes, 1, 0, true},
    {"KB", Dim::Bytes, 1e3, 1024, false},
    {"kB", Dim::Bytes, 1e3, 1024, false},
    {"KiB", Dim::Bytes, 1024, 0, false},
    {"MB", Dim::Bytes, 1e6, 1048576, false},
    {"MiB", Dim::Bytes, 1048576, 0, false},
    {"GB", Dim::Bytes, 1e9, 1073741824, false},
    {"GiB", Dim::Bytes, 1073741824, 0, false},
    {"TB", Dim::Bytes, 1e12, 1099511627776.0, false},
    {"TiB", Dim::Bytes, 1099511627776.0, 0, false},
    {"bit", Dim::Bits, 1, 0, true},
    {"bits", Dim::Bits, 1, 0, true},
    {"bps", Dim::Bits, 1, 0, false},
    {"Kbit", Dim::Bits, 1e3, 0, false},
    {"kbit", Dim::Bits, 1e3, 0, false},
    {"Kb", Dim::Bits, 1e3, 0, false},
    {"kb", Dim::Bits, 1e3, 0, false},
    {"Kbps", Dim::Bits, 1e3, 0, false},
    {"kbps", Dim::Bits, 1e3, 0, false},
    {"Mbit", Dim::Bits, 1e6, 0, false},
    {"Mb", Dim::Bits, 1e6, 0, false},
    {"Mbps", Dim::Bits, 1e6, 0, false},
    {"Gbit", Dim::Bits, 1e9, 0, false},
    {"Gb", Dim::Bits, 1e9, 0, false},
    {"Gbps", Dim::Bits, 1e9, 0, false},
    {"Tbit", Dim::Bits, 1e12, 0, false},
    {"Tbps", Dim::Bits, 1e12, 0, false},
    {"ns", Dim::Seconds, 1e-9, 0, false},
    {"us", Dim::Seconds, 1e-6, 0, false},
    {"\xC2\xB5s", Dim::Seconds, 1e-6, 0, false},  // µs
    {"\xCE\xBCs", Dim::Seconds, 1e-6, 0, false},  // μs
    {"ms", Dim::Seconds, 1e-3, 0, false},
    {"msec", Dim::Seconds, 1e-3, 0, true},
    {"millisecond", Dim::Seconds, 1e-3, 0, true},
    {"milliseconds", Dim::Seconds, 1e-3, 0, true},
    {"microseconds", Dim::Seconds, 1e-6, 0, true},
    {"s", Dim::Seconds, 1, 0, false},
    {"sec", Dim::Seconds, 1, 0, true},
    {"secs", Dim::Seconds, 1, 0, true},
    {"second", Dim::Seconds, 1, 0, true},
    {"seconds", Dim::Seconds, 1, 0, true},
    {"m", Dim::Seconds, 60, 0, false},
    {"min", Dim::Seconds, 60, 0, true},
    {"mins", Dim::Seconds, 60, 0, true},
    {"minute", Dim::Seconds, 60, 0, true},
    {"minutes", Dim::Seconds, 60, 0, true},
    {"h", Dim::Seconds, 3600, 0, false},
    {"hr", Dim::Seconds, 3600, 0, true},
    {"hrs", Dim::Seconds, 3600, 0, true},
    {"hour", Dim::Seconds, 3600, 0, true},
    {"hours", Dim::Seconds, 3600, 0, true},
    {"d", Dim::Seconds, 86400, 0, false},
    {"day", Dim::Seconds, 86400, 0, true},
    {"days", Dim::Seconds, 86400, 0, true},
    {"week", Dim::Seconds, 604800, 0, true},
    {"weeks", Dim::Seconds, 604800, 0, true},
};

struct Scale {
    const char* name;
    double factor;
    bool glued_only;  // "1.2k" but not "1.2 k" (a spaced single letter is too often a word)
};
constexpr Scale kScales[] = {
    {"k", 1e3, false},       {"K", 1e3, false},        {"thousand", 1e3, false}, {"M", 1e6, false},
    {"million", 1e6, false}, {"mn", 1e6, true},        {"G", 1e9, true},         {"billion", 1e9, false},
    {"bn", 1e9, true},       {"T", 1e12, true},        {"trillion", 1e12, false},
};

// Counts per second: the noun is the unit, the value is the figure.
constexpr const char* kPlainUnits[] = {"pps", "rps", "qps", "x"};

const Unit* findUnit(std::string_view w) {
    for (const auto& u : kUnits)
        if (w == u.name) return &u;
    const std::string l = lowerStr(w);
    for (const auto& u : kUnits)
        if (u.any_case && l == u.name) return &u;
    return nullptr;
}
const Scale* findScale(std::string_view w, bool glued) {
    for (const auto& s : kScales)
        if ((w == s.name || (std::strlen(s.name) > 2 && lowerStr(w) == s.name)) && (glued || !s.glued_only)) return &s;
    return nullptr;
}
bool isPlainUnit(std::string_view w) {
    const std::string l = lowerStr(w);
    return std::any_of(std::begin(kPlainUnits), std::end(kPlainUnits), [&](const char* p) { return l == p; });
}

// Letters of a unit word at i: ASCII letters and µ/μ.
std::size_t unitWordEnd(std::string_view s, std::size_t i) {
    while (i < s.size()) {
        if (isAlpha(s[i])) {
            ++i;
        } else if (s.substr(i, 2) == "\xC2\xB5" || s.substr(i, 2) == "\xCE\xBC") {
            i += 2;
        } else {
            break;
        }
    }
    return i;
}

std::size_t skipSpaces(std::string_view s, std::size_t i, int max) {
    for (int n = 0; n < max && i < s.size(); ++n) {
        auto [cp, len] = cpAt(s, i);
        if (!isSpaceCp(cp)) break;
        i += len;
    }
    return i;
}

// "/s", "/sec", " per second", "/min", "/h": the factor to per second (0: none). end: after it.
double rateSuffix(std::string_view s, std::size_t i, std::size_t& end) {
    auto tryWords = [&](std::size_t at) -> double {
        const std::size_t e = unitWordEnd(s, at);
        if (e == at || (e < s.size() && (isAlnum(s[e]) || s[e] == '_'))) return 0;
        const std::string w = lowerStr(s.substr(at, e - at));
        end = e;
        if (w == "s" || w == "sec" || w == "second") return 1;
        if (w == "min" || w == "minute") return 1.0 / 60;
        if (w == "h" || w == "hr" || w == "hour") return 1.0 / 3600;
        return 0;
    };
    if (i < s.size() && s[i] == '/') return tryWords(i + 1);
    const std::size_t sp = skipSpaces(s, i, 1);
    if (sp > i && lowerStr(s.substr(sp, 4)) == "per ") return tryWords(sp + 4);
    return 0;
}

// Words before a number that make it a rounded figure.
bool approximateBefore(std::string_view s, std::size_t start) {
    std::size_t b = start;
    while (b > 0) {
        auto [cp, at] = cpBefore(s, b);
        if (!isSpaceCp(cp)) break;
        b = at;
    }
    const std::size_t from = b > 24 ? b - 24 : 0;
    const std::string before = lowerStr(s.substr(from, b - from));
    static constexpr const char* kWords[] = {"about", "approximately", "approx.", "approx", "around", "roughly",
                                             "nearly", "almost", "some", "over", "under", "more than", "less than",
                                             "fewer than", "at least", "at most", "up to", "close to", "~",
                                             "\xE2\x89\x88", "<", ">", "\xE2\x89\xA4", "\xE2\x89\xA5"};
    for (const char* w : kWords) {
        const std::size_t n = std::strlen(w);
        if (before.size() < n || before.compare(before.size() - n, n, w) != 0) continue;
        if (!isAlpha(w[0])) return true;
        const std::size_t at = before.size() - n;
        if (at == 0 ? from == 0 || !isAlnum(s[from - 1]) : !isAlnum(before[at - 1])) return true;
    }
    return false;
}

// The word that ends before i (skipping spaces), lowercased.
std::string wordBefore(std::string_view s, std::size_t i) {
    std::size_t e = i;
    while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '/')) --e;
    std::size_t b = e;
    while (b > 0 && (isAlnum(s[b - 1]) || s[b - 1] == '_')) --b;
    return lowerStr(s.substr(b, e - b));
}

struct Civil {
    int y, m, d;
};
std::int64_t unixOfCivil(int y, int m, int d, int hh, int mm, int ss) {
    using namespace std::chrono;
    const sys_days days{year{y} / month{static_cast<unsigned>(m)} / day{static_cast<unsigned>(d)}};
    return days.time_since_epoch().count() * 86400LL + hh * 3600LL + mm * 60LL + ss;
}
Civil civilOf(std::int64_t unix_secs) {
    using namespace std::chrono;
    const sys_days days{std::chrono::days{static_cast<int>(std::floor(static_cast<double>(unix_secs) / 86400.0))}};
    const year_month_day ymd{days};
    return {static_cast<int>(ymd.year()), static_cast<int>(static_cast<unsigned>(ymd.month())),
            static_cast<int>(static_cast<unsigned>(ymd.day()))};
}

int digitsAt(std::string_view s, std::size_t i, std::size_t n) {
    if (i + n > s.size()) return -1;
    int v = 0;
    for (std::size_t k = i; k < i + n; ++k) {
        if (!isDigit(s[k])) return -1;
        v = v * 10 + (s[k] - '0');
    }
    return v;
}

class Extractor {
public:
    explicit Extractor(std::string_view s) : s_(s) {}

    std::vector<Figure> run() {
        std::size_t i = 0;
        while (i < s_.size()) {
            const std::size_t next = step(i);
            i = next > i ? next : i + 1;
        }
        return std::move(out_);
    }

private:
    std::string_view s_;
    std::vector<Figure> out_;
    std::size_t last_number_end_ = npos;

    bool boundaryBefore(std::size_t i) const {
        if (i == 0) return true;
        return !isWordCp(cpBefore(s_, i).first);
    }
    bool wordAfter(std::size_t i) const { return i < s_.size() && isWordCp(cpAt(s_, i).first); }

    // Past the rest of a word or name (letters, digits, '_', '-', '.' between them).
    std::size_t skipWord(std::size_t i) const {
        while (i < s_.size()) {
            auto [cp, len] = cpAt(s_, i);
            if (isWordCp(cp)) {
                i += len;
            } else if ((s_[i] == '-' || s_[i] == '.') && i + 1 < s_.size() && isAlnum(s_[i + 1])) {
                ++i;
            } else {
                break;
            }
        }
        return i;
    }

    void push(Figure f) { out_.push_back(std::move(f)); }

    std::size_t step(std::size_t i) {
        const char c = s_[i];
        const bool boundary = boundaryBefore(i);
        // An address starts a word: not after "name-" or "name." (cart-1b::, v1.2.3.4).
        const bool in_name = i >= 2 && (s_[i - 1] == '-' || s_[i - 1] == '.') && (isAlnum(s_[i - 2]) || s_[i - 2] == '_');
        if (boundary && !in_name && (c == '[' || isHex(c) || c == ':')) {
            if (auto e = address(i); e != npos) return e;
        }
        const bool starts_number = isDigit(c) || (c == '.' && i + 1 < s_.size() && isDigit(s_[i + 1]));
        const bool minus = s_.substr(i, 3) == "\xE2\x88\x92";
        const bool sign = (c == '-' || c == '+' || minus) && boundary;
        if (sign) {
            const std::size_t d = i + (minus ? 3 : 1);
            if (d < s_.size() && (isDigit(s_[d]) || (s_[d] == '.' && d + 1 < s_.size() && isDigit(s_[d + 1])))) {
                // "10-20" is a range, not -20; "pod-1" is a name.
                const bool range = last_number_end_ == i;
                if (!range && (i == 0 || !isAlnum(s_[i - 1]))) return number(i, d, c == '-' || minus);
                return d;  // the number after it is handled on its own
            }
        }
        if (starts_number) {
            if (!boundary) return skipWord(i);
            if (i > 0) {
                const char p = s_[i - 1];
                if ((p == '-' || p == '.') && last_number_end_ != i - 1 && i >= 2 && isAlnum(s_[i - 2]))
                    return skipWord(i);  // pod-1, ip-3, v1.2
                if (p == '#') return skipWord(i);
                if (p == '/' && (wordBefore(s_, i - 1) == "http" || wordBefore(s_, i - 1) == "https")) return skipWord(i);
            }
            const std::string w = wordBefore(s_, i);
            if (w == "tls" || w == "ssl" || w == "tlsv" || w == "http" || w == "version")
                return skipWord(i);  // protocol versions
            if (auto e = dateTime(i); e != npos) return e;
            if (auto e = timeOfDay(i); e != npos) return e;
            if (auto e = goDuration(i); e != npos) return e;
            return number(i, i, false);
        }
        if (isAlpha(c) && boundary) {
            const std::size_t e = skipWord(i);
            spelled(i, e);
            return e;
        }
        return i + cpAt(s_, i).second;
    }

    // An IPv4/IPv6 literal at i ([v6] too), an IPv4 with /prefix; a MAC address is
    // skipped. npos: none here.
    std::size_t address(std::size_t i) {
        if (s_[i] == '[') {
            const std::size_t close = s_.find(']', i);
            if (close == npos || close - i > 48) return npos;
            const auto inner = s_.substr(i + 1, close - i - 1);
            if (inner.find(':') == npos) return npos;
            if (auto a = util::parseAddr(inner)) {
                Figure f;
                f.kind = Figure::Kind::Address;
                f.text = std::string(inner);
                f.offset = i + 1;
                f.address = util::formatAddr(*a);
                push(std::move(f));
                return close + 1;
            }
            return npos;
        }
        std::size_t e = i;
        std::size_t colons = 0, dots = 0;
        while (e < s_.size() && (isHex(s_[e]) || s_[e] == ':' || s_[e] == '.') && e - i < 64) {
            colons += s_[e] == ':';
            dots += s_[e] == '.';
            ++e;
        }
        if (e < s_.size() && (isAlnum(s_[e]) || s_[e] == '_')) return npos;  // part of a word
        std::string_view run = s_.substr(i, e - i);
        if (colons == 5 && run.size() == 17) return e;  // a MAC address: not a figure
        // IPv4 (possibly followed by :port or a sentence's dot)
        if (isDigit(s_[i]) && dots >= 3) {
            std::size_t k = i;
            int parts = 0;
            while (parts < 4) {
                std::size_t d = k;
                while (d < s_.size() && isDigit(s_[d]) && d - k < 3) ++d;
                if (d == k) break;
                ++parts;
                k = d;
                if (parts < 4) {
                    if (k < s_.size() && s_[k] == '.') ++k;
                    else break;
                }
            }
            if (parts == 4 && !(k < s_.size() && isDigit(s_[k]))) {
                if (auto a = util::parseAddr(s_.substr(i, k - i)); a && util::isV4Mapped(*a)) {
                    Figure f;
                    f.kind = Figure::Kind::Address;
                    f.text = std::string(s_.substr(i, k - i));
                    f.offset = i;
                    f.address = util::formatAddr(*a);
                    push(std::move(f));
                    return prefixLength(k);
                }
            }
            return npos;
        }
        // IPv6: at least two colons; trailing ':' or '.' belong to the sentence.
        while (!run.empty() && (run.back() == '.' || (run.back() == ':' && !run.ends_with("::")))) run.remove_suffix(1);
        if (std::count(run.begin(), run.end(), ':') < 2) return npos;
        if (std::none_of(run.begin(), run.end(), isHex)) return npos;
        if (auto a = util::parseAddr(run)) {
            Figure f;
            f.kind = Figure::Kind::Address;
            f.text = std::string(run);
            f.offset = i;
            f.address = util::formatAddr(*a);
            push(std::move(f));
            return prefixLength(i + run.size());
        }
        return npos;
    }
    // "/24" after an address belongs to it.
    std::size_t prefixLength(std::size_t k) const {
        if (k + 1 < s_.size() && s_[k] == '/' && isDigit(s_[k + 1])) {
            std::size_t e = k + 1;
            while (e < s_.size() && isDigit(s_[e]) && e - k <= 3) ++e;
            return e;
        }
        return k;
    }

    // 2026-01-05, 2026-01-05T14:05:33Z, 2026-01-05 14:05:33.5+01:00
    std::size_t dateTime(std::size_t i) {
        const int y = digitsAt(s_, i, 4), mo = digitsAt(s_, i + 5, 2), d = digitsAt(s_, i + 8, 2);
        if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || s_[i + 4] != '-' || s_[i + 7] != '-') return npos;
        std::size_t e = i + 10;
        if (e < s_.size() && isDigit(s_[e])) return npos;
        Figure f;
        f.offset = i;
        f.year = y;
        f.month = mo;
        f.day = d;
        f.kind = Figure::Kind::Date;
        if (e + 8 < s_.size() + 0 && (s_[e] == 'T' || s_[e] == ' ')) {
            const int hh = digitsAt(s_, e + 1, 2), mi = digitsAt(s_, e + 4, 2), ss = digitsAt(s_, e + 7, 2);
            if (hh >= 0 && hh < 24 && mi >= 0 && mi < 60 && ss >= 0 && ss < 61 && s_[e + 3] == ':' && s_[e + 6] == ':') {
                std::size_t k = e + 9;
                if (k < s_.size() && s_[k] == '.') {
                    ++k;
                    while (k < s_.size() && isDigit(s_[k])) ++k;
                }
                std::int64_t offset = 0;
                bool zone = false;
                if (k < s_.size() && (s_[k] == 'Z' || s_[k] == 'z')) {
                    ++k;
                    zone = true;
                } else if (k + 5 < s_.size() + 0 && (s_[k] == '+' || s_[k] == '-') && digitsAt(s_, k + 1, 2) >= 0 &&
                           s_[k + 3] == ':' && digitsAt(s_, k + 4, 2) >= 0) {
                    offset = (digitsAt(s_, k + 1, 2) * 3600LL + digitsAt(s_, k + 4, 2) * 60LL) * (s_[k] == '-' ? -1 : 1);
                    k += 6;
                    zone = true;
                }
                f.kind = zone ? Figure::Kind::DateTime : Figure::Kind::Date;
                if (zone) {
                    f.hour = hh;
                    f.minute = mi;
                    f.second = ss;
                    f.unix_seconds = unixOfCivil(y, mo, d, hh, mi, ss) - offset;
                    e = k;
                } else {
                    // A date and a time of day without a zone: two figures (the time may be
                    // UTC or the reader's).
                    f.text = std::string(s_.substr(i, 10));
                    push(std::move(f));
                    Figure t;
                    t.kind = Figure::Kind::TimeOfDay;
                    t.offset = e + 1;
                    t.text = std::string(s_.substr(e + 1, k - e - 1));
                    t.hour = hh;
                    t.minute = mi;
                    t.second = ss;
                    push(std::move(t));
                    return k;
                }
            }
        }
        f.text = std::string(s_.substr(i, e - i));
        push(std::move(f));
        return e;
    }

    // 14:05, 14:05:33, 2:05 pm
    std::size_t timeOfDay(std::size_t i) {
        std::size_t k = i;
        int hh = 0;
        while (k < s_.size() && isDigit(s_[k]) && k - i < 3) hh = hh * 10 + (s_[k++] - '0');
        if (k - i == 0 || k - i > 2 || k >= s_.size() || s_[k] != ':') return npos;
        const int mi = digitsAt(s_, k + 1, 2);
        if (mi < 0 || mi > 59 || hh > 23) return npos;
        k += 3;
        int ss = -1;
        if (k < s_.size() && s_[k] == ':') {
            ss = digitsAt(s_, k + 1, 2);
            if (ss < 0 || ss > 60) return npos;
            k += 3;
            if (k < s_.size() && s_[k] == '.' && k + 1 < s_.size() && isDigit(s_[k + 1])) {
                ++k;
                while (k < s_.size() && isDigit(s_[k])) ++k;
            }
        }
        if (k < s_.size() && (isDigit(s_[k]) || s_[k] == ':')) return npos;
        Figure f;
        f.kind = Figure::Kind::TimeOfDay;
        f.offset = i;
        f.hour = hh;
        f.minute = mi;
        f.second = ss;
        std::size_t e = k;
        const std::size_t sp = skipSpaces(s_, k, 1);
        const std::string ampm = lowerStr(s_.substr(sp, 4));
        auto ampmWord = [&](const char* w) {
            const std::size_t n = std::strlen(w);
            return ampm.starts_with(w) && !(sp + n < s_.size() && isAlnum(s_[sp + n]));
        };
        if (hh >= 1 && hh <= 12) {
            if (ampmWord("am") || ampmWord("a.m.")) {
                f.hour = hh % 12;
                e = sp + (ampm.starts_with("a.m.") ? 4 : 2);
            } else if (ampmWord("pm") || ampmWord("p.m.")) {
                f.hour = hh % 12 + 12;
                e = sp + (ampm.starts_with("p.m.") ? 4 : 2);
            } else {
                f.twelve_hour = true;  // no am/pm: 2:05 may be 14:05
            }
        }
        f.text = std::string(s_.substr(i, e - i));
        push(std::move(f));
        return e;
    }

    // 1h30m, 2m30s, 1m0.5s: a Go duration of two or more parts.
    std::size_t goDuration(std::size_t i) {
        std::size_t k = i;
        int parts = 0;
        while (k < s_.size() && isDigit(s_[k])) {
            std::size_t d = k;
            while (d < s_.size() && (isDigit(s_[d]) || s_[d] == '.')) ++d;
            std::size_t u = d;
            while (u < s_.size() && isAlpha(s_[u])) ++u;
            if (s_.substr(d, 2) == "\xC2\xB5" && d + 2 < s_.size() && s_[d + 2] == 's') u = d + 3;
            const auto unit = s_.substr(d, u - d);
            if (!(unit == "ns" || unit == "us" || unit == "\xC2\xB5s" || unit == "ms" || unit == "s" || unit == "m" ||
                  unit == "h"))
                break;
            ++parts;
            k = u;
        }
        if (parts < 2 || (k < s_.size() && (isAlnum(s_[k]) || s_[k] == '_'))) return npos;
        auto d = util::parseDuration(s_.substr(i, k - i));
        if (!d) return npos;
        Figure f;
        f.kind = Figure::Kind::Number;
        f.text = std::string(s_.substr(i, k - i));
        f.offset = i;
        f.value = std::chrono::duration<double>(*d).count();
        f.half_ulp = 0.5;
        f.readings = {{1, Dim::Seconds}};
        push(std::move(f));
        last_number_end_ = k;
        return k;
    }

    // A number at `start` (its sign, if any, at start and digits at d).
    std::size_t number(std::size_t start, std::size_t d, bool negative) {
        std::string digits;
        std::size_t k = d;
        std::size_t first_group = 0;
        while (k < s_.size() && isDigit(s_[k])) digits += s_[k++], ++first_group;
        if (first_group >= 1 && first_group <= 3) {
            // thousands: ",ddd" (or a thin / no-break space, '_') groups of exactly three digits
            for (;;) {
                std::size_t sep_len = 0;
                if (k < s_.size() && (s_[k] == ',' || s_[k] == '_')) sep_len = 1;
                else if (k < s_.size()) {
                    auto [cp, len] = cpAt(s_, k);
                    if (cp == 0xA0 || cp == 0x202F || cp == 0x2009) sep_len = len;
                }
                if (sep_len == 0 || digitsAt(s_, k + sep_len, 3) < 0 ||
                    (k + sep_len + 3 < s_.size() && isDigit(s_[k + sep_len + 3])))
                    break;
                digits += s_.substr(k + sep_len, 3);
                k += sep_len + 3;
            }
        }
        int decimals = 0;
        if (k + 1 < s_.size() && s_[k] == '.' && isDigit(s_[k + 1])) {
            digits += '.';
            ++k;
            while (k < s_.size() && isDigit(s_[k])) digits += s_[k++], ++decimals;
            if (k + 1 < s_.size() && s_[k] == '.' && isDigit(s_[k + 1])) return skipWord(k);  // 1.2.3: a version
        }
        if (digits.empty() || digits == ".") return k;
        int exponent = 0;
        if (k + 1 < s_.size() && (s_[k] == 'e' || s_[k] == 'E')) {
            std::size_t x = k + 1;
            bool neg = false;
            if (x < s_.size() && (s_[x] == '+' || s_[x] == '-')) neg = s_[x++] == '-';
            std::size_t xd = x;
            int ev = 0;
            while (xd < s_.size() && isDigit(s_[xd]) && xd - x < 3) ev = ev * 10 + (s_[xd++] - '0');
            if (xd > x && !(xd < s_.size() && isAlnum(s_[xd]))) {
                exponent = neg ? -ev : ev;
                k = xd;
            }
        }
        Figure f;
        f.kind = Figure::Kind::Number;
        f.offset = start;
        f.value = std::strtod(digits.c_str(), nullptr) * std::pow(10.0, exponent) * (negative ? -1 : 1);
        f.half_ulp = 0.5 * std::pow(10.0, exponent - decimals);
        f.approximate = approximateBefore(s_, start);
        if (f.approximate && decimals == 0) {
            // "about 1,200": the trailing zeros are not significant
            std::string intpart = digits;
            int zeros = 0;
            for (auto it = intpart.rbegin(); it != intpart.rend() && *it == '0' && zeros + 1 < static_cast<int>(intpart.size()); ++it)
                ++zeros;
            f.half_ulp = 0.5 * std::pow(10.0, exponent + zeros);
        }

        // What follows: a unit, a scale, a percent sign, an ordinal or a word.
        std::size_t e = k;
        double scale = 1;
        const Unit* unit = nullptr;
        bool percent = false;
        const bool glued = k < s_.size() && !isSpaceCp(cpAt(s_, k).first);
        std::size_t at = glued ? k : skipSpaces(s_, k, 1);
        if (at < s_.size() && s_[at] == '%') {
            percent = true;
            e = at + 1;
        } else {
            std::size_t we = unitWordEnd(s_, at);
            std::string_view w = s_.substr(at, we - at);
            const bool word_continues = we < s_.size() && (isDigit(s_[we]) || s_[we] == '_');
            if (!w.empty() && !word_continues) {
                if (glued && (w == "st" || w == "nd" || w == "rd" || w == "th")) return we;  // an ordinal
                if (const Scale* sc = findScale(w, glued)) {
                    scale = sc->factor;
                    e = we;
                    // "1.5 million bytes", "1.2k packets"
                    std::size_t u = skipSpaces(s_, we, 1);
                    std::size_t ue = unitWordEnd(s_, u);
                    if (ue > u && !(ue < s_.size() && isAlnum(s_[ue]))) {
                        if (const Unit* un = findUnit(s_.substr(u, ue - u)); un && std::strlen(un->name) > 1) {
                            unit = un;
                            e = ue;
                        }
                    }
                } else if (const Unit* un = findUnit(w); un && (glued || std::string_view(un->name).size() > 1 ||
                                                                 un->dim != Dim::Seconds || w == "s" || w == "h")) {
                    unit = un;
                    e = we;
                } else if (lowerStr(w) == "percent" || lowerStr(w) == "pct") {
                    percent = true;
                    e = we;
                } else if (isPlainUnit(w)) {
                    e = we;
                } else if (glued) {
                    return skipWord(k);  // 5xx, 3rd-party, x86: a label
                }
            } else if (glued && word_continues) {
                return skipWord(k);
            }
        }
        std::size_t rate_end = e;
        const double rate = (unit || scale != 1) ? rateSuffix(s_, e, rate_end) : 0;
        if (rate != 0) e = rate_end;

        f.text = std::string(s_.substr(start, e - start));
        if (percent) {
            f.readings = {{0.01, Dim::None}, {1, Dim::None}};
        } else if (unit) {
            auto add = [&](double factor, Dim dim) {
                f.readings.push_back({scale * factor, dim});
                if (rate != 0 && rate != 1) f.readings.push_back({scale * factor * rate, dim});
            };
            if (unit->dim == Dim::Bits) {
                add(unit->f1, Dim::Bits);
                add(unit->f1 / 8, Dim::Bytes);
            } else {
                add(unit->f1, unit->dim);
                if (unit->f2 != 0) add(unit->f2, unit->dim);
            }
        } else {
            f.readings = {{scale, Dim::None}};
            if (rate != 0 && rate != 1) f.readings.push_back({scale * rate, Dim::None});
        }
        push(std::move(f));
        last_number_end_ = e;
        return e;
    }

    // two .. twelve, twenty .. ninety (twenty-five); "one" is too often a pronoun.
    void spelled(std::size_t i, std::size_t e) {
        static constexpr std::pair<const char*, int> kWords[] = {
            {"zero", 0},     {"two", 2},       {"three", 3},   {"four", 4},    {"five", 5},   {"six", 6},
            {"seven", 7},    {"eight", 8},     {"nine", 9},    {"ten", 10},    {"eleven", 11}, {"twelve", 12},
            {"twenty", 20},  {"thirty", 30},   {"forty", 40},  {"fifty", 50},  {"sixty", 60}, {"seventy", 70},
            {"eighty", 80},  {"ninety", 90}};
        static constexpr std::pair<const char*, int> kUnits1[] = {{"one", 1},  {"two", 2},   {"three", 3},
                                                                  {"four", 4}, {"five", 5},  {"six", 6},
                                                                  {"seven", 7}, {"eight", 8}, {"nine", 9}};
        const std::string w = lowerStr(s_.substr(i, e - i));
        for (const auto& [name, v] : kWords) {
            if (w == name) {
                Figure f;
                f.kind = Figure::Kind::Number;
                f.text = std::string(s_.substr(i, e - i));
                f.offset = i;
                f.value = v;
                f.readings = {{1, Dim::None}};
                push(std::move(f));
                return;
            }
            // twenty-five
            const std::size_t n = std::strlen(name);
            if (v >= 20 && w.size() > n + 1 && w.compare(0, n, name) == 0 && w[n] == '-') {
                for (const auto& [u, uv] : kUnits1) {
                    if (w.substr(n + 1) == u) {
                        Figure f;
                        f.kind = Figure::Kind::Number;
                        f.text = std::string(s_.substr(i, e - i));
                        f.offset = i;
                        f.value = v + uv;
                        f.readings = {{1, Dim::None}};
                        push(std::move(f));
                        return;
                    }
                }
            }
        }
    }
};

}  // namespace

std::vector<Figure> extractFigures(std::string_view text) { return Extractor(text).run(); }

}  // namespace netprobe::assistant

// ---------------------------------------------------------------------------
// facts

namespace netprobe::assistant {

namespace {

struct KeyInfo {
    bool has_dim = false;
    Dim dim = Dim::None;
    double factor = 1;
    bool count = false;  // counts things: a figure in a unit never matches it
    bool time = false;
};

KeyInfo keyInfo(std::string_view key) {
    const std::string k = lowerStr(key);
    KeyInfo ki;
    static constexpr const char* kTimeKeys[] = {"since", "start", "end", "first_seen", "last_seen", "from", "to",
                                                "until", "timestamp", "ts", "last_load", "started", "ended",
                                                "updated", "began", "now", "expires"};
    ki.time = k.ends_with("_at") || k.find("time") != std::string::npos ||
              std::any_of(std::begin(kTimeKeys), std::end(kTimeKeys), [&](const char* t) { return k == t; });
    auto set = [&](Dim d, double f) {
        ki.has_dim = true;
        ki.dim = d;
        ki.factor = f;
    };
    if (k.find("bytes") != std::string::npos) set(Dim::Bytes, 1);
    else if (k.ends_with("mbps") || k.ends_with("_mbit")) set(Dim::Bits, 1e6);
    else if (k.ends_with("gbps") || k.ends_with("_gbit")) set(Dim::Bits, 1e9);
    else if (k.ends_with("bits") || k.ends_with("_bps") || k.find("bits_per") != std::string::npos) set(Dim::Bits, 1);
    else if (k.ends_with("_seconds") || k == "seconds" || k.ends_with("_secs") || k.ends_with("_sec")) set(Dim::Seconds, 1);
    else if (k.ends_with("_ms") || k == "ms" || k.ends_with("_millis")) set(Dim::Seconds, 1e-3);
    else if (k.ends_with("_us") || k == "us" || k.ends_with("_micros")) set(Dim::Seconds, 1e-6);
    else if (k.ends_with("_ns") || k == "ns" || k.ends_with("_nanos")) set(Dim::Seconds, 1e-9);
    else if (k.ends_with("_minutes")) set(Dim::Seconds, 60);
    else if (k.ends_with("_hours")) set(Dim::Seconds, 3600);
    else if (k.ends_with("_days")) set(Dim::Seconds, 86400);
    if (!ki.has_dim) {
        static constexpr const char* kCounts[] = {"packets", "count", "total", "connections", "conversations",
                                                  "requests", "retransmits", "errors", "drops", "handshakes",
                                                  "returned", "failed", "flows", "events", "items", "port", "pid"};
        ki.count = std::any_of(std::begin(kCounts), std::end(kCounts),
                               [&](const char* c) { return k.find(c) != std::string::npos; });
    }
    return ki;
}

std::string numberText(double v) {
    json j = v;
    if (std::floor(v) == v && std::fabs(v) < 1e15) j = static_cast<std::int64_t>(v);
    return j.dump();
}

std::string shortText(std::string_view s) {
    std::string o(s.substr(0, 60));
    if (s.size() > 60) {
        while (!o.empty() && (static_cast<unsigned char>(o.back()) & 0xC0) == 0x80) o.pop_back();
        if (!o.empty() && static_cast<unsigned char>(o.back()) >= 0xC0) o.pop_back();
        o += "...";
    }
    return o;
}

std::string escapePointer(const std::string& k) {
    std::string o;
    for (char c : k) {
        if (c == '~') o += "~0";
        else if (c == '/') o += "~1";
        else o += c;
    }
    return o;
}

bool close(double have, double want, double half_ulp) {
    return std::fabs(have - want) <= half_ulp * (1 + 1e-9) + std::fabs(want) * 1e-12;
}

}  // namespace

void Facts::addDocument(const std::string& label, const json& doc) { walk(label, doc, "", Dim::None, 1, false, false); }

void Facts::addText(const std::string& label, std::string_view text) { textFigures(label, text); }

void Facts::walk(const std::string& label, const json& j, const std::string& path, Dim dim, double factor,
                 bool count, bool time_key) {
    if (j.is_object()) {
        for (const auto& [k, v] : j.items()) {
            const KeyInfo ki = keyInfo(k);
            const std::string p = path + "/" + escapePointer(k);
            textFigures(label + " key " + p, k);
            walk(label, v, p, ki.has_dim ? ki.dim : dim, ki.has_dim ? ki.factor : factor,
                 ki.has_dim ? false : (ki.count || count), ki.time);
        }
    } else if (j.is_array()) {
        struct Sum {
            double total = 0;
            std::size_t n = 0;
            Dim dim = Dim::None;
            double factor = 1;
            bool count = false;
        };
        std::map<std::string, Sum> sums;
        Sum plain;
        plain.dim = dim;
        plain.factor = factor;
        plain.count = count;
        for (std::size_t i = 0; i < j.size(); ++i) {
            const auto& e = j[i];
            walk(label, e, path + "/" + std::to_string(i), dim, factor, count, time_key);
            if (e.is_number()) {
                plain.total += e.get<double>();
                ++plain.n;
            } else if (e.is_object()) {
                for (const auto& [k, v] : e.items()) {
                    if (!v.is_number()) continue;
                    auto& s = sums[k];
                    const KeyInfo ki = keyInfo(k);
                    s.dim = ki.has_dim ? ki.dim : dim;
                    s.factor = ki.has_dim ? ki.factor : factor;
                    s.count = ki.has_dim ? false : (ki.count || count);
                    s.total += v.get<double>();
                    ++s.n;
                }
            }
        }
        const std::string at = path.empty() ? "/" : path;
        numbers_.push_back({static_cast<double>(j.size()), Dim::None, 1,
                            label + " number of items in " + at + " = " + std::to_string(j.size()), true});
        if (plain.n >= 2)
            numbers_.push_back({plain.total, plain.dim, plain.factor,
                                label + " sum of " + at + " = " + numberText(plain.total), plain.count});
        for (const auto& [k, s] : sums)
            if (s.n >= 2)
                numbers_.push_back({s.total, s.dim, s.factor,
                                    label + " sum of " + at + "[]/" + k + " = " + numberText(s.total), s.count});
    } else if (j.is_number()) {
        const double v = j.get<double>();
        numbers_.push_back({v, dim, factor, label + " " + (path.empty() ? "/" : path) + " = " + numberText(v), count});
        if (time_key) {
            if (v >= 1e9 && v < 1e10) times_.emplace_back(static_cast<std::int64_t>(v), label + " " + path);
            else if (v >= 1e12 && v < 1e13) times_.emplace_back(static_cast<std::int64_t>(v / 1000), label + " " + path);
        }
    } else if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        textFigures(label + " " + (path.empty() ? "/" : path) + " = \"" + shortText(s) + "\"", s);
    }
}

void Facts::textFigures(const std::string& where, std::string_view text) {
    for (const auto& f : extractFigures(text)) {
        switch (f.kind) {
            case Figure::Kind::Number:
                numbers_.push_back({f.value, Dim::None, 1, where});
                for (const auto& r : f.readings)
                    if (r.dim != Dim::None || r.factor != 1) numbers_.push_back({f.value * r.factor, r.dim, 1, where});
                break;
            case Figure::Kind::Address: addresses_.emplace(f.address, where); break;
            case Figure::Kind::DateTime:
                times_.emplace_back(f.unix_seconds, where);
                dates_.push_back({{f.year, f.month, f.day}, where});
                break;
            case Figure::Kind::Date: dates_.push_back({{f.year, f.month, f.day}, where}); break;
            case Figure::Kind::TimeOfDay: clock_.push_back({{f.hour, f.minute, f.second}, where}); break;
            case Figure::Kind::Placeholder: break;
        }
    }
}

bool Facts::matches(const Number& n, const Figure& f, bool strict) const {
    if (n.dim == Dim::None) {
        // plain, scaled and percent readings
        for (const auto& r : f.readings)
            if (r.dim == Dim::None && r.factor != 0 && close(n.value / r.factor, f.value, f.half_ulp)) return true;
        if (strict || n.count) return false;
        // a number of no known unit: the figure as written, or in its base unit (seconds, bytes, bits)
        if (close(n.value, f.value, f.half_ulp)) return true;
        for (const auto& r : f.readings)
            if (r.factor != 0 && close(n.value / r.factor, f.value, f.half_ulp)) return true;
        return false;
    }
    for (const auto& r : f.readings) {
        if (r.factor == 0) continue;
        if (r.dim == Dim::None && close(n.value / r.factor, f.value, f.half_ulp)) return true;
        if (r.dim == n.dim && close(n.value * n.factor / r.factor, f.value, f.half_ulp)) return true;
    }
    return false;
}

std::optional<std::string> Facts::find(const Figure& f) const {
    switch (f.kind) {
        case Figure::Kind::Number:
            // First where the units agree; then numbers whose unit no key names.
            for (const bool strict : {true, false})
                for (const auto& n : numbers_)
                    if (matches(n, f, strict)) return n.where;
            return std::nullopt;
        case Figure::Kind::Address:
            if (auto it = addresses_.find(f.address); it != addresses_.end()) return it->second;
            return std::nullopt;
        case Figure::Kind::DateTime:
            for (const auto& [t, where] : times_)
                if (std::llabs(t - f.unix_seconds) <= 1) return where;
            return std::nullopt;
        case Figure::Kind::Date: {
            for (const auto& [d, where] : dates_)
                if (d == std::array<int, 3>{f.year, f.month, f.day}) return where;
            for (const auto& [t, where] : times_) {
                for (const std::int64_t off : {std::int64_t{0}, std::int64_t{utc_offset_}}) {
                    const Civil c = civilOf(t + off);
                    if (c.y == f.year && c.m == f.month && c.d == f.day) return where;
                }
            }
            return std::nullopt;
        }
        case Figure::Kind::TimeOfDay: {
            std::vector<int> hours = {f.hour};
            if (f.twelve_hour) hours = {f.hour % 12, f.hour % 12 + 12};
            auto hourOk = [&](int h) { return std::find(hours.begin(), hours.end(), h) != hours.end(); };
            for (const auto& [c, where] : clock_)
                if (hourOk(c[0]) && c[1] == f.minute && (f.second < 0 || c[2] == f.second)) return where;
            for (const auto& [t, where] : times_) {
                for (const std::int64_t off : {std::int64_t{0}, std::int64_t{utc_offset_}}) {
                    // a time to the minute may be the timestamp's minute or its rounding
                    for (const std::int64_t round : {std::int64_t{0}, std::int64_t{f.second < 0 ? 30 : 0}}) {
                        const std::int64_t secs = (((t + off + round) % 86400) + 86400) % 86400;
                        if (hourOk(static_cast<int>(secs / 3600)) && secs % 3600 / 60 == f.minute &&
                            (f.second < 0 || secs % 60 == f.second))
                            return where;
                    }
                }
            }
            return std::nullopt;
        }
        case Figure::Kind::Placeholder: return std::nullopt;
    }
    return std::nullopt;
}

// ---------------------------------------------------------------------------
// verification

namespace {

std::string_view kindName(Figure::Kind k) {
    switch (k) {
        case Figure::Kind::Number: return "number";
        case Figure::Kind::Address: return "address";
        case Figure::Kind::TimeOfDay: return "time";
        case Figure::Kind::Date: return "date";
        case Figure::Kind::DateTime: return "datetime";
        case Figure::Kind::Placeholder: return "placeholder";
    }
    return "number";
}

std::string contextOf(std::string_view text, std::size_t offset, std::size_t len) {
    std::size_t b = offset > 40 ? offset - 40 : 0;
    std::size_t e = std::min(text.size(), offset + len + 40);
    while (b > 0 && b < text.size() && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
    while (e < text.size() && (static_cast<unsigned char>(text[e]) & 0xC0) == 0x80) ++e;
    std::string o = (b > 0 ? "..." : "") + std::string(text.substr(b, e - b)) + (e < text.size() ? "..." : "");
    for (auto& c : o)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return o;
}

}  // namespace

std::size_t Verification::checked() const {
    return static_cast<std::size_t>(std::count_if(figures.begin(), figures.end(), [](const auto& f) { return f.checked; }));
}
std::size_t Verification::unchecked() const { return figures.size() - checked(); }

json Verification::toJson() const {
    json c = json::array(), u = json::array();
    for (const auto& f : figures) {
        if (f.checked)
            c.push_back({{"text", f.figure.text}, {"kind", kindName(f.figure.kind)}, {"source", f.source}});
        else
            u.push_back({{"text", f.figure.text}, {"kind", kindName(f.figure.kind)}, {"context", f.context}});
    }
    return {{"ok", ok()}, {"checked", std::move(c)}, {"unchecked", std::move(u)}};
}

Verification verifyFigures(std::string_view answer, const Facts& facts) {
    Verification v;
    for (auto& f : extractFigures(answer)) {
        CheckedFigure cf;
        cf.context = contextOf(answer, f.offset, f.text.size());
        if (auto where = facts.find(f)) {
            cf.checked = true;
            cf.source = std::move(*where);
        }
        cf.figure = std::move(f);
        v.figures.push_back(std::move(cf));
    }
    return v;
}

}  // namespace netprobe::assistant
