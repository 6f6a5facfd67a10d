// domains::DomainIntel: DNS requests (as the L7 source hands them over) against domain
// indicators, with injected time; and the security stage's reading of its hits.
#include <gtest/gtest.h>

#include <netprobe/analysis/domains/stage.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using namespace netprobe;
namespace ni = netprobe::intel;
using analysis::domains::DomainIntel;
using analysis::domains::DomainIntelOptions;

constexpr std::uint64_t kS = 1'000'000'000ull;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

std::shared_ptr<const ni::IndicatorSet> makeSet(std::vector<std::tuple<std::string, ni::Action, std::vector<std::string>>> feeds,
                                                std::uint64_t generation = 1) {
    std::vector<ni::FeedStatus> st;
    std::vector<std::shared_ptr<const ni::ParsedFeed>> ps;
    for (auto& [name, action, domains] : feeds) {
        ni::FeedStatus f;
        f.name = name;
        f.action = action;
        f.domains = domains.size();
        st.push_back(f);
        auto p = std::make_shared<ni::ParsedFeed>();
        for (const auto& d : domains) p->domains.push_back({d, 90, "note " + d});
        ps.push_back(p);
    }
    return std::make_shared<ni::IndicatorSet>(std::move(st), std::move(ps), generation);
}

l7::Request dns(const std::string& qname, std::vector<l7::DnsAnswer> answers, std::uint64_t mono_ns,
                l7::Side side = l7::Side::Client, std::uint16_t cport = 40000) {
    l7::Request r;
    r.protocol = "dns";
    r.side = side;
    r.method = "A";
    r.path = qname;
    r.route = qname;
    r.answers = std::move(answers);
    r.mono_ns = mono_ns;
    r.client = ip("198.18.0.2");
    r.server = ip("198.18.0.1");
    r.client_port = cport;
    r.server_port = 53;
    return r;
}

l7::DnsAnswer a(const std::string& name, const char* addr, std::uint32_t ttl) {
    l7::DnsAnswer x;
    x.name = name;
    x.type = 1;
    x.ttl = ttl;
    x.addr = ip(addr);
    return x;
}

l7::DnsAnswer cname(const std::string& name, const std::string& target) {
    l7::DnsAnswer x;
    x.name = name;
    x.type = 5;
    x.target = target;
    return x;
}

struct Harness {
    std::shared_ptr<const ni::IndicatorSet> set;
    DomainIntel stage;
    explicit Harness(std::shared_ptr<const ni::IndicatorSet> s, ni::ResolvedConfig rc = {})
        : set(std::move(s)), stage([this, rc] {
              DomainIntelOptions o;
              o.indicators = [this] { return set; };
              o.resolved = rc;
              o.max_hits = 4;
              return o;
          }()) {}
    // one run at t seconds (monotonic) with these requests
    std::shared_ptr<const analysis::domains::DomainIntelView> run(double t, std::vector<l7::Request> reqs = {}) {
        collector::Snapshot s;
        s.mono = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(static_cast<std::uint64_t>(t * kS)));
        auto l7s = std::make_shared<collector::L7Sample>();
        l7s->requests = std::move(reqs);
        s.l7 = l7s;
        analysis::Views v;
        stage.run(s, v);
        return v.domains;
    }
};

TEST(DomainIntel, QueryNameAndCnameChainMatchAndAddressesAreHeldForTheirTtl) {
    Harness h(makeSet({{"doms", ni::Action::Block, {"evil.example"}}, {"watch", ni::Action::Alert, {"watched.example"}}}));
    auto v = h.run(100, {dns("www.evil.example", {a("www.evil.example", "198.18.9.1", 300)}, 100 * kS),
                         dns("good.example", {a("good.example", "198.18.9.2", 300)}, 100 * kS),
                         // covered only through its CNAME target
                         dns("innocent.example", {cname("innocent.example", "cdn.watched.example"),
                                                  a("cdn.watched.example", "198.18.9.3", 120)}, 100 * kS)});
    ASSERT_TRUE(v && v->active);
    ASSERT_EQ(v->hits.size(), 2u);
    EXPECT_EQ(v->hits[0].seq, 1u);
    EXPECT_EQ(v->hits[0].indicator, "evil.example");
    EXPECT_EQ(v->hits[0].name, "www.evil.example");
    EXPECT_TRUE(v->hits[0].block);
    EXPECT_EQ(v->hits[1].qname, "innocent.example");
    EXPECT_EQ(v->hits[1].name, "cdn.watched.example");
    EXPECT_EQ(v->hits[1].feed, "watch");
    EXPECT_FALSE(v->hits[1].block);
    EXPECT_EQ(v->dns_checked_total, 3u);
    ASSERT_EQ(v->resolved.size(), 2u);  // by address: .9.1, .9.3 (good.example's is not held)
    EXPECT_EQ(v->resolved[0].addr, ip("198.18.9.1"));
    EXPECT_EQ(v->resolved[0].feed_index, 0);
    EXPECT_TRUE(v->resolved[0].block);
    EXPECT_EQ(v->resolved[1].addr, ip("198.18.9.3"));
    EXPECT_EQ(v->resolved[1].feed_index, 1);
    EXPECT_EQ(v->resolved[1].expires_mono_ns, 220 * kS);
    EXPECT_EQ(v->feeds.at("doms").hits_total, 1u);
    EXPECT_EQ(v->feeds.at("watch").resolved, 1u);
    const auto gen = v->resolved_generation;

    // nothing new: the generation stays (the kernel sink writes nothing)
    v = h.run(101);
    EXPECT_EQ(v->resolved_generation, gen);
    // .9.3 expires at 220 s, .9.1 at 400 s
    v = h.run(221);
    ASSERT_EQ(v->resolved.size(), 1u);
    EXPECT_EQ(v->resolved[0].addr, ip("198.18.9.1"));
    EXPECT_GT(v->resolved_generation, gen);
    EXPECT_EQ(v->resolved_expired_total, 1u);
    EXPECT_EQ(v->feeds.at("watch").resolved, 0u);
}

TEST(DomainIntel, TtlIsClampedAndRenewedAndTheTableIsBounded) {
    ni::ResolvedConfig rc;
    rc.min_ttl = std::chrono::seconds(60);
    rc.max_ttl = std::chrono::seconds(600);
    rc.max_addresses = 2;
    Harness h(makeSet({{"doms", ni::Action::Alert, {"evil.example"}}}), rc);
    auto v = h.run(10, {dns("a.evil.example", {a("a.evil.example", "198.18.9.1", 0), a("a.evil.example", "198.18.9.2", 86400),
                                               a("a.evil.example", "198.18.9.3", 30)}, 10 * kS)});
    ASSERT_EQ(v->resolved.size(), 2u);
    EXPECT_EQ(v->resolved[0].expires_mono_ns, 70 * kS);   // TTL 0 -> min_ttl
    EXPECT_EQ(v->resolved[1].expires_mono_ns, 610 * kS);  // 1 d -> max_ttl
    EXPECT_EQ(v->resolved_dropped_total, 1u);
    // a later answer renews the hold
    v = h.run(50, {dns("a.evil.example", {a("a.evil.example", "198.18.9.1", 100)}, 50 * kS)});
    EXPECT_EQ(v->resolved[0].expires_mono_ns, 150 * kS);
    v = h.run(100);
    EXPECT_EQ(v->resolved.size(), 2u);
}

TEST(DomainIntel, BothEndsOfOneQueryCountOnceAndTheHitRingIsBounded) {
    Harness h(makeSet({{"doms", ni::Action::Alert, {"evil.example"}}}));
    std::vector<l7::Request> reqs;
    for (std::uint16_t i = 0; i < 6; ++i) {
        reqs.push_back(dns("x.evil.example", {}, 5 * kS, l7::Side::Client, 40000 + i));
        reqs.push_back(dns("x.evil.example", {}, 5 * kS, l7::Side::Server, 40000 + i));  // the server's view
    }
    auto v = h.run(5, reqs);
    EXPECT_EQ(v->hits_total, 6u);
    ASSERT_EQ(v->hits.size(), 4u);  // max_hits
    EXPECT_EQ(v->hits.front().seq, 3u);
    EXPECT_EQ(v->hits.back().seq, 6u);
    EXPECT_EQ(v->dns_checked_total, 12u);
}

TEST(DomainIntel, AReloadThatNoLongerListsTheDomainReleasesItsAddresses) {
    Harness h(makeSet({{"doms", ni::Action::Alert, {"evil.example"}}}));
    auto v = h.run(1, {dns("evil.example", {a("evil.example", "198.18.9.1", 300)}, kS)});
    ASSERT_EQ(v->resolved.size(), 1u);
    EXPECT_FALSE(v->resolved[0].block);
    // the same domain now in a block feed (second index): the entry follows it
    h.set = makeSet({{"other", ni::Action::Alert, {"x.example"}}, {"doms", ni::Action::Block, {"evil.example"}}}, 2);
    const auto gen = v->resolved_generation;
    v = h.run(2);
    ASSERT_EQ(v->resolved.size(), 1u);
    EXPECT_EQ(v->resolved[0].feed_index, 1);
    EXPECT_TRUE(v->resolved[0].block);
    EXPECT_GT(v->resolved_generation, gen);
    // no longer listed: released at once
    h.set = makeSet({{"other", ni::Action::Alert, {"x.example"}}}, 3);
    v = h.run(3);
    EXPECT_TRUE(v->resolved.empty());
    // no set at all (or no domain indicators): nothing matched, nothing held
    h.set = nullptr;
    v = h.run(4, {dns("evil.example", {a("evil.example", "198.18.9.1", 300)}, 4 * kS)});
    EXPECT_FALSE(v->active);
    EXPECT_EQ(v->hits_total, 1u);  // the first run's hit only
    EXPECT_TRUE(v->resolved.empty());
}

// The security stage reads each hit once (sequence numbers) and names a flow to a
// resolved address by its domain: one incident for the query and the flow.
TEST(DomainIntel, SecurityStageJoinsTheQueryAndTheFlowInOneEvent) {
    Harness h(makeSet({{"doms", ni::Action::Block, {"evil.example"}}}));
    std::shared_ptr<const analysis::domains::DomainIntelView> latest =
        h.run(1, {dns("www.evil.example", {a("www.evil.example", "198.18.9.1", 300)}, kS)});
    analysis::security::SecurityStage::Options so;
    so.domains = [&] { return latest; };
    analysis::security::SecurityStage stage(so, analysis::security::TimePoint{});

    collector::Snapshot s;
    s.mono = std::chrono::steady_clock::time_point(std::chrono::seconds(2));
    auto sec = std::make_shared<collector::SecuritySample>();
    np_sec_event e{};
    e.kind = NP_SEC_INTEL;
    e.ts_ns = 2 * kS;
    e.key.family = 4;
    e.key.proto = 1;
    const auto src = ip("198.18.0.2"), dst = ip("198.18.9.1");
    std::memcpy(&e.key.src_ip, src.data(), 16);
    std::memcpy(&e.key.dst_ip, dst.data(), 16);
    e.inner_proto = NP_INTEL_MATCH_DST | NP_INTEL_MATCH_BLOCK | NP_INTEL_MATCH_DONE;
    sec->records.push_back(e);
    s.security = sec;
    analysis::Views v;
    stage.run(s, v);
    ASSERT_TRUE(v.security);
    ASSERT_EQ(v.security->events.size(), 1u);
    const auto& ev = *v.security->events[0];
    EXPECT_EQ(std::get<std::string>(ev.evidence.at("indicator")), "evil.example");
    EXPECT_EQ(std::get<std::int64_t>(ev.evidence.at("dns_queries")), 1);
    EXPECT_EQ(std::get<std::int64_t>(ev.evidence.at("flows")), 1);
    EXPECT_EQ(std::get<std::string>(ev.evidence.at("note")), "note evil.example");
    EXPECT_EQ(ev.dst, dst);
    EXPECT_EQ(v.security->stats.intel_dns_hits, 1u);
    // the same view again: nothing read twice
    s.security = std::make_shared<collector::SecuritySample>();
    s.mono += std::chrono::seconds(1);
    analysis::Views v2;
    stage.run(s, v2);
    EXPECT_EQ(v2.security->stats.intel_dns_hits, 1u);
    EXPECT_EQ(v2.security->stats.intel_dns_missed, 0u);
}

}  // namespace
