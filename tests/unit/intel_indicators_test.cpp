// Threat-intel indicators at run time: the IndicatorSet (longest prefix over all
// feeds, the tie-break on one prefix, the kernel entries), the FeedLoader over real
// files in a temporary directory (change detection, last good indicators on a
// failure), and the security stage's IntelAnalyzer (incident keys, direction, hold,
// bounds, severity, evidence).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/analysis/security/detect.hpp>
#include <netprobe/intel/feeds.hpp>
#include <netprobe/intel/indicators.hpp>
#include <netprobe/util/ip.hpp>

namespace ni = netprobe::intel;
namespace ns = netprobe::analysis::security;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using netprobe::util::Addr16;

namespace {

Addr16 ip(const char* s) {
    const auto a = netprobe::util::parseAddr(s);
    EXPECT_TRUE(a) << s;
    return a.value_or(Addr16{});
}

// 2024-06-01T12:00:00Z
const ni::WallTime kNow{std::chrono::sys_days{std::chrono::year{2024} / 6 / 1} + 12h};

struct Ind {
    const char* prefix;
    std::uint8_t confidence = 100;
    const char* note = "";
};

std::shared_ptr<const ni::ParsedFeed> parsed(std::vector<Ind> inds) {
    auto p = std::make_shared<ni::ParsedFeed>();
    for (const auto& i : inds) {
        const auto pre = ni::parsePrefix(i.prefix);
        EXPECT_TRUE(pre) << i.prefix;
        if (pre) p->ips.push_back({*pre, i.confidence, i.note});
    }
    return p;
}

struct FeedSpec {
    const char* name;
    ni::Action action;
    std::vector<Ind> inds;
};

ni::IndicatorSet makeSet(const std::vector<FeedSpec>& specs, std::uint64_t generation = 1) {
    std::vector<ni::FeedStatus> feeds;
    std::vector<std::shared_ptr<const ni::ParsedFeed>> ps;
    for (const auto& s : specs) {
        ni::FeedStatus st;
        st.name = s.name;
        st.action = s.action;
        st.ips = s.inds.size();
        feeds.push_back(st);
        ps.push_back(parsed(s.inds));
    }
    return ni::IndicatorSet(std::move(feeds), std::move(ps), generation);
}

// "feed-name prefix confidence" of the match of a, or "none".
std::string matchOf(const ni::IndicatorSet& set, const char* a) {
    const auto m = set.match(ip(a));
    if (!m) return "none";
    if (!m->indicator) return "no indicator";
    return set.feeds().at(m->feed).name + " " + m->indicator->prefix.str() + " " +
           std::to_string(m->indicator->confidence);
}

}  // namespace

// ---------------------------------------------------------------------------
// IndicatorSet

TEST(IntelIndicatorSet, LongestPrefixAcrossFeeds) {
    const auto set = makeSet({
        {"wide", ni::Action::Alert, {{"203.0.113.0/24", 60}, {"2001:db8::/32", 50}, {"10.0.0.0/8", 40}}},
        {"narrow", ni::Action::Alert, {{"203.0.113.7", 90}, {"2001:db8:1::/48", 70}, {"10.1.0.0/16", 30}}},
        // IPv6 text for IPv4 ranges: ::ffff:10.1.2.0/120 is 10.1.2.0/24.
        {"mapped", ni::Action::Block, {{"::ffff:10.1.2.0/120", 20}}},
    });
    // A /32 inside a /24 of another feed: the /32's feed, either way round.
    EXPECT_EQ(matchOf(set, "203.0.113.7"), "narrow 203.0.113.7/32 90");
    EXPECT_EQ(matchOf(set, "203.0.113.8"), "wide 203.0.113.0/24 60");
    EXPECT_EQ(matchOf(set, "203.0.113.255"), "wide 203.0.113.0/24 60");
    EXPECT_EQ(matchOf(set, "203.0.112.255"), "none");
    EXPECT_EQ(matchOf(set, "203.0.114.0"), "none");
    EXPECT_EQ(matchOf(set, "192.0.2.1"), "none");
    // Three levels: /8 (wide) > /16 (narrow) > /24 (mapped).
    EXPECT_EQ(matchOf(set, "10.2.0.1"), "wide 10.0.0.0/8 40");
    EXPECT_EQ(matchOf(set, "10.1.3.1"), "narrow 10.1.0.0/16 30");
    EXPECT_EQ(matchOf(set, "10.1.2.200"), "mapped 10.1.2.0/24 20");
    // IPv6.
    EXPECT_EQ(matchOf(set, "2001:db8:1::5"), "narrow 2001:db8:1::/48 70");
    EXPECT_EQ(matchOf(set, "2001:db8:2::1"), "wide 2001:db8::/32 50");
    EXPECT_EQ(matchOf(set, "2001:db9::1"), "none");
    EXPECT_EQ(matchOf(set, "::1"), "none");
    // IPv4-mapped IPv6 text is the IPv4 address; an IPv4-compatible or otherwise
    // embedded address with the same last 32 bits is not.
    EXPECT_EQ(matchOf(set, "::ffff:203.0.113.7"), "narrow 203.0.113.7/32 90");
    EXPECT_EQ(matchOf(set, "::203.0.113.7"), "none");
    EXPECT_EQ(matchOf(set, "64:ff9b::203.0.113.7"), "none");

    // IPv4 prefix lengths are 96 + the IPv4 length over the 16-byte address.
    const auto m32 = set.match(ip("203.0.113.7"));
    ASSERT_TRUE(m32 && m32->indicator);
    EXPECT_EQ(m32->feed, 1);
    EXPECT_EQ(m32->indicator->prefix.len, 128);
    EXPECT_TRUE(m32->indicator->prefix.v4());
    const auto m24 = set.match(ip("203.0.113.8"));
    ASSERT_TRUE(m24 && m24->indicator);
    EXPECT_EQ(m24->feed, 0);
    EXPECT_EQ(m24->indicator->prefix.len, 96 + 24);
    const auto m6 = set.match(ip("2001:db8:1::5"));
    ASSERT_TRUE(m6 && m6->indicator);
    EXPECT_EQ(m6->indicator->prefix.len, 48);
    EXPECT_FALSE(m6->indicator->prefix.v4());

    EXPECT_EQ(set.ipCount(), 7u);
    EXPECT_EQ(set.generation(), 1u);
    ASSERT_EQ(set.feeds().size(), 3u);
    EXPECT_EQ(set.feeds()[2].name, "mapped");
}

TEST(IntelIndicatorSet, EmptyAndUnloadedFeedsMatchNothing) {
    std::vector<ni::FeedStatus> feeds(2);
    feeds[0].name = "never-loaded";
    feeds[1].name = "empty";
    const ni::IndicatorSet set(feeds, {nullptr, std::make_shared<const ni::ParsedFeed>()}, 3);
    EXPECT_EQ(set.ipCount(), 0u);
    EXPECT_FALSE(set.match(ip("203.0.113.7")));
    EXPECT_FALSE(set.match(ip("2001:db8::1")));
    EXPECT_TRUE(set.kernelEntries().empty());
    EXPECT_EQ(set.generation(), 3u);
}

TEST(IntelIndicatorSet, SamePrefixBlockBeatsAlertThenConfidence) {
    // The block feed wins its prefix even with the lowest confidence, listed first or last.
    for (bool blockFirst : {true, false}) {
        std::vector<FeedSpec> specs = {
            {"alert-high", ni::Action::Alert, {{"203.0.113.0/24", 95}, {"198.51.100.0/24", 40}, {"2001:db8::/32", 60}}},
            {"alert-higher", ni::Action::Alert, {{"203.0.113.0/24", 99}, {"198.51.100.0/24", 80}, {"2001:db8::/32", 60}}},
        };
        const FeedSpec block{"block-low", ni::Action::Block, {{"203.0.113.0/24", 10}}};
        if (blockFirst) specs.insert(specs.begin(), block);
        else specs.push_back(block);
        const auto set = makeSet(specs);
        SCOPED_TRACE(blockFirst ? "block feed first" : "block feed last");
        EXPECT_EQ(matchOf(set, "203.0.113.9"), "block-low 203.0.113.0/24 10");
        // Among alert feeds: the higher confidence, whichever feed comes first.
        EXPECT_EQ(matchOf(set, "198.51.100.9"), "alert-higher 198.51.100.0/24 80");
        // An exact tie: the earlier feed.
        EXPECT_EQ(matchOf(set, "2001:db8::9"), "alert-high 2001:db8::/32 60");
        EXPECT_EQ(set.ipCount(), 3u);
    }
    // Among block feeds: the higher confidence.
    const auto blocks = makeSet({
        {"block-a", ni::Action::Block, {{"192.0.2.0/24", 30}}},
        {"block-b", ni::Action::Block, {{"192.0.2.0/24", 70}}},
        {"alert-c", ni::Action::Alert, {{"192.0.2.0/24", 100}}},
    });
    EXPECT_EQ(matchOf(blocks, "192.0.2.1"), "block-b 192.0.2.0/24 70");
}

TEST(IntelIndicatorSet, KernelEntriesOnePerUniquePrefix) {
    const auto set = makeSet({
        {"alert-high", ni::Action::Alert, {{"203.0.113.0/24", 95}, {"198.51.100.0/24", 40}, {"2001:db8::/32", 60}}},
        {"block-low", ni::Action::Block, {{"203.0.113.0/24", 10}, {"203.0.113.7", 50}}},
        {"alert-higher", ni::Action::Alert, {{"198.51.100.0/24", 80}, {"2001:db8:1::/48", 20}, {"10.0.0.1/8", 5}}},
    });
    const auto entries = set.kernelEntries();
    // 203.0.113.0/24, 198.51.100.0/24 and 2001:db8::/32 are listed twice each.
    ASSERT_EQ(entries.size(), 6u);
    EXPECT_EQ(set.ipCount(), 6u);
    struct Want {
        std::uint16_t feed;
        std::uint8_t action, confidence;
    };
    const std::map<std::pair<std::string, int>, Want> want = {
        {{"203.0.113.0", 120}, {1, NP_INTEL_BLOCK, 10}},   // block beats the alert's 95
        {{"203.0.113.7", 128}, {1, NP_INTEL_BLOCK, 50}},
        {{"198.51.100.0", 120}, {2, NP_INTEL_ALERT, 80}},  // the higher confidence
        {{"2001:db8::", 32}, {0, NP_INTEL_ALERT, 60}},
        {{"2001:db8:1::", 48}, {2, NP_INTEL_ALERT, 20}},
        {{"10.0.0.0", 104}, {2, NP_INTEL_ALERT, 5}},       // host bits cleared
    };
    std::set<std::pair<std::string, int>> seen;
    for (const auto& e : entries) {
        const auto key = std::make_pair(netprobe::util::formatAddr(e.addr), int{e.prefix});
        EXPECT_TRUE(seen.insert(key).second) << key.first << "/" << key.second << " twice";
        const auto it = want.find(key);
        ASSERT_NE(it, want.end()) << key.first << "/" << key.second;
        EXPECT_EQ(e.value.feed, it->second.feed) << key.first;
        EXPECT_EQ(e.value.action, it->second.action) << key.first;
        EXPECT_EQ(e.value.confidence, it->second.confidence) << key.first;
        EXPECT_EQ(e.value.reserved, 0u);
        // The entry speaks for its prefix as match() does.
        const auto m = set.match(e.addr);
        ASSERT_TRUE(m && m->indicator);
        EXPECT_EQ(m->feed, e.value.feed);
        EXPECT_EQ(m->indicator->prefix.len, e.prefix);
        EXPECT_EQ(m->indicator->confidence, e.value.confidence);
    }
}

// ---------------------------------------------------------------------------
// FeedLoader over files

namespace {

class TempDir {
public:
    TempDir() {
        std::string tmpl = ::testing::TempDir() + "netprobe_intel_XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] std::string file(const char* name) const { return (path_ / name).string(); }
    [[nodiscard]] const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

void write(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    ASSERT_TRUE(out.good()) << path;
}

ni::FeedConfig feedConfig(const char* name, ni::FeedFormat format, const std::string& path, ni::Action action,
                          std::uint8_t confidence) {
    ni::FeedConfig f;
    f.name = name;
    f.format = format;
    f.path = path;
    f.action = action;
    f.confidence = confidence;
    return f;
}

// Two feeds: "list" (plain, alert, 70) and "drop" (spamhaus, block, 90).
ni::IntelConfig twoFeeds(const TempDir& dir) {
    ni::IntelConfig c;
    c.feeds.push_back(feedConfig("list", ni::FeedFormat::Plain, dir.file("list.txt"), ni::Action::Alert, 70));
    c.feeds.push_back(feedConfig("drop", ni::FeedFormat::Spamhaus, dir.file("drop.txt"), ni::Action::Block, 90));
    return c;
}

}  // namespace

TEST(IntelFeedLoader, FirstRefreshThenNothingChanged) {
    TempDir dir;
    write(dir.file("list.txt"), "203.0.113.0/24 # scanners\nbogus\n2001:db8::/32\n");
    write(dir.file("drop.txt"), "; DROP\n198.51.100.0/24 ; SBL1\n");
    ni::FeedLoader loader(twoFeeds(dir));
    const auto set = loader.refresh(kNow);
    ASSERT_TRUE(set);
    EXPECT_GT(set->generation(), 0u);  // the kernel's gen 0 means "no set yet"
    ASSERT_EQ(set->feeds().size(), 2u);

    const auto& list = set->feeds()[0];
    EXPECT_EQ(list.name, "list");
    EXPECT_EQ(list.format, ni::FeedFormat::Plain);
    EXPECT_EQ(list.action, ni::Action::Alert);
    EXPECT_EQ(list.source, dir.file("list.txt"));
    EXPECT_EQ(list.ips, 2u);
    EXPECT_EQ(list.domains, 0u);
    EXPECT_EQ(list.errors, 1u);
    ASSERT_EQ(list.first_errors.size(), 1u);
    EXPECT_EQ(list.first_errors[0].line, 2u);
    EXPECT_EQ(list.loaded_at, kNow);
    EXPECT_TRUE(list.modified_at);
    EXPECT_EQ(list.loads_total, 1u);
    EXPECT_EQ(list.load_failures_total, 0u);
    EXPECT_EQ(list.last_error, "");

    const auto& drop = set->feeds()[1];
    EXPECT_EQ(drop.name, "drop");
    EXPECT_EQ(drop.format, ni::FeedFormat::Spamhaus);
    EXPECT_EQ(drop.action, ni::Action::Block);
    EXPECT_EQ(drop.ips, 1u);
    EXPECT_EQ(drop.errors, 0u);
    EXPECT_EQ(drop.loads_total, 1u);
    EXPECT_EQ(drop.last_error, "");

    // The feed's default confidence and the inline comment as the note.
    const auto m = set->match(ip("203.0.113.77"));
    ASSERT_TRUE(m && m->indicator);
    EXPECT_EQ(m->feed, 0);
    EXPECT_EQ(m->indicator->confidence, 70);
    EXPECT_EQ(m->indicator->note, "scanners");
    const auto d = set->match(ip("198.51.100.1"));
    ASSERT_TRUE(d && d->indicator);
    EXPECT_EQ(d->feed, 1);
    EXPECT_EQ(d->indicator->confidence, 90);
    EXPECT_EQ(d->indicator->note, "SBL1");
    EXPECT_EQ(set->ipCount(), 3u);
    const auto entries = set->kernelEntries();
    ASSERT_EQ(entries.size(), 3u);

    // Nothing changed: no new set, however often it is asked.
    EXPECT_FALSE(loader.refresh(kNow + 10s));
    EXPECT_FALSE(loader.refresh(kNow + 20s));
}

TEST(IntelFeedLoader, RereadsOnlyTheChangedFile) {
    TempDir dir;
    write(dir.file("list.txt"), "203.0.113.0/24\n");
    write(dir.file("drop.txt"), "198.51.100.0/24 ; SBL1\n");
    ni::FeedLoader loader(twoFeeds(dir));
    const auto first = loader.refresh(kNow);
    ASSERT_TRUE(first);

    // A new size: the file is read again.
    write(dir.file("list.txt"), "192.0.2.0/24\n192.0.2.128/25 # the upper half\n");
    const auto second = loader.refresh(kNow + 10s);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->generation(), first->generation() + 1);
    EXPECT_EQ(matchOf(*second, "192.0.2.1"), "list 192.0.2.0/24 70");
    EXPECT_EQ(matchOf(*second, "192.0.2.200"), "list 192.0.2.128/25 70");
    EXPECT_EQ(matchOf(*second, "203.0.113.1"), "none");  // gone from the file
    EXPECT_EQ(matchOf(*second, "198.51.100.1"), "drop 198.51.100.0/24 90");
    EXPECT_EQ(second->feeds()[0].ips, 2u);
    EXPECT_EQ(second->feeds()[0].loads_total, 2u);
    EXPECT_EQ(second->feeds()[0].loaded_at, kNow + 10s);
    // The unchanged file was not read again.
    EXPECT_EQ(second->feeds()[1].loads_total, 1u);
    EXPECT_EQ(second->feeds()[1].loaded_at, kNow);
    // The earlier set is immutable: it still answers as it did.
    EXPECT_EQ(matchOf(*first, "203.0.113.1"), "list 203.0.113.0/24 70");
    EXPECT_EQ(matchOf(*first, "192.0.2.1"), "none");

    EXPECT_FALSE(loader.refresh(kNow + 20s));

    // The same size with another modification time: read again too.
    const auto before = fs::last_write_time(dir.file("drop.txt"));
    write(dir.file("drop.txt"), "198.51.100.0/24 ; SBL2\n");
    fs::last_write_time(dir.file("drop.txt"), before + 1h);
    const auto third = loader.refresh(kNow + 30s);
    ASSERT_TRUE(third);
    EXPECT_EQ(third->generation(), second->generation() + 1);
    EXPECT_EQ(third->feeds()[1].loads_total, 2u);
    EXPECT_EQ(third->feeds()[0].loads_total, 2u);
    const auto m = third->match(ip("198.51.100.1"));
    ASSERT_TRUE(m && m->indicator);
    EXPECT_EQ(m->indicator->note, "SBL2");
    ASSERT_TRUE(third->feeds()[1].modified_at);
    EXPECT_GT(*third->feeds()[1].modified_at, *second->feeds()[1].modified_at);
}

TEST(IntelFeedLoader, UnreadableFileKeepsTheLastGoodIndicators) {
    TempDir dir;
    write(dir.file("list.txt"), "203.0.113.0/24\n2001:db8::/32\n");
    write(dir.file("drop.txt"), "198.51.100.0/24\n");
    ni::FeedLoader loader(twoFeeds(dir));
    const auto first = loader.refresh(kNow);
    ASSERT_TRUE(first);

    fs::remove(dir.file("list.txt"));
    const auto second = loader.refresh(kNow + 10s);
    ASSERT_TRUE(second);  // the failure is news
    EXPECT_EQ(second->generation(), first->generation() + 1);
    const auto& list = second->feeds()[0];
    EXPECT_NE(list.last_error, "");
    EXPECT_NE(list.last_error.find(dir.file("list.txt")), std::string::npos) << list.last_error;
    EXPECT_EQ(list.load_failures_total, 1u);
    EXPECT_EQ(list.loads_total, 1u);
    EXPECT_EQ(list.loaded_at, kNow);  // the last successful load
    EXPECT_EQ(list.ips, 2u);          // ... and what it found
    // The indicators of the last good load still match, in the set and the kernel.
    EXPECT_EQ(matchOf(*second, "203.0.113.1"), "list 203.0.113.0/24 70");
    EXPECT_EQ(matchOf(*second, "2001:db8::1"), "list 2001:db8::/32 70");
    EXPECT_EQ(second->kernelEntries().size(), 3u);
    // The other feed is untouched.
    EXPECT_EQ(second->feeds()[1].last_error, "");
    EXPECT_EQ(second->feeds()[1].load_failures_total, 0u);

    // Back: read again, the error cleared.
    write(dir.file("list.txt"), "192.0.2.0/24\n");
    const auto third = loader.refresh(kNow + 30s);
    ASSERT_TRUE(third);
    EXPECT_EQ(third->feeds()[0].last_error, "");
    EXPECT_EQ(third->feeds()[0].loads_total, 2u);
    EXPECT_EQ(third->feeds()[0].ips, 1u);
    EXPECT_EQ(matchOf(*third, "192.0.2.1"), "list 192.0.2.0/24 70");
    EXPECT_EQ(matchOf(*third, "203.0.113.1"), "none");
}

TEST(IntelFeedLoader, MissingOrDirectoryOnTheFirstRefresh) {
    TempDir dir;
    fs::create_directory(dir.path() / "sub");
    write(dir.file("drop.txt"), "198.51.100.0/24\n");
    ni::IntelConfig c;
    c.feeds.push_back(feedConfig("dir", ni::FeedFormat::Plain, dir.file("sub"), ni::Action::Alert, 100));
    c.feeds.push_back(feedConfig("missing", ni::FeedFormat::Plain, dir.file("nope.txt"), ni::Action::Alert, 100));
    c.feeds.push_back(feedConfig("drop", ni::FeedFormat::Spamhaus, dir.file("drop.txt"), ni::Action::Block, 90));
    ni::FeedLoader loader(c);
    const auto set = loader.refresh(kNow);
    ASSERT_TRUE(set);
    ASSERT_EQ(set->feeds().size(), 3u);
    const auto& d = set->feeds()[0];
    EXPECT_NE(d.last_error.find("not a regular file"), std::string::npos) << d.last_error;
    EXPECT_NE(d.last_error.find(dir.file("sub")), std::string::npos) << d.last_error;
    EXPECT_EQ(d.load_failures_total, 1u);
    EXPECT_EQ(d.loads_total, 0u);
    EXPECT_FALSE(d.loaded_at);
    EXPECT_EQ(d.ips, 0u);
    const auto& m = set->feeds()[1];
    EXPECT_NE(m.last_error.find(dir.file("nope.txt")), std::string::npos) << m.last_error;
    EXPECT_EQ(m.load_failures_total, 1u);
    EXPECT_FALSE(m.loaded_at);
    // The feed that loaded works; the others match nothing.
    EXPECT_EQ(set->feeds()[2].last_error, "");
    EXPECT_EQ(matchOf(*set, "198.51.100.1"), "drop 198.51.100.0/24 90");
    EXPECT_EQ(matchOf(*set, "203.0.113.1"), "none");
    EXPECT_EQ(set->ipCount(), 1u);

    // The file appears: loaded on the next refresh.
    write(dir.file("nope.txt"), "203.0.113.0/24\n");
    const auto next = loader.refresh(kNow + 10s);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->feeds()[1].last_error, "");
    EXPECT_EQ(next->feeds()[1].loads_total, 1u);
    EXPECT_EQ(matchOf(*next, "203.0.113.1"), "missing 203.0.113.0/24 100");
    EXPECT_NE(next->feeds()[0].last_error.find("not a regular file"), std::string::npos);
}

// ---------------------------------------------------------------------------
// IntelAnalyzer

namespace {

const ns::TimePoint T0{std::chrono::seconds(1000)};

// Traffic from the indicator (its source matched) ...
ns::IntelHit inbound(ns::TimePoint at, const char* remote, std::uint16_t rport, const char* local,
                     std::uint16_t lport, std::uint8_t proto = 6) {
    return ns::IntelHit{at, ip(remote), ip(local), rport, lport, proto, NP_INTEL_MATCH_SRC, 0};
}
// ... and to it (its destination matched).
ns::IntelHit outbound(ns::TimePoint at, const char* local, std::uint16_t lport, const char* remote,
                      std::uint16_t rport, std::uint8_t proto = 6) {
    return ns::IntelHit{at, ip(local), ip(remote), lport, rport, proto, NP_INTEL_MATCH_DST, 0};
}

ns::IntelIndicatorInfo info(const char* feed = "scanners", std::uint8_t confidence = 70, bool block = false,
                            const char* indicator = "203.0.113.0/24", const char* note = "mass scanner") {
    return ns::IntelIndicatorInfo{indicator, feed, confidence, block, note};
}

std::string str(const ns::Finding& f, const char* key) { return std::get<std::string>(f.evidence.at(key)); }
std::int64_t num(const ns::Finding& f, const char* key) { return std::get<std::int64_t>(f.evidence.at(key)); }
std::vector<std::string> list(const ns::Finding& f, const char* key) {
    return std::get<std::vector<std::string>>(f.evidence.at(key));
}

}  // namespace

TEST(IntelAnalyzer, OneFlowSeenTwiceCountsOnce) {
    ns::IntelAnalyzer a;
    // The same flow reported again (another CPU, or after a reload of the set).
    a.observe(inbound(T0, "203.0.113.9", 40000, "10.0.0.5", 22), info());
    a.observe(inbound(T0 + 5s, "203.0.113.9", 40000, "10.0.0.5", 22), info());
    auto fs1 = a.evaluate(T0 + 6s);
    ASSERT_EQ(fs1.size(), 1u);
    const auto& f = fs1[0];
    EXPECT_EQ(f.type, ns::EventType::ThreatIntelMatch);
    EXPECT_EQ(num(f, "flows"), 1);
    ASSERT_EQ(list(f, "flow_samples").size(), 1u);
    const auto sample = list(f, "flow_samples")[0];
    EXPECT_NE(sample.find("203.0.113.9"), std::string::npos) << sample;
    EXPECT_NE(sample.find("10.0.0.5"), std::string::npos) << sample;
    EXPECT_EQ(f.first_seen, T0);
    EXPECT_EQ(f.last_seen, T0 + 5s);
    EXPECT_FALSE(f.instant);
    EXPECT_EQ(a.tracked(), 1u);

    // Another source port is another flow; so is another protocol on the same ports.
    a.observe(inbound(T0 + 7s, "203.0.113.9", 40001, "10.0.0.5", 22), info());
    a.observe(inbound(T0 + 7s, "203.0.113.9", 40000, "10.0.0.5", 22, 17), info());
    auto fs2 = a.evaluate(T0 + 8s);
    ASSERT_EQ(fs2.size(), 1u);
    EXPECT_EQ(num(fs2[0], "flows"), 3);
    EXPECT_EQ(list(fs2[0], "flow_samples").size(), 3u);
    EXPECT_EQ(fs2[0].key, f.key);  // the same incident
}

TEST(IntelAnalyzer, DirectionMakesTheKeyAndOrdersSrcDst) {
    ns::IntelAnalyzer a;
    a.observe(inbound(T0, "203.0.113.9", 40000, "10.0.0.5", 22), info());
    a.observe(outbound(T0, "10.0.0.5", 50000, "203.0.113.9", 443), info());
    auto fs = a.evaluate(T0 + 1s);
    ASSERT_EQ(fs.size(), 2u);
    const ns::Finding* in = nullptr;
    const ns::Finding* out = nullptr;
    for (const auto& f : fs) (str(f, "direction") == "inbound" ? in : out) = &f;
    ASSERT_TRUE(in && out);
    EXPECT_NE(in->key, out->key);
    EXPECT_EQ(str(*out, "direction"), "outbound");
    // src/dst as the traffic flows: from the indicator inbound, to it outbound.
    EXPECT_EQ(in->src, ip("203.0.113.9"));
    EXPECT_EQ(in->dst, ip("10.0.0.5"));
    EXPECT_EQ(out->src, ip("10.0.0.5"));
    EXPECT_EQ(out->dst, ip("203.0.113.9"));
    EXPECT_EQ(num(*in, "flows"), 1);
    EXPECT_EQ(num(*out, "flows"), 1);

    // The block bit does not change the direction.
    ns::IntelHit blocked = outbound(T0 + 2s, "10.0.0.5", 50001, "203.0.113.9", 443);
    blocked.match |= NP_INTEL_MATCH_BLOCK;
    a.observe(blocked, info());
    fs = a.evaluate(T0 + 3s);
    ASSERT_EQ(fs.size(), 2u);
    for (const auto& f : fs)
        EXPECT_EQ(num(f, "flows"), str(f, "direction") == "outbound" ? 2 : 1) << f.key;
}

TEST(IntelAnalyzer, OneIncidentPerFeedIndicatorLocalAddressAndDirection) {
    ns::IntelAnalyzer a;
    // Two remote addresses inside one indicator towards one local address: one incident.
    a.observe(inbound(T0, "203.0.113.9", 40000, "10.0.0.5", 22), info());
    a.observe(inbound(T0 + 1s, "203.0.113.10", 40000, "10.0.0.5", 22), info());
    auto fs = a.evaluate(T0 + 2s);
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(num(fs[0], "flows"), 2);
    EXPECT_EQ(fs[0].dst, ip("10.0.0.5"));
    // Another local address, another feed, another indicator: an incident each.
    a.observe(inbound(T0 + 2s, "203.0.113.9", 40000, "10.0.0.6", 22), info());
    a.observe(inbound(T0 + 2s, "203.0.113.9", 40000, "10.0.0.5", 22), info("other-feed"));
    a.observe(inbound(T0 + 2s, "203.0.113.9", 40000, "10.0.0.5", 22),
              info("scanners", 70, false, "203.0.113.9/32"));
    fs = a.evaluate(T0 + 3s);
    EXPECT_EQ(fs.size(), 4u);
    std::set<std::string> keys;
    for (const auto& f : fs) keys.insert(f.key);
    EXPECT_EQ(keys.size(), 4u);
    EXPECT_EQ(a.tracked(), 4u);
}

TEST(IntelAnalyzer, EndsAfterHoldWithoutHits) {
    ns::IntelAnalyzer a(60s);
    a.observe(outbound(T0, "10.0.0.5", 50000, "203.0.113.9", 443), info());
    EXPECT_EQ(a.evaluate(T0 + 30s).size(), 1u);
    a.observe(outbound(T0 + 50s, "10.0.0.5", 50001, "203.0.113.9", 443), info());
    // 50 s after the latest hit: still active (110 s after the first).
    auto fs = a.evaluate(T0 + 100s);
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].first_seen, T0);
    EXPECT_EQ(fs[0].last_seen, T0 + 50s);
    // More than 60 s after it: over, and forgotten.
    EXPECT_TRUE(a.evaluate(T0 + 111s).empty());
    EXPECT_EQ(a.tracked(), 0u);
    // A hit later opens a new incident from scratch.
    a.observe(outbound(T0 + 200s, "10.0.0.5", 50000, "203.0.113.9", 443), info());
    fs = a.evaluate(T0 + 201s);
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].first_seen, T0 + 200s);
    EXPECT_EQ(num(fs[0], "flows"), 1);

    // A shorter hold.
    ns::IntelAnalyzer b(10s);
    b.observe(inbound(T0, "203.0.113.9", 40000, "10.0.0.5", 22), info());
    EXPECT_EQ(b.evaluate(T0 + 9s).size(), 1u);
    EXPECT_TRUE(b.evaluate(T0 + 11s).empty());
}

TEST(IntelAnalyzer, TrackedIncidentsAreBounded) {
    ns::IntelAnalyzer a(60s, 3);
    const char* locals[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"};
    for (const char* l : locals) a.observe(inbound(T0, "203.0.113.9", 40000, l, 22), info());
    EXPECT_EQ(a.tracked(), 3u);
    EXPECT_EQ(a.dropped(), 2u);
    // Hits of a tracked incident are not dropped.
    a.observe(inbound(T0 + 1s, "203.0.113.9", 40001, "10.0.0.1", 22), info());
    EXPECT_EQ(a.dropped(), 2u);
    auto fs = a.evaluate(T0 + 2s);
    EXPECT_EQ(fs.size(), 3u);
    // Once the incidents are over there is room again.
    EXPECT_TRUE(a.evaluate(T0 + 62s).empty());
    a.observe(inbound(T0 + 63s, "203.0.113.9", 40000, "10.0.0.4", 22), info());
    EXPECT_EQ(a.tracked(), 1u);
    EXPECT_EQ(a.dropped(), 2u);
    fs = a.evaluate(T0 + 64s);
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].dst, ip("10.0.0.4"));
}

TEST(IntelAnalyzer, SeverityFromActionAndConfidence) {
    struct Case {
        const char* feed;
        std::uint8_t confidence;
        bool block;
        ns::Severity want;
    } cases[] = {
        {"block-0", 0, true, ns::Severity::High},      {"block-49", 49, true, ns::Severity::High},
        {"alert-100", 100, false, ns::Severity::High}, {"alert-80", 80, false, ns::Severity::High},
        {"alert-79", 79, false, ns::Severity::Medium}, {"alert-50", 50, false, ns::Severity::Medium},
        {"alert-49", 49, false, ns::Severity::Low},    {"alert-0", 0, false, ns::Severity::Low},
    };
    ns::IntelAnalyzer a;
    for (const auto& c : cases)
        a.observe(inbound(T0, "203.0.113.9", 40000, "10.0.0.5", 22), info(c.feed, c.confidence, c.block));
    const auto fs = a.evaluate(T0 + 1s);
    ASSERT_EQ(fs.size(), std::size(cases));
    for (const auto& c : cases) {
        const ns::Finding* f = nullptr;
        for (const auto& x : fs)
            if (str(x, "feed") == c.feed) f = &x;
        ASSERT_TRUE(f) << c.feed;
        EXPECT_EQ(f->severity, c.want) << c.feed;
        EXPECT_EQ(str(*f, "action"), c.block ? "block" : "alert") << c.feed;
        EXPECT_EQ(num(*f, "confidence"), c.confidence) << c.feed;
    }
}

TEST(IntelAnalyzer, EvidenceFields) {
    ns::IntelAnalyzer a;
    a.observe(outbound(T0, "fd00::5", 50000, "2001:db8::9", 443), info("c2", 85, true, "2001:db8::/32", "SBL9"));
    const auto fs = a.evaluate(T0 + 1s);
    ASSERT_EQ(fs.size(), 1u);
    const auto& f = fs[0];
    EXPECT_EQ(f.type, ns::EventType::ThreatIntelMatch);
    EXPECT_EQ(f.severity, ns::Severity::High);
    EXPECT_EQ(str(f, "indicator"), "2001:db8::/32");
    EXPECT_EQ(str(f, "feed"), "c2");
    EXPECT_EQ(num(f, "confidence"), 85);
    EXPECT_EQ(str(f, "action"), "block");
    EXPECT_EQ(str(f, "direction"), "outbound");
    EXPECT_EQ(str(f, "note"), "SBL9");
    EXPECT_EQ(num(f, "flows"), 1);
    ASSERT_EQ(list(f, "flow_samples").size(), 1u);
    EXPECT_NE(list(f, "flow_samples")[0].find("2001:db8::9"), std::string::npos);
    EXPECT_EQ(list(f, "remote_ports"), std::vector<std::string>{"443"});
    EXPECT_EQ(f.src, ip("fd00::5"));
    EXPECT_EQ(f.dst, ip("2001:db8::9"));
    // The key names the feed, the indicator, the local address and the direction.
    EXPECT_NE(f.key.find("c2"), std::string::npos) << f.key;
    EXPECT_NE(f.key.find("2001:db8::/32"), std::string::npos) << f.key;
    EXPECT_NE(f.key.find("fd00::5"), std::string::npos) << f.key;
}

TEST(IntelAnalyzer, FlowSamplesAreBoundedFlowsCountsAll) {
    ns::IntelAnalyzer a;
    for (std::uint16_t p = 0; p < 25; ++p)
        a.observe(inbound(T0 + std::chrono::seconds(p), "203.0.113.9", static_cast<std::uint16_t>(40000 + p),
                          "10.0.0.5", 22),
                  info());
    auto fs = a.evaluate(T0 + 30s);
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(num(fs[0], "flows"), 25);
    const auto samples = list(fs[0], "flow_samples");
    EXPECT_EQ(samples.size(), 20u);
    EXPECT_EQ(std::set<std::string>(samples.begin(), samples.end()).size(), samples.size());

    // The same 25 flows reported again (another CPU, a new indicator-set generation):
    // still 25 distinct flows.
    for (std::uint16_t p = 0; p < 25; ++p)
        a.observe(inbound(T0 + 31s, "203.0.113.9", static_cast<std::uint16_t>(40000 + p), "10.0.0.5", 22), info());
    fs = a.evaluate(T0 + 32s);
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(num(fs[0], "flows"), 25);
    EXPECT_EQ(list(fs[0], "flow_samples").size(), 20u);
}

// A domain indicator covers itself and its subdomains (docs/intel.md), across feeds;
// the nearest listed parent speaks for a name, and the block feed wins a tie.
TEST(IntelIndicatorSet, DomainsMatchThemselvesAndTheirSubdomains) {
    auto domains = [](std::vector<std::pair<const char*, std::uint8_t>> ds) {
        auto p = std::make_shared<ni::ParsedFeed>();
        for (auto [d, c] : ds) p->domains.push_back({d, c, ""});
        return p;
    };
    std::vector<ni::FeedStatus> feeds(3);
    feeds[0].name = "wide";
    feeds[1].name = "narrow";
    feeds[2].name = "blocker";
    feeds[2].action = ni::Action::Block;
    const ni::IndicatorSet set(std::move(feeds),
                               {domains({{"evil.example", 60}, {"shared.example", 95}}),
                                domains({{"c2.evil.example", 90}}), domains({{"shared.example", 10}})},
                               1);
    auto of = [&](const char* name) -> std::string {
        const auto m = set.matchDomain(name);
        if (!m) return "none";
        return set.feeds().at(m->feed).name + " " + m->indicator->domain;
    };
    EXPECT_EQ(set.domainCount(), 3u);
    EXPECT_EQ(of("evil.example"), "wide evil.example");
    EXPECT_EQ(of("a.b.evil.example"), "wide evil.example");
    EXPECT_EQ(of("C2.Evil.Example."), "narrow c2.evil.example");  // nearest parent; case and root dot ignored
    EXPECT_EQ(of("x.c2.evil.example"), "narrow c2.evil.example");
    EXPECT_EQ(of("notevil.example"), "none");                      // a suffix, not a parent
    EXPECT_EQ(of("example"), "none");
    EXPECT_EQ(of(""), "none");
    EXPECT_EQ(of("shared.example"), "blocker shared.example");     // block beats a higher confidence
    EXPECT_FALSE(set.match(ip("198.51.100.1")));                   // domains are not IP indicators
}
