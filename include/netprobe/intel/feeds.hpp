// Threat-intelligence feeds: IP and domain indicators parsed from the common list
// formats (plain lists, Spamhaus DROP, FireHOL netsets, CSV, hosts files, domain
// lists, STIX 2.1 bundles), and the YAML configuration naming the feeds.
//
// Parsing is pure (no I/O, no clock: `now` is passed in) and total: any input gives a
// ParsedFeed; a line that is not understood is a LineError, never an exception.
//
// Matching semantics for the consumer: an IpIndicator matches every address inside
// its prefix; a DomainIndicator matches the domain itself and every subdomain of it
// ("evil.example" matches "evil.example" and "a.b.evil.example", not "notevil.example").
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::intel {

// Plain, Netset: one IP or CIDR a line; '#'/';' comments, a trailing comment becomes the note.
// Spamhaus: the same ("1.10.16.0/20 ; SBL256894": note SBL256894) plus the JSON-lines
//   DROP format ({"cidr":..,"sblid":..}; the {"type":"metadata"} line is skipped).
// Csv: a header names the columns: the indicator (ip, ip_address, indicator, cidr, network,
//   value, dst_ip), optionally confidence/score (0-100, or 0.0-1.0 scaled) and
//   comment/description (the note). The header may be the last '#' comment before the
//   data (abuse.ch). RFC 4180 quoting within a line (no line breaks inside quotes).
// Hosts: "0.0.0.0 a.example b.example" -> domains; localhost & co. are skipped.
// Domains: one a line; "*.d", ".d" and "||d^" are d (noted "wildcard").
// Stix: a 2.1 bundle (or a bare list / a bare indicator); indicators whose pattern is
//   only ipv4-addr/ipv6-addr/domain-name :value '=' (or ISSUBSET for addresses) joined by
//   OR; anything else is one error naming the indicator id (line 0).
enum class FeedFormat { Plain, Spamhaus, Netset, Csv, Hosts, Domains, Stix };
enum class Action { Alert, Block };

// A prefix over the 16-byte address; IPv4 is IPv4-mapped (::ffff:a.b.c.d) and its
// length is 96 + the IPv4 length. Host bits are always zero.
struct Prefix {
    std::array<std::uint8_t, 16> addr{};
    std::uint8_t len = 0;

    [[nodiscard]] bool v4() const;
    [[nodiscard]] std::string str() const;  // "198.18.0.0/15", "fd6e::/32", "198.51.100.1/32"
    friend auto operator<=>(const Prefix&, const Prefix&) = default;
};
// "198.18.0.0/15", "fd6e::/32", or a bare address (a /32 or /128). Host bits beyond
// the length are cleared ("10.0.0.1/8" -> 10.0.0.0/8). /0 is refused (it would match
// every address); so is anything but hex digits, '.', ':' and '/'.
[[nodiscard]] std::optional<Prefix> parsePrefix(std::string_view text);

// Lower-case, without a trailing dot.
[[nodiscard]] std::optional<std::string> normalizeDomain(std::string_view text);

struct IpIndicator {
    Prefix prefix;
    std::uint8_t confidence = 100;
    std::string note;  // Spamhaus SBL id, inline/CSV comment, STIX "indicator--<id> (name)"
};

struct DomainIndicator {
    std::string domain;  // lower-case, no trailing dot; matches itself and its subdomains
    std::uint8_t confidence = 100;
    std::string note;
};

struct LineError {
    std::size_t line = 0;  // 1-based; 0 when unknown (STIX objects, a bundle that is not JSON)
    std::string reason;
};

inline constexpr std::size_t kMaxLineErrors = 1000;

struct ParsedFeed {
    std::vector<IpIndicator> ips;        // deduplicated, in first-seen order
    std::vector<DomainIndicator> domains;
    std::vector<LineError> errors;       // the first kMaxLineErrors ...
    std::size_t errors_omitted = 0;      // ... and how many more there were
    std::size_t expired = 0;             // STIX: not valid at `now` (or revoked)
};

// Indicators of one feed's text. defaultConfidence (clamped to 100) applies to the
// entries that carry none. Duplicate prefixes/domains are merged, keeping the highest
// confidence (and that entry's note).
[[nodiscard]] ParsedFeed parseFeed(FeedFormat format, std::string_view text, std::uint8_t defaultConfidence,
                                   std::chrono::system_clock::time_point now);

// "plain", "spamhaus", "netset", "csv", "hosts", "domains", "stix".
[[nodiscard]] std::optional<FeedFormat> feedFormatFromName(std::string_view name);
[[nodiscard]] std::string_view feedFormatName(FeedFormat format);
[[nodiscard]] std::string_view actionName(Action action);  // "alert", "block"

// ---------------------------------------------------------------------------
// Configuration (docs: the YAML below)
//
//   feeds:
//     - name: spamhaus-drop          # [A-Za-z0-9_.-]{1,64}, unique
//       type: spamhaus               # a feedFormatName
//       path: /var/lib/netprobe/intel/drop.txt   # exactly one of path and url
//       refresh: 1h                  # >= 10s (default 1h): how often a url is fetched
//       ca_file: /etc/ssl/feed-ca.pem  # https url only: the CAs to trust (default: the system's)
//       action: block                # alert (default) | block
//       confidence: 90               # 0-100, for entries without one (default 100)
//   resolved:                        # addresses that DNS answers give for domain indicators
//     min_ttl: 60s                   # held at least this long (default 60s; >= 1s)
//     max_ttl: 1d                    # at most this long (default 1d; >= min_ttl)
//     max_addresses: 16384           # held at once (1-65536; beyond: not held, counted)

struct FeedConfig {
    std::string name;
    FeedFormat format = FeedFormat::Plain;
    std::string path;  // exactly one of path and url is set
    std::string url;   // http:// or https://
    std::string ca_file;  // https: trust only this PEM bundle (default: the system's CAs)
    std::chrono::seconds refresh{3600};
    Action action = Action::Alert;
    std::uint8_t confidence = 100;
};

inline constexpr std::size_t kMaxFeeds = 64;  // NP_INTEL_FEEDS_MAX: per-feed kernel counters

// An address a DNS answer gave for a name that a domain indicator covers becomes a
// temporary IP indicator of that feed for the record's TTL, clamped to [min_ttl,
// max_ttl] (a client connects right after the answer: a TTL of 0 must not expire
// before its first packet).
struct ResolvedConfig {
    std::chrono::seconds min_ttl{60};
    std::chrono::seconds max_ttl{86400};
    std::size_t max_addresses = 16384;
};

struct IntelConfig {
    std::vector<FeedConfig> feeds;
    ResolvedConfig resolved;
};

// Errors name the line, the key and the reason:
// "line 4: feeds[1].type: unknown feed type 'x' (plain, spamhaus, netset, csv, hosts, domains, stix)".
[[nodiscard]] Result<IntelConfig> parseIntelConfig(std::string_view yamlText);
[[nodiscard]] Result<IntelConfig> loadIntelConfig(const std::string& path);

}  // namespace netprobe::intel
