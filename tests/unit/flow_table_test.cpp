#include <gtest/gtest.h>

#include <netprobe/collector/flow_table.hpp>

#include "test_flows.hpp"

using namespace std::chrono_literals;
using netprobe::collector::FlowTable;
using netprobe::testing::makeDelta;
using netprobe::testing::makeKey;

namespace {
constexpr std::uint64_t kSec = 1'000'000'000ULL;
}

TEST(FlowTable, TurnsCumulativeKernelValuesIntoIntervalDeltas) {
    FlowTable t(100, 60s);
    auto k = makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6);
    t.apply({makeDelta(k, 3, 300, 10 * kSec, 11 * kSec, 0x02)}, 12 * kSec);
    t.apply({makeDelta(k, 5, 500, 10 * kSec, 14 * kSec, 0x12)}, 15 * kSec);
    const auto* e = t.find(k);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->packets, 5u);
    EXPECT_EQ(e->bytes, 500u);
    EXPECT_EQ(e->interval_packets, 2u);
    EXPECT_EQ(e->interval_bytes, 200u);
    EXPECT_EQ(e->first_seen_ns, 10 * kSec);
    EXPECT_EQ(e->last_seen_ns, 14 * kSec);
    EXPECT_EQ(e->tcp_flags, 0x12);
}

TEST(FlowTable, RetiredKernelEntryKeepsTotalsAndANewEntryAddsToThem) {
    FlowTable t(100, 60s);
    auto k = makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6);
    t.apply({makeDelta(k, 3, 300, 1 * kSec, 2 * kSec)}, 3 * kSec);
    EXPECT_EQ(t.kernelIdle(3 * kSec, 5 * kSec).size(), 0u);
    ASSERT_EQ(t.kernelIdle(10 * kSec, 5 * kSec).size(), 1u);
    // The final values read at deletion: one more packet arrived after the last read.
    t.beginInterval();
    t.retire(makeDelta(k, 4, 400, 1 * kSec, 9 * kSec));
    EXPECT_EQ(t.find(k)->packets, 4u);
    EXPECT_EQ(t.find(k)->interval_packets, 1u);
    EXPECT_FALSE(t.find(k)->in_kernel);
    t.expire(10 * kSec);
    // The flow comes back: the kernel entry starts from zero again.
    t.apply({makeDelta(k, 2, 200, 20 * kSec, 21 * kSec)}, 22 * kSec);
    EXPECT_EQ(t.find(k)->packets, 6u);
    EXPECT_EQ(t.find(k)->bytes, 600u);
    EXPECT_EQ(t.find(k)->interval_packets, 2u);
    EXPECT_EQ(t.find(k)->first_seen_ns, 1 * kSec);
}

TEST(FlowTable, IntervalCountersResetWhenFlowIsQuiet) {
    FlowTable t(100, 60s);
    auto k = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17);
    t.apply({makeDelta(k, 1, 100, kSec, kSec)}, 2 * kSec);
    t.apply({}, 3 * kSec);
    ASSERT_NE(t.find(k), nullptr);
    EXPECT_EQ(t.find(k)->interval_packets, 0u);
    EXPECT_EQ(t.find(k)->packets, 1u);
}

TEST(FlowTable, ExpiresIdleFlowsAndCountsThem) {
    FlowTable t(100, 10s);
    auto a = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17);
    auto b = makeKey("198.18.0.1", "198.18.0.3", 1, 2, 17);
    t.apply({makeDelta(a, 1, 100, kSec, kSec), makeDelta(b, 1, 100, kSec, kSec)}, 2 * kSec);
    // a leaves the kernel table; b stays busy
    t.beginInterval();
    t.retire(makeDelta(a, 1, 100, kSec, kSec));
    t.expire(5 * kSec);
    EXPECT_NE(t.find(a), nullptr);  // not idle for 10 s yet
    t.apply({makeDelta(b, 2, 200, kSec, 15 * kSec)}, 16 * kSec);
    EXPECT_EQ(t.find(a), nullptr);
    EXPECT_NE(t.find(b), nullptr);
    EXPECT_EQ(t.expiredTotal(), 1u);
    EXPECT_EQ(t.evictedTotal(), 0u);
}

TEST(FlowTable, EvictsLeastRecentlySeenBeyondCapacity) {
    FlowTable t(3, 0s);  // 0: no idle expiry
    std::vector<netprobe::ebpf::FlowDelta> d;
    for (std::uint16_t i = 0; i < 5; ++i)
        d.push_back(makeDelta(makeKey("198.18.0.1", "198.18.0.2", i, 80, 6), 1, 60, kSec, (10 + i) * kSec));
    t.apply(d, 20 * kSec);
    EXPECT_EQ(t.size(), 3u);
    EXPECT_EQ(t.evictedTotal(), 2u);
    EXPECT_EQ(t.find(d[0].key), nullptr);
    EXPECT_EQ(t.find(d[1].key), nullptr);
    EXPECT_NE(t.find(d[4].key), nullptr);
}

TEST(FlowTable, RecordsSortedByIntervalBytesWithNamesAndWallTimes) {
    FlowTable t(100, 60s);
    auto small = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17, 7);
    auto big = makeKey("fd6e:7072::1", "fd6e:7072::2", 3, 4, 6, 7, NP_DIR_EGRESS);
    t.apply({makeDelta(small, 1, 100, kSec, kSec), makeDelta(big, 10, 10000, kSec, 2 * kSec)}, 3 * kSec);
    const auto base = netprobe::collector::WallTime{} + std::chrono::hours(1000);
    auto recs = t.records([](std::uint32_t idx) { return "if" + std::to_string(idx); },
                          [&](std::uint64_t ns) { return base + std::chrono::nanoseconds(ns); });
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[0].bytes, 10000u);
    EXPECT_EQ(recs[0].interface, "if7");
    EXPECT_EQ(recs[0].first_seen, base + std::chrono::seconds(1));
    EXPECT_EQ(recs[0].last_seen, base + std::chrono::seconds(2));
    EXPECT_EQ(recs[1].bytes, 100u);
}
