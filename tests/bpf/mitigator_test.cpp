// ebpf::Mitigator against the real datapath maps: the kernel blocklist follows the
// plan; a rule id handed to a new rule starts with zeroed counters (c2ebe38 ignored a
// failed reset); removed rules' matches stay in the retired total; the status the
// export reads is published by apply().
#include <unistd.h>

#include <cstring>
#include <vector>

#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <netprobe/ebpf/manager.hpp>
#include <netprobe/ebpf/map_io.hpp>
#include <netprobe/ebpf/mitigator.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using namespace netprobe;

ebpf::BlockRequest req(const char* ip, std::uint64_t event) {
    return {*util::parseAddr(ip), 128, event};
}

std::optional<std::uint32_t> ruleIdOf(int blocklist, const char* ip) {
    np_block_key k{};
    k.prefixlen = 128;
    auto a = *util::parseAddr(ip);
    std::memcpy(k.addr.v6, a.data(), 16);
    np_block_value v{};
    if (bpf_map_lookup_elem(blocklist, &k, &v) != 0) return std::nullopt;
    return v.rule_id;
}

void setCounter(int block_stats, std::uint32_t id, std::uint64_t packets) {
    std::vector<np_counter> v(static_cast<std::size_t>(ebpf::possibleCpus()));
    v[0].packets = packets;
    v[0].bytes = packets * 100;
    ASSERT_EQ(bpf_map_update_elem(block_stats, &id, v.data(), BPF_ANY), 0);
}

class MitigatorTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root";
        ebpf::ManagerOptions o;
        o.mitigate = NP_MITIGATE_ON;
        auto m = ebpf::Manager::create(o);
        ASSERT_TRUE(m) << m.error().what();
        manager = std::move(*m);
        auto bl = manager->mapFd(ebpf::DatapathMap::Blocklist);
        auto bs = manager->mapFd(ebpf::DatapathMap::BlockStats);
        ASSERT_TRUE(bl && bs);
        blocklist = std::move(*bl);
        block_stats = std::move(*bs);
    }
    std::unique_ptr<ebpf::Manager> manager;
    util::UniqueFd blocklist, block_stats;
};

TEST_F(MitigatorTest, KernelBlocklistFollowsThePlan) {
    auto m = ebpf::Mitigator::create(*manager);
    ASSERT_TRUE(m) << m.error().what();
    ASSERT_TRUE((*m)->apply({req("198.18.7.1", 1), req("fd6e:7072::7", 2)}));
    auto st = (*m)->status();
    ASSERT_EQ(st->rules.size(), 2u);
    EXPECT_EQ(st->inserted_total, 2u);
    const auto id1 = ruleIdOf(blocklist.get(), "198.18.7.1");
    ASSERT_TRUE(id1);
    EXPECT_TRUE(ruleIdOf(blocklist.get(), "fd6e:7072::7"));
    // XDP matched 5 packets of the first rule
    setCounter(block_stats.get(), *id1, 5);
    ASSERT_TRUE((*m)->apply({req("198.18.7.1", 1), req("fd6e:7072::7", 2)}));  // unchanged: counters read
    st = (*m)->status();
    for (const auto& r : st->rules) {
        if (r.cidr == "198.18.7.1/32") {
            EXPECT_EQ(r.matched.packets, 5u);
        }
    }
    // the first rule expires: gone from the kernel, its matches kept in the retired total
    ASSERT_TRUE((*m)->apply({req("fd6e:7072::7", 2)}));
    st = (*m)->status();
    EXPECT_EQ(st->rules.size(), 1u);
    EXPECT_EQ(st->removed_total, 1u);
    EXPECT_EQ(st->retired.packets, 5u);
    EXPECT_FALSE(ruleIdOf(blocklist.get(), "198.18.7.1"));
    // a new rule reuses the freed id: its counters start at zero, not at the old rule's 5
    ASSERT_TRUE((*m)->apply({req("fd6e:7072::7", 2), req("198.18.7.9", 3)}));
    const auto id3 = ruleIdOf(blocklist.get(), "198.18.7.9");
    ASSERT_TRUE(id3);
    EXPECT_EQ(*id3, *id1);
    auto c = ebpf::lookupPerCpu<np_counter>(block_stats.get(), *id3, "block_stats");
    ASSERT_TRUE(c);
    EXPECT_EQ(ebpf::sumCounters(*c).packets, 0u);
    // everything goes: the kernel blocklist is empty again
    ASSERT_TRUE((*m)->apply({}));
    EXPECT_TRUE((*m)->status()->rules.empty());
    EXPECT_FALSE(ruleIdOf(blocklist.get(), "fd6e:7072::7"));
    EXPECT_FALSE(ruleIdOf(blocklist.get(), "198.18.7.9"));
    EXPECT_EQ((*m)->status()->delete_failures_total, 0u);
}

// The blocklist holds NP_BLOCK_RULES_MAX rules: beyond, an insert is refused, counted,
// and retried at the next apply once there is room.
TEST_F(MitigatorTest, FullBlocklistRefusesAndRetries) {
    auto m = ebpf::Mitigator::create(*manager);
    ASSERT_TRUE(m) << m.error().what();
    std::vector<ebpf::BlockRequest> want;
    for (std::uint32_t i = 0; i <= NP_BLOCK_RULES_MAX; ++i) {
        util::Addr16 a = *util::parseAddr("fd6e:7072::");
        a[12] = static_cast<std::uint8_t>(i >> 24);
        a[13] = static_cast<std::uint8_t>(i >> 16);
        a[14] = static_cast<std::uint8_t>(i >> 8);
        a[15] = static_cast<std::uint8_t>(i);
        want.push_back({a, 128, i});
    }
    EXPECT_FALSE((*m)->apply(want));  // one rule too many
    auto st = (*m)->status();
    EXPECT_EQ(st->rules.size(), NP_BLOCK_RULES_MAX);
    EXPECT_EQ(st->insert_failures_total, 1u);
    want.erase(want.begin());  // room for the last one
    EXPECT_TRUE((*m)->apply(want));
    st = (*m)->status();
    EXPECT_EQ(st->rules.size(), NP_BLOCK_RULES_MAX);
    EXPECT_EQ(st->inserted_total, NP_BLOCK_RULES_MAX + 1u);
}

}  // namespace
