// netprobe::intel::IndicatorSet - the indicators of every configured feed at one
// moment, immutable once built (shared by the kernel installer, the security stage
// and the export), and FeedLoader, which reads the feed files on its own cadence and
// builds a new set when one changed.
//
//   FeedLoader loader(config);
//   if (auto set = loader.refresh(now))      // background thread, every 10 s
//       maps.install(set->kernelEntries());
//   auto m = set->match(addr);               // longest prefix over all feeds
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/intel_maps.hpp>
#include <netprobe/intel/feeds.hpp>
#include <netprobe/intel/fetch.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::intel {

using WallTime = std::chrono::system_clock::time_point;

// A feed as the API shows it: what its last load found.
struct FeedStatus {
    std::string name;
    FeedFormat format = FeedFormat::Plain;
    Action action = Action::Alert;
    std::string source;              // the file or the url
    std::size_t ips = 0, domains = 0;
    std::size_t errors = 0;          // malformed lines of the last load (all of them)
    std::vector<LineError> first_errors;  // the first few, with their line numbers
    std::size_t expired = 0;         // STIX indicators outside their validity
    std::optional<WallTime> loaded_at;    // last successful load
    std::optional<WallTime> modified_at;  // the file's modification time at that load
    std::optional<WallTime> checked_at;   // url: the last request (answered or not)
    std::uint64_t not_modified_total = 0; // url: 304 answers (nothing downloaded)
    bool from_cache = false;              // url: the indicators are the cached copy's (not fetched since start)
    std::uint64_t loads_total = 0, load_failures_total = 0;
    std::string last_error;          // empty: the last attempt succeeded (the set keeps the last good load)
};

struct IpMatch {
    std::uint16_t feed = 0;           // index into feeds()
    const IpIndicator* indicator = nullptr;  // owned by the set
};

class IndicatorSet {
public:
    IndicatorSet(std::vector<FeedStatus> feeds, std::vector<std::shared_ptr<const ParsedFeed>> parsed,
                 std::uint64_t generation);

    [[nodiscard]] const std::vector<FeedStatus>& feeds() const { return feeds_; }
    [[nodiscard]] std::uint64_t generation() const { return generation_; }
    [[nodiscard]] std::size_t ipCount() const { return ip_count_; }  // unique prefixes over all feeds
    // The longest prefix containing a (a block indicator wins a tie between feeds).
    [[nodiscard]] std::optional<IpMatch> match(const util::Addr16& a) const;
    // The domain indicator that covers `name` (itself or its nearest listed parent:
    // "a.b.evil.example" is covered by "evil.example"); case and a trailing dot ignored.
    // Same tie-break as match() when feeds list the same domain.
    struct DomainMatch {
        std::uint16_t feed = 0;
        const DomainIndicator* indicator = nullptr;  // owned by the set
    };
    [[nodiscard]] std::optional<DomainMatch> matchDomain(std::string_view name) const;
    [[nodiscard]] std::size_t domainCount() const { return domains_.size(); }
    // One kernel entry per unique prefix (its feed: the winner of match()), for IntelMaps::install.
    [[nodiscard]] std::vector<ebpf::IntelEntry> kernelEntries() const;

private:
    std::vector<FeedStatus> feeds_;
    std::vector<std::shared_ptr<const ParsedFeed>> parsed_;
    std::uint64_t generation_ = 0;
    std::size_t ip_count_ = 0;
    // by prefix length: masked address -> the winning indicator
    std::array<std::unordered_map<util::Addr16, IpMatch, util::AddrHash>, 129> by_len_;
    std::vector<std::uint8_t> lengths_;  // present, longest first
    std::unordered_map<std::string, DomainMatch> domains_;
};

class FeedLoader {
public:
    // cache_dir (optional): the last body of every url feed is kept there (<name>.feed,
    // with its validators in <name>.validators), so that a restart without network starts
    // from it, and its first fetch is a conditional one.
    explicit FeedLoader(IntelConfig config, std::string cache_dir = {})
        : config_(std::move(config)), cache_dir_(std::move(cache_dir)) {}
    // Reads the feeds whose file changed (all of them the first time) and fetches the
    // url feeds that are due (every `refresh`; after a failure again within a minute;
    // conditional requests: a 304 changes nothing); a new set when anything changed
    // (including a failure), else null. A feed that cannot be read or fetched keeps its
    // last good indicators. Blocking (network): run it on a thread of its own.
    [[nodiscard]] std::shared_ptr<const IndicatorSet> refresh(WallTime now);
    [[nodiscard]] const IntelConfig& config() const { return config_; }
    // Every feed's status as of the last refresh (also when the indicators did not
    // change: a feed failing again with the same error counts the failure here).
    [[nodiscard]] std::vector<FeedStatus> statuses() const;

private:
    struct State {
        FeedStatus status;
        std::shared_ptr<const ParsedFeed> parsed;
        std::optional<std::int64_t> mtime_ns;
        std::optional<std::uint64_t> size;
        FetchValidators validators;  // url
        WallTime next_fetch{};       // url
    };
    IntelConfig config_;
    std::string cache_dir_;
    std::vector<State> states_;
    std::uint64_t generation_ = 0;
};

}  // namespace netprobe::intel
