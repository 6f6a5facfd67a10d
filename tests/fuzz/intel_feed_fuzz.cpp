// Threat-intel feed files (intel::parseFeed): downloaded lists the agent does not
// control. The first byte picks the format (bits 0-2: plain, spamhaus, netset, csv,
// hosts, domains, stix, plain) and the default confidence (bits 3-7, times 8: 0-248,
// so values above 100 test the clamp); the rest is the file. Invariants: no crash and
// no exception (parsing is total), every prefix masked, non-empty and shown as text
// that parses back to itself, every domain normalized, no duplicates, confidences
// within 0-100 (the default where the format carries none), errors bounded and on
// lines of the input, and "\r\n" line endings give the same result as "\n".
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <netprobe/intel/feeds.hpp>

#include "fuzz_util.hpp"

namespace ni = netprobe::intel;
using ni::FeedFormat;

namespace {

constexpr FeedFormat kFormats[8] = {FeedFormat::Plain, FeedFormat::Spamhaus, FeedFormat::Netset,
                                    FeedFormat::Csv,   FeedFormat::Hosts,    FeedFormat::Domains,
                                    FeedFormat::Stix,  FeedFormat::Plain};

// 2024-06-01T12:00:00Z (as the unit tests): STIX validity windows are judged at it.
const std::chrono::system_clock::time_point kNow{std::chrono::sys_days{std::chrono::year{2024} / 6 / 1} +
                                                 std::chrono::hours(12)};

// The longest note: 200 bytes kept of a comment, "wildcard; " before it for domains.
constexpr std::size_t kMaxNote = 200 + 10;

void check(const ni::ParsedFeed& p, FeedFormat format, std::uint8_t conf, std::size_t lines) {
    const bool ipFormat = format == FeedFormat::Plain || format == FeedFormat::Spamhaus ||
                          format == FeedFormat::Netset || format == FeedFormat::Csv;
    const bool domainFormat = format == FeedFormat::Hosts || format == FeedFormat::Domains;
    // Only CSV and STIX entries carry a confidence of their own.
    const bool fixedConfidence = format != FeedFormat::Csv && format != FeedFormat::Stix;
    NP_FUZZ_CHECK(!domainFormat || p.ips.empty());
    NP_FUZZ_CHECK(!ipFormat || p.domains.empty());
    NP_FUZZ_CHECK(format == FeedFormat::Stix || p.expired == 0);

    std::set<ni::Prefix> prefixes;
    for (const auto& i : p.ips) {
        NP_FUZZ_CHECK(i.prefix.len >= 1 && i.prefix.len <= 128);
        for (unsigned bit = i.prefix.len; bit < 128; ++bit)  // host bits cleared
            NP_FUZZ_CHECK((i.prefix.addr[bit / 8] & (0x80 >> (bit % 8))) == 0);
        // The text the API and the logs show names this very prefix.
        const auto again = ni::parsePrefix(i.prefix.str());
        NP_FUZZ_CHECK(again && *again == i.prefix);
        NP_FUZZ_CHECK(i.confidence <= 100);
        NP_FUZZ_CHECK(!fixedConfidence || i.confidence == conf);
        NP_FUZZ_CHECK(i.note.size() <= kMaxNote);
        NP_FUZZ_CHECK(prefixes.insert(i.prefix).second);  // deduplicated
    }
    std::set<std::string> domains;
    for (const auto& d : p.domains) {
        NP_FUZZ_CHECK(ni::normalizeDomain(d.domain) == d.domain);
        NP_FUZZ_CHECK(d.confidence <= 100);
        NP_FUZZ_CHECK(!fixedConfidence || d.confidence == conf);
        NP_FUZZ_CHECK(d.note.size() <= kMaxNote);
        NP_FUZZ_CHECK(domains.insert(d.domain).second);
    }

    NP_FUZZ_CHECK(p.errors.size() <= ni::kMaxLineErrors);
    NP_FUZZ_CHECK(p.errors_omitted == 0 || p.errors.size() == ni::kMaxLineErrors);
    for (const auto& e : p.errors) {
        NP_FUZZ_CHECK(!e.reason.empty());
        NP_FUZZ_CHECK(e.line <= lines);
        NP_FUZZ_CHECK(format == FeedFormat::Stix ? e.line == 0 : e.line >= 1);
    }
}

bool sameIndicators(const ni::ParsedFeed& a, const ni::ParsedFeed& b) {
    if (a.ips.size() != b.ips.size() || a.domains.size() != b.domains.size() || a.expired != b.expired) return false;
    for (std::size_t k = 0; k < a.ips.size(); ++k)
        if (a.ips[k].prefix != b.ips[k].prefix || a.ips[k].confidence != b.ips[k].confidence ||
            a.ips[k].note != b.ips[k].note)
            return false;
    for (std::size_t k = 0; k < a.domains.size(); ++k)
        if (a.domains[k].domain != b.domains[k].domain || a.domains[k].confidence != b.domains[k].confidence ||
            a.domains[k].note != b.domains[k].note)
            return false;
    return true;
}

bool sameErrors(const ni::ParsedFeed& a, const ni::ParsedFeed& b) {
    if (a.errors.size() != b.errors.size() || a.errors_omitted != b.errors_omitted) return false;
    for (std::size_t k = 0; k < a.errors.size(); ++k)
        if (a.errors[k].line != b.errors[k].line || a.errors[k].reason != b.errors[k].reason) return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const FeedFormat format = kFormats[data[0] & 7];
    const auto defaultConfidence = static_cast<std::uint8_t>((data[0] >> 3) * 8);
    const std::uint8_t conf = defaultConfidence > 100 ? 100 : defaultConfidence;
    const auto in = netprobe::fuzz::text(data + 1, size - 1);

    std::size_t lines = 1;
    for (char c : in) lines += c == '\n';
    const auto parsed = ni::parseFeed(format, in, defaultConfidence, kNow);
    check(parsed, format, conf, lines);

    // The same file with Windows line endings: the same indicators; the same errors
    // for the line formats (STIX error texts may carry JSON byte offsets).
    if (in.find('\n') != std::string_view::npos) {
        std::string crlf;
        crlf.reserve(in.size() + lines);
        for (char c : in) {
            if (c == '\n') crlf += '\r';
            crlf += c;
        }
        const auto again = ni::parseFeed(format, crlf, defaultConfidence, kNow);
        NP_FUZZ_CHECK(sameIndicators(parsed, again));
        NP_FUZZ_CHECK(format == FeedFormat::Stix || sameErrors(parsed, again));
    }
    return 0;
}
