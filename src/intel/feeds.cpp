// Threat-intelligence feeds: the list formats, CSV, hosts files, domain lists and
// STIX 2.1 bundles -> deduplicated indicators; the feeds' YAML configuration.
#include "netprobe/intel/feeds.hpp"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <netprobe/util/duration.hpp>
#include <netprobe/util/ip.hpp>
#include <netprobe/util/parse.hpp>

namespace netprobe::intel {

using json = nlohmann::json;
using std::string_view;
constexpr auto npos = string_view::npos;

namespace {

constexpr std::size_t kMaxNote = 200;   // bytes of a note kept
constexpr int kMaxJsonDepth = 64;       // STIX bundles nest ~5 levels

// Hand-written loops: find_first_of & co. call memchr once per byte of the input.
constexpr bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

string_view trim(string_view s) {
    std::size_t b = 0, e = s.size();
    while (b < e && isSpace(s[b])) ++b;
    while (e > b && isSpace(s[e - 1])) --e;
    return s.substr(b, e - b);
}

// The end of the first token of a line: whitespace or a '#'/';' comment.
std::size_t tokenEnd(string_view s) {
    std::size_t i = 0;
    while (i < s.size() && !isSpace(s[i]) && s[i] != '#' && s[i] != ';') ++i;
    return i;
}

std::string lower(string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    return out;
}

bool iequals(string_view a, string_view b) { return a.size() == b.size() && lower(a) == lower(b); }

// Text of the input for an error message: quoted, at most 48 bytes, unprintable bytes as '?'.
std::string quote(string_view s) {
    std::string out = "'";
    for (char c : s.substr(0, 48)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out + (s.size() > 48 ? "...'" : "'");
}

std::string clip(string_view s) { return std::string(s.substr(0, kMaxNote)); }

void addError(ParsedFeed& out, std::size_t line, std::string reason) {
    if (out.errors.size() < kMaxLineErrors)
        out.errors.push_back({line, std::move(reason)});
    else
        ++out.errors_omitted;
}

// Calls f(line number, line) for each line, without "\n" or "\r\n"; a UTF-8 BOM is skipped.
template <class F>
void forEachLine(string_view text, F&& f) {
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
    for (std::size_t no = 1; !text.empty(); ++no) {
        const auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text.remove_prefix(nl == npos ? text.size() : nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        f(no, line);
    }
}

// parsePrefix, with the reason when it fails.
std::optional<Prefix> prefixOf(string_view text, std::string* why) {
    auto bad = [&](const char* reason) -> std::optional<Prefix> {
        if (why) *why = reason + quote(text);
        return std::nullopt;
    };
    // The filter also keeps NULs away from inet_pton, which would stop at them.
    if (text.empty() || text.size() > 64 || !std::all_of(text.begin(), text.end(), [](char c) {
            return std::isxdigit(static_cast<unsigned char>(c)) || c == '.' || c == ':' || c == '/';
        }))
        return bad("not an IP address or CIDR: ");
    const auto slash = text.find('/');
    const auto host = text.substr(0, slash);
    const auto a = util::parseAddr(host);
    if (!a) return bad("not an IP address or CIDR: ");
    const bool v4 = host.find(':') == npos;
    unsigned len = v4 ? 32 : 128;
    if (slash != npos && (!util::parseNumber(text.substr(slash + 1), len) || len > (v4 ? 32u : 128u)))
        return bad("bad prefix length: ");
    if (len == 0) return bad("a /0 prefix would match every address: ");
    Prefix p;
    p.len = static_cast<std::uint8_t>(v4 ? 96 + len : len);
    p.addr = util::maskAddr(*a, p.len);  // host bits cleared ("10.0.0.1/8" is 10.0.0.0/8)
    // IPv4 is stored IPv4-mapped: an IPv6 prefix of 96 bits or fewer that holds
    // ::ffff:0.0.0.0/96 (e.g. "::ffff:198.51.100.9/96", "::/80") covers every IPv4 address.
    if (p.len <= 96) {
        util::Addr16 mapped{};
        mapped[10] = mapped[11] = 0xff;
        if (util::maskAddr(mapped, p.len) == p.addr) return bad("the prefix holds every IPv4 address (::ffff:0:0/96): ");
    }
    return p;
}

// normalizeDomain, with the reason when it fails.
std::optional<std::string> domainOf(string_view d, std::string* why) {
    auto bad = [&](const std::string& reason) -> std::optional<std::string> {
        if (why) *why = quote(d) + ": " + reason;
        return std::nullopt;
    };
    if (d.ends_with('.')) d.remove_suffix(1);
    if (d.empty()) return bad("empty domain");
    if (d.size() > 253) return bad("longer than 253 characters");
    std::string out = lower(d);
    std::size_t start = 0, labels = 0;
    for (std::size_t i = 0; i <= out.size(); ++i) {
        if (i == out.size() || out[i] == '.') {
            if (i == start) return bad("empty label");
            if (i - start > 63) return bad("a label longer than 63 characters");
            ++labels;
            start = i + 1;
            continue;
        }
        const char c = out[i];
        if (static_cast<unsigned char>(c) >= 0x80) return bad("non-ASCII (give IDNs in punycode, xn--...)");
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return bad("invalid character " + quote(string_view(&c, 1)));
    }
    if (labels < 2) return bad("a single label (it would match every domain under it)");
    if (out.find_first_not_of("0123456789", out.rfind('.') + 1) == npos)
        return bad("a numeric top-level label (an IP address?)");
    return out;
}

// Merges entries with the same key, keeping the first position, the highest
// confidence and that entry's note (open addressing over indices: O(n)).
template <class T, class Key, class Hash>
void dedupe(std::vector<T>& v, Key key, Hash hash) {
    if (v.size() < 2) return;
    const std::size_t mask = std::bit_ceil(v.size() * 2) - 1;
    std::vector<std::uint32_t> slots(mask + 1, 0);  // index + 1 of the entry kept, 0: free
    std::vector<bool> drop(v.size());
    bool any = false;
    for (std::uint32_t i = 0; i < v.size(); ++i)
        for (std::size_t s = hash(key(v[i])) & mask;; s = (s + 1) & mask) {
            if (slots[s] == 0) {
                slots[s] = i + 1;
                break;
            }
            T& first = v[slots[s] - 1];
            if (key(first) != key(v[i])) continue;
            if (v[i].confidence > first.confidence) {
                first.confidence = v[i].confidence;
                first.note = std::move(v[i].note);
            }
            drop[i] = any = true;
            break;
        }
    if (!any) return;
    std::size_t w = 0;
    for (std::size_t r = 0; r < v.size(); ++r)
        if (!drop[r]) {
            if (w != r) v[w] = std::move(v[r]);
            ++w;
        }
    v.resize(w);
}

std::size_t hashPrefix(const Prefix& p) {
    std::uint64_t hi, lo;
    std::memcpy(&hi, p.addr.data(), 8);
    std::memcpy(&lo, p.addr.data() + 8, 8);
    std::uint64_t h = (hi * 0x9e3779b97f4a7c15ULL) ^ (lo + p.len) * 0xc2b2ae3d27d4eb4fULL;
    return static_cast<std::size_t>(h ^ (h >> 29));
}

// ---------------------------------------------------------------------------
// JSON (STIX, Spamhaus JSON lines)

bool nestedDeeperThan(string_view s, int limit) {
    int depth = 0;
    bool inString = false, escaped = false;
    for (const char c : s) {
        if (inString) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

std::optional<json> parseJson(string_view text, std::string& why) {
    if (nestedDeeperThan(text, kMaxJsonDepth)) {
        why = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
        return std::nullopt;
    }
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        why = e.what();
        return std::nullopt;
    }
}

// The string member `key` of object o, or "" when absent or not a string.
string_view member(const json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? string_view(it->get_ref<const std::string&>()) : string_view();
}

// ---------------------------------------------------------------------------
// Line formats: plain lists, FireHOL netsets, Spamhaus DROP/EDROP/DROPv6

void spamhausJsonLine(ParsedFeed& out, std::size_t no, string_view line, std::uint8_t conf) {
    std::string why;
    const auto j = parseJson(line, why);
    if (!j) return addError(out, no, "invalid JSON: " + why);
    if (!j->is_object()) return addError(out, no, "expected a JSON object");
    if (member(*j, "type") == "metadata") return;
    const auto cidr = member(*j, "cidr");
    if (cidr.empty()) return addError(out, no, "no \"cidr\" member");
    const auto p = prefixOf(cidr, &why);
    if (!p) return addError(out, no, why);
    out.ips.push_back({*p, conf, clip(member(*j, "sblid"))});
}

void parseLines(ParsedFeed& out, string_view text, std::uint8_t conf, bool jsonLines) {
    forEachLine(text, [&](std::size_t no, string_view line) {
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') return;
        if (jsonLines && line[0] == '{') return spamhausJsonLine(out, no, line, conf);
        const auto end = tokenEnd(line);
        const auto token = line.substr(0, end);
        const auto rest = trim(line.substr(end));
        if (!rest.empty() && rest[0] != '#' && rest[0] != ';')
            return addError(out, no, "unexpected text after the address: " + quote(rest));
        std::string why;
        const auto p = prefixOf(token, &why);
        if (!p) return addError(out, no, why);
        out.ips.push_back({*p, conf, rest.empty() ? std::string() : clip(trim(rest.substr(1)))});
    });
}

// ---------------------------------------------------------------------------
// CSV

// The RFC 4180 fields of one line (unquoted fields trimmed); false on a quote
// that is not closed or is followed by more than spaces before the comma.
bool splitCsv(string_view line, std::vector<std::string>& fields) {
    fields.clear();
    for (std::size_t i = 0;;) {
        const auto j = std::min(line.find_first_not_of(" \t", i), line.size());
        if (j < line.size() && line[j] == '"') {
            std::string f;
            for (i = j + 1;; ++i) {
                if (i >= line.size()) return false;
                if (line[i] == '"') {
                    if (i + 1 < line.size() && line[i + 1] == '"') ++i;  // "" is one quote
                    else break;
                }
                f += line[i];
            }
            i = std::min(line.find_first_not_of(" \t", i + 1), line.size());
            if (i < line.size() && line[i] != ',') return false;
            fields.push_back(std::move(f));
        } else {
            const auto comma = line.find(',', i);
            fields.emplace_back(trim(line.substr(i, comma == npos ? npos : comma - i)));
            i = comma == npos ? line.size() : comma;
        }
        if (i >= line.size()) return true;
        ++i;  // past the comma
    }
}

struct CsvColumns {
    std::size_t indicator = npos, confidence = npos, note = npos;
};

constexpr const char* kIndicatorColumns = "ip, ip_address, indicator, cidr, network, value, dst_ip";

std::optional<CsvColumns> csvHeader(string_view line) {
    static const std::set<std::string, std::less<>> indicator = {"ip",      "ip_address", "indicator", "cidr",
                                                                  "network", "value",      "dst_ip"};
    static const std::set<std::string, std::less<>> note = {"comment", "comments", "description", "note"};
    std::vector<std::string> fields;
    if (!splitCsv(line, fields)) return std::nullopt;
    CsvColumns c;
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::string n = lower(trim(fields[i]));
        if (c.indicator == npos && indicator.contains(n)) c.indicator = i;
        else if (c.confidence == npos && (n == "confidence" || n == "score")) c.confidence = i;
        else if (c.note == npos && note.contains(n)) c.note = i;
    }
    if (c.indicator == npos) return std::nullopt;
    return c;
}

// 0-100, or a fraction in [0,1] written with a '.' or an exponent ("0.85" -> 85).
std::optional<std::uint8_t> score(string_view s) {
    double v = 0;
    if (!util::parseNumber(s, v) || !std::isfinite(v)) return std::nullopt;
    if (s.find_first_of(".eE") != npos && v >= 0 && v <= 1) v *= 100;
    if (v < 0 || v > 100) return std::nullopt;
    return static_cast<std::uint8_t>(std::lround(v));
}

void parseCsv(ParsedFeed& out, string_view text, std::uint8_t conf) {
    std::optional<CsvColumns> cols;
    std::string lastComment;  // abuse.ch-style CSVs put the header in a comment
    bool noHeader = false;
    std::vector<std::string> f;
    forEachLine(text, [&](std::size_t no, string_view line) {
        const auto t = trim(line);
        if (noHeader || t.empty()) return;
        if (!cols) {
            if (t[0] == '#') {
                lastComment = trim(t.substr(1));
                return;
            }
            cols = csvHeader(t);
            if (cols) return;
            cols = csvHeader(lastComment);
            if (!cols) {
                noHeader = true;
                return addError(out, no, std::string("expected a header line naming an indicator column (") +
                                             kIndicatorColumns + ")");
            }
        }
        if (t[0] == '#') return;
        if (!splitCsv(t, f)) return addError(out, no, "a quote that is not closed or not followed by a comma");
        if (cols->indicator >= f.size()) return addError(out, no, "no indicator column in this row");
        std::string why;
        const auto p = prefixOf(trim(f[cols->indicator]), &why);
        if (!p) return addError(out, no, why);
        IpIndicator ind{*p, conf, {}};
        if (cols->confidence < f.size() && !trim(f[cols->confidence]).empty()) {
            const auto s = score(trim(f[cols->confidence]));
            if (!s) return addError(out, no, "confidence: expected 0-100 or 0-1, got " + quote(f[cols->confidence]));
            ind.confidence = *s;
        }
        if (cols->note < f.size()) ind.note = clip(trim(f[cols->note]));
        out.ips.push_back(std::move(ind));
    });
}

// ---------------------------------------------------------------------------
// Hosts files and domain lists

bool ignoredHostName(string_view n) {
    static const std::set<std::string, std::less<>> names = {
        "localhost",  "localhost.localdomain",   "local",     "broadcasthost",          "0.0.0.0",
        "localhost4", "localhost4.localdomain4", "localhost6", "localhost6.localdomain6"};
    return names.contains(n) || n.starts_with("ip6-");
}

void parseHosts(ParsedFeed& out, string_view text, std::uint8_t conf) {
    forEachLine(text, [&](std::size_t no, string_view line) {
        const auto hash = line.find('#');
        const auto note = hash == npos ? std::string() : clip(trim(line.substr(hash + 1)));
        line = trim(line.substr(0, hash));
        if (line.empty()) return;
        auto next = [&line]() {
            auto end = line.begin();
            while (end != line.end() && !isSpace(*end)) ++end;
            const auto tok = string_view(line.begin(), end);
            line = trim(string_view(end, line.end()));
            return tok;
        };
        const auto addr = next();  // "fe80::1%lo0": the zone does not matter
        if (addr.find('/') != npos || !prefixOf(addr.substr(0, addr.find('%')), nullptr))
            return addError(out, no, "expected an IP address and host names, got " + quote(addr));
        if (line.empty()) return addError(out, no, "no host name after the address");
        while (!line.empty()) {
            auto name = lower(next());
            if (name.ends_with('.')) name.pop_back();
            if (ignoredHostName(name)) continue;
            std::string why;
            if (auto d = domainOf(name, &why)) out.domains.push_back({std::move(*d), conf, note});
            else addError(out, no, why);
        }
    });
}

void parseDomains(ParsedFeed& out, string_view text, std::uint8_t conf) {
    forEachLine(text, [&](std::size_t no, string_view line) {
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';' || line[0] == '!') return;
        const auto end = tokenEnd(line);
        auto token = line.substr(0, end);
        const auto rest = trim(line.substr(end));
        if (!rest.empty() && rest[0] != '#' && rest[0] != ';')
            return addError(out, no, "unexpected text after the domain: " + quote(rest));
        // "*.evil.example", ".evil.example" and the adblock "||evil.example^" all mean the
        // domain and its subdomains, which is what every domain indicator matches.
        bool wildcard = true;
        if (token.starts_with("||") && token.ends_with('^') && token.size() > 3)
            token = token.substr(2, token.size() - 3);
        else if (token.starts_with("*.")) token.remove_prefix(2);
        else if (token.starts_with('.')) token.remove_prefix(1);
        else wildcard = false;
        std::string why;
        auto d = domainOf(token, &why);
        if (!d) return addError(out, no, why);
        std::string note = wildcard ? "wildcard" : "";
        if (!rest.empty() && !trim(rest.substr(1)).empty())
            note += (note.empty() ? "" : "; ") + clip(trim(rest.substr(1)));
        out.domains.push_back({std::move(*d), conf, std::move(note)});
    });
}

// ---------------------------------------------------------------------------
// STIX 2.1

using Micros = std::chrono::sys_time<std::chrono::microseconds>;  // year 9999 fits, unlike ns

// RFC 3339: "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456Z", "...+02:00".
std::optional<Micros> parseTimestamp(string_view s) {
    auto num = [&s](std::size_t pos, std::size_t n, int& v) {
        if (pos + n > s.size()) return false;
        v = 0;
        for (std::size_t k = pos; k < pos + n; ++k) {
            if (s[k] < '0' || s[k] > '9') return false;
            v = v * 10 + (s[k] - '0');
        }
        return true;
    };
    int y, mo, d, h, mi, sec;
    if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) || !num(17, 2, sec) ||
        s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':' || h > 23 || mi > 59 || sec > 60)
        return std::nullopt;
    std::size_t i = 19;
    std::chrono::microseconds frac{0};
    if (i < s.size() && s[i] == '.') {
        const std::size_t start = ++i;
        for (long scale = 100000; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10)
            frac += std::chrono::microseconds((s[i] - '0') * scale);
        if (i == start) return std::nullopt;
    }
    std::chrono::minutes offset{0};
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (int oh, om; i < s.size() && (s[i] == '+' || s[i] == '-') && num(i + 1, 2, oh) &&
                           i + 3 < s.size() && s[i + 3] == ':' && num(i + 4, 2, om) && oh < 24 && om < 60) {
        offset = std::chrono::minutes((s[i] == '-' ? -1 : 1) * (oh * 60 + om));
        i += 6;
    } else {
        return std::nullopt;
    }
    const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(static_cast<unsigned>(mo)),
                                          std::chrono::day(static_cast<unsigned>(d))};
    if (i != s.size() || !ymd.ok()) return std::nullopt;
    return Micros(std::chrono::sys_days(ymd)) + std::chrono::hours(h) + std::chrono::minutes(mi) +
           std::chrono::seconds(std::min(sec, 59)) + frac - offset;
}

struct Comparison {
    string_view type;  // "ipv4-addr", "ipv6-addr", "domain-name"
    std::string value;
};

// The comparisons of a pattern made of `type:value = 'literal'` (or ISSUBSET for
// addresses) joined by OR, in one or more observation expressions joined by OR:
// "[ipv4-addr:value = '198.51.100.1' OR ipv4-addr:value = '203.0.113.0/24']".
// Anything else (AND, FOLLOWEDBY, qualifiers, other objects or properties) is nullopt.
std::optional<std::vector<Comparison>> parsePattern(string_view p) {
    std::vector<Comparison> out;
    std::size_t i = 0;
    auto ws = [&] {
        while (i < p.size() && isSpace(p[i])) ++i;
    };
    auto eat = [&](string_view t) {
        ws();
        if (!p.substr(i).starts_with(t)) return false;
        i += t.size();
        return true;
    };
    auto word = [&] {
        ws();
        const auto start = i;
        auto inWord = [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.';
        };
        while (i < p.size() && inWord(p[i])) ++i;
        return p.substr(start, i - start);
    };
    auto keyword = [&](string_view kw) {
        const auto save = i;
        if (iequals(word(), kw)) return true;
        i = save;
        return false;
    };
    for (;;) {
        if (!eat("[")) return std::nullopt;
        for (;;) {
            const auto path = word();
            if (path != "ipv4-addr:value" && path != "ipv6-addr:value" && path != "domain-name:value")
                return std::nullopt;
            const auto type = path.substr(0, path.find(':'));
            const bool equals = eat("=");  // ISSUBSET: an address in a CIDR, i.e. the CIDR
            if (!equals && (type == "domain-name" || !keyword("ISSUBSET"))) return std::nullopt;
            if (!eat("'")) return std::nullopt;
            std::string value;
            for (;; ++i) {
                if (i >= p.size()) return std::nullopt;
                if (p[i] == '\'') break;
                if (p[i] == '\\' && ++i >= p.size()) return std::nullopt;
                value += p[i];
            }
            ++i;
            out.push_back({type, std::move(value)});
            if (keyword("OR")) continue;
            if (eat("]")) break;
            return std::nullopt;
        }
        ws();
        if (i == p.size()) return out;
        if (!keyword("OR")) return std::nullopt;
    }
}

void stixIndicator(ParsedFeed& out, const json& o, std::uint8_t conf, Micros now) {
    const std::string id = member(o, "id").empty() ? "indicator without an id" : clip(member(o, "id"));
    auto fail = [&](const std::string& why) { addError(out, 0, id + ": " + why); };
    if (o.contains("pattern_type") && member(o, "pattern_type") != "stix")
        return fail("pattern_type " + quote(member(o, "pattern_type")) + " is not supported (only stix)");
    if (const auto r = o.find("revoked"); r != o.end() && r->is_boolean() && r->get<bool>()) {
        ++out.expired;
        return;
    }
    std::optional<Micros> from, until;
    for (auto [key, t] : {std::pair{"valid_from", &from}, std::pair{"valid_until", &until}}) {
        if (!o.contains(key)) continue;
        *t = parseTimestamp(member(o, key));
        if (!*t) return fail(std::string(key) + ": expected an RFC 3339 timestamp");
    }
    if ((from && *from > now) || (until && *until <= now)) {
        ++out.expired;
        return;
    }
    std::uint8_t confidence = conf;
    if (const auto c = o.find("confidence"); c != o.end()) {
        if (!c->is_number_integer() || c->get<std::int64_t>() < 0 || c->get<std::int64_t>() > 100)
            return fail("confidence: expected an integer from 0 to 100");
        confidence = static_cast<std::uint8_t>(c->get<std::int64_t>());
    }
    const auto pattern = member(o, "pattern");
    const auto cmps = parsePattern(pattern);
    if (!cmps)
        return fail("unsupported pattern (only ipv4-addr, ipv6-addr and domain-name values joined by OR): " +
                    quote(pattern));
    std::string note = id;
    if (const auto name = member(o, "name"); !name.empty()) note = clip(note + " (" + std::string(name) + ")");
    std::vector<IpIndicator> ips;
    std::vector<DomainIndicator> domains;
    for (const auto& c : *cmps) {  // all or nothing: a value that does not parse rejects the indicator
        std::string why;
        if (c.type == "domain-name") {
            auto d = domainOf(c.value, &why);
            if (!d) return fail("domain-name " + why);
            domains.push_back({std::move(*d), confidence, note});
        } else {
            const auto p = prefixOf(c.value, &why);
            if (!p) return fail(std::string(c.type) + ": " + why);
            if (p->v4() != (c.type == "ipv4-addr"))
                return fail(std::string(c.type) + ": wrong address family " + quote(c.value));
            ips.push_back({*p, confidence, note});
        }
    }
    out.ips.insert(out.ips.end(), std::make_move_iterator(ips.begin()), std::make_move_iterator(ips.end()));
    out.domains.insert(out.domains.end(), std::make_move_iterator(domains.begin()),
                       std::make_move_iterator(domains.end()));
}

void parseStix(ParsedFeed& out, string_view text, std::uint8_t conf, Micros now) {
    std::string why;
    const auto doc = parseJson(text, why);
    if (!doc) return addError(out, 0, "not a JSON document: " + why);
    auto each = [&](const json& objects) {
        for (const auto& o : objects)
            if (o.is_object() && member(o, "type") == "indicator") stixIndicator(out, o, conf, now);
    };
    if (doc->is_array()) return each(*doc);  // a bare list of objects
    if (doc->is_object()) {
        if (member(*doc, "type") == "indicator") return stixIndicator(out, *doc, conf, now);
        if (const auto objs = doc->find("objects"); objs != doc->end() && objs->is_array()) return each(*objs);
    }
    addError(out, 0, "not a STIX bundle (no \"objects\" list)");
}

}  // namespace

// ---------------------------------------------------------------------------
// Public

bool Prefix::v4() const { return len >= 96 && util::isV4Mapped(addr); }

std::string Prefix::str() const { return util::formatAddr(addr) + "/" + std::to_string(v4() ? len - 96 : len); }

std::optional<Prefix> parsePrefix(string_view text) { return prefixOf(text, nullptr); }

std::optional<std::string> normalizeDomain(string_view text) { return domainOf(text, nullptr); }

ParsedFeed parseFeed(FeedFormat format, string_view text, std::uint8_t defaultConfidence,
                     std::chrono::system_clock::time_point now) {
    ParsedFeed out;
    const std::uint8_t conf = std::min<std::uint8_t>(defaultConfidence, 100);
    switch (format) {
    case FeedFormat::Plain:
    case FeedFormat::Netset: parseLines(out, text, conf, false); break;
    case FeedFormat::Spamhaus: parseLines(out, text, conf, true); break;
    case FeedFormat::Csv: parseCsv(out, text, conf); break;
    case FeedFormat::Hosts: parseHosts(out, text, conf); break;
    case FeedFormat::Domains: parseDomains(out, text, conf); break;
    case FeedFormat::Stix:
        parseStix(out, text, conf, std::chrono::time_point_cast<std::chrono::microseconds>(now));
        break;
    }
    dedupe(out.ips, [](const IpIndicator& i) -> const Prefix& { return i.prefix; }, hashPrefix);
    dedupe(out.domains, [](const DomainIndicator& d) -> const std::string& { return d.domain; },
           std::hash<std::string>());
    return out;
}

namespace {
constexpr std::pair<FeedFormat, string_view> kFormats[] = {
    {FeedFormat::Plain, "plain"}, {FeedFormat::Spamhaus, "spamhaus"}, {FeedFormat::Netset, "netset"},
    {FeedFormat::Csv, "csv"},     {FeedFormat::Hosts, "hosts"},       {FeedFormat::Domains, "domains"},
    {FeedFormat::Stix, "stix"},
};
}  // namespace

std::optional<FeedFormat> feedFormatFromName(string_view name) {
    for (const auto& [f, n] : kFormats)
        if (n == name) return f;
    return std::nullopt;
}

string_view feedFormatName(FeedFormat format) {
    for (const auto& [f, n] : kFormats)
        if (f == format) return n;
    return "plain";
}

string_view actionName(Action action) { return action == Action::Block ? "block" : "alert"; }

// ---------------------------------------------------------------------------
// YAML configuration

namespace {

struct ConfigError {
    std::string message;
};

[[noreturn]] void fail(const YAML::Node& n, const std::string& path, const std::string& why) {
    const int line = n.Mark().line;
    throw ConfigError{(line >= 0 ? "line " + std::to_string(line + 1) + ": " : std::string()) + path + ": " + why};
}

std::string scalar(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar()) fail(n, path, "expected a value, not a list or map");
    return n.Scalar();
}

bool validName(string_view s) {
    return !s.empty() && s.size() <= 64 &&
           std::all_of(s.begin(), s.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
           });
}

bool validUrl(string_view s) {
    const auto l = lower(s.substr(0, 8));
    const std::size_t scheme = l.starts_with("https://") ? 8 : l.starts_with("http://") ? 7 : 0;
    return scheme != 0 && s.size() > scheme && s[scheme] != '/' &&
           std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

FeedConfig feed(const YAML::Node& n, const std::string& path, const std::vector<FeedConfig>& before) {
    if (!n.IsMap()) fail(n, path, "expected a map of name, type, path or url, refresh, action, confidence");
    FeedConfig f;
    std::set<std::string> seen;
    for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>(), p = path + "." + k;
        const YAML::Node& v = kv.second;
        if (!seen.insert(k).second) fail(kv.first, p, "given twice");
        if (v.IsNull()) fail(kv.first, p, "expected a value, got nothing");
        if (k == "name") {
            f.name = scalar(v, p);
            if (!validName(f.name)) fail(v, p, "expected 1-64 letters, digits, '_', '.' or '-', got " + quote(f.name));
            for (std::size_t i = 0; i < before.size(); ++i)
                if (before[i].name == f.name)
                    fail(v, p, "duplicate feed name " + quote(f.name) + " (feeds[" + std::to_string(i) + "])");
        } else if (k == "type") {
            const auto t = feedFormatFromName(scalar(v, p));
            if (!t) {
                std::string known;
                for (const auto& [fmt, name] : kFormats) known += (known.empty() ? "" : ", ") + std::string(name);
                fail(v, p, "unknown feed type " + quote(v.Scalar()) + " (" + known + ")");
            }
            f.format = *t;
        } else if (k == "path") {
            f.path = scalar(v, p);
            if (f.path.empty()) fail(v, p, "must not be empty");
        } else if (k == "url") {
            f.url = scalar(v, p);
            if (!validUrl(f.url)) fail(v, p, "expected an http:// or https:// URL, got " + quote(f.url));
        } else if (k == "ca_file") {
            f.ca_file = scalar(v, p);
            if (f.ca_file.empty()) fail(v, p, "must not be empty");
        } else if (k == "refresh") {
            const auto d = util::parseDuration(scalar(v, p));
            if (!d) fail(v, p, "expected a duration such as 30s, 15m or 1h (" + d.error() + ")");
            if (*d < std::chrono::seconds(10)) fail(v, p, "must be at least 10s, got " + v.Scalar());
            f.refresh = std::chrono::duration_cast<std::chrono::seconds>(*d);
        } else if (k == "action") {
            const std::string a = scalar(v, p);
            if (a != "alert" && a != "block") fail(v, p, "expected alert or block, got " + quote(a));
            f.action = a == "block" ? Action::Block : Action::Alert;
        } else if (k == "confidence") {
            unsigned c = 0;
            if (!util::parseNumber(scalar(v, p), c) || c > 100)
                fail(v, p, "expected an integer from 0 to 100, got " + quote(v.Scalar()));
            f.confidence = static_cast<std::uint8_t>(c);
        } else {
            fail(kv.first, p, "unknown setting (known: name, type, path, url, ca_file, refresh, action, confidence)");
        }
    }
    if (!seen.contains("name")) fail(n, path + ".name", "required");
    if (!seen.contains("type")) fail(n, path + ".type", "required");
    if (f.path.empty() == f.url.empty())
        fail(n, path, f.path.empty() ? "one of path or url is required" : "path and url are exclusive, give one");
    if (!f.ca_file.empty() && !lower(f.url).starts_with("https://"))
        fail(n, path + ".ca_file", "only for an https:// url");
    return f;
}

ResolvedConfig resolvedConfig(const YAML::Node& n) {
    if (!n.IsMap()) fail(n, "resolved", "expected a map (min_ttl, max_ttl, max_addresses)");
    ResolvedConfig r;
    for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>();
        const std::string p = "resolved." + k;
        const YAML::Node& v = kv.second;
        if (k == "min_ttl" || k == "max_ttl") {
            auto d = util::parseDuration(scalar(v, p));
            if (!d) fail(v, p, "expected a duration (30s, 5m, 1h, 1d), got " + quote(v.Scalar()));
            const auto secs = std::chrono::duration_cast<std::chrono::seconds>(*d);
            if (secs < std::chrono::seconds(1)) fail(v, p, "must be at least 1s, got " + v.Scalar());
            (k == "min_ttl" ? r.min_ttl : r.max_ttl) = secs;
        } else if (k == "max_addresses") {
            unsigned long long m = 0;
            if (!util::parseNumber(scalar(v, p), m) || m < 1 || m > 65536)
                fail(v, p, "expected an integer from 1 to 65536, got " + quote(v.Scalar()));
            r.max_addresses = static_cast<std::size_t>(m);
        } else {
            fail(kv.first, p, "unknown setting (known: min_ttl, max_ttl, max_addresses)");
        }
    }
    if (r.max_ttl < r.min_ttl) fail(n, "resolved.max_ttl", "must not be below min_ttl");
    return r;
}

}  // namespace

Result<IntelConfig> parseIntelConfig(string_view yamlText) {
    try {
        const YAML::Node root = YAML::Load(std::string(yamlText));
        if (root.IsNull()) throw ConfigError{"feeds: required, a non-empty list of feeds"};
        if (!root.IsMap()) fail(root, "(top level)", "expected a map with a feeds list");
        for (const auto& kv : root)
            if (kv.first.as<std::string>() != "feeds" && kv.first.as<std::string>() != "resolved")
                fail(kv.first, kv.first.as<std::string>(), "unknown setting (known: feeds, resolved)");
        const YAML::Node feeds = root["feeds"];
        if (!feeds) fail(root, "feeds", "required, a non-empty list of feeds");
        if (!feeds.IsSequence() || feeds.size() == 0) fail(feeds, "feeds", "expected a non-empty list of feeds");
        if (feeds.size() > kMaxFeeds)
            fail(feeds, "feeds", "at most " + std::to_string(kMaxFeeds) + " feeds (the kernel counts each apart), got " +
                                     std::to_string(feeds.size()));
        IntelConfig cfg;
        for (std::size_t i = 0; i < feeds.size(); ++i)
            cfg.feeds.push_back(feed(feeds[i], "feeds[" + std::to_string(i) + "]", cfg.feeds));
        if (const YAML::Node r = root["resolved"]) cfg.resolved = resolvedConfig(r);
        return cfg;
    } catch (const ConfigError& e) {
        return std::unexpected(makeError(e.message));
    } catch (const YAML::Exception& e) {
        return std::unexpected(makeError("line " + std::to_string(e.mark.line + 1) + ": " + e.msg));
    }
}

Result<IntelConfig> loadIntelConfig(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::unexpected(errnoError(errno, "open intel config " + path));
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = parseIntelConfig(ss.str());
    if (!r) return std::unexpected(makeError(path + ": " + r.error().message));
    return r;
}

}  // namespace netprobe::intel
