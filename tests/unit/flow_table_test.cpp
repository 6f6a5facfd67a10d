// Flow accounting: the datapath source's per-entry baselines (FlowDeltaTracker) and
// the analysis stage's flow records (FlowTable).
#include <gtest/gtest.h>

#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/collector/flow_deltas.hpp>

#include "test_flows.hpp"

using namespace std::chrono_literals;
using netprobe::analysis::FlowTable;
using netprobe::collector::FlowDeltaTracker;
using netprobe::collector::FlowSample;
using netprobe::testing::makeEntry;
using netprobe::testing::makeKey;
using netprobe::testing::makeSample;

namespace {
constexpr std::uint64_t kSec = 1'000'000'000ULL;

std::uint64_t sumPackets(const std::vector<FlowSample>& v) {
    std::uint64_t n = 0;
    for (const auto& s : v) n += s.packets;
    return n;
}
}  // namespace

// ---- FlowDeltaTracker: cumulative kernel values -> each packet counted once ----

TEST(FlowDeltaTracker, TurnsCumulativeKernelValuesIntoIntervalDeltas) {
    FlowDeltaTracker t;
    auto k = makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6);
    std::vector<FlowSample> out;
    const std::vector e1{makeEntry(k, 3, 300, 10 * kSec, 11 * kSec, 0x02)};
    t.update(e1, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].packets, 3u);
    EXPECT_EQ(out[0].bytes, 300u);
    out.clear();
    const std::vector e2{makeEntry(k, 5, 500, 10 * kSec, 14 * kSec, 0x12)};
    t.update(e2, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].packets, 2u);
    EXPECT_EQ(out[0].bytes, 200u);
    EXPECT_EQ(out[0].first_seen_ns, 10 * kSec);
    EXPECT_EQ(out[0].last_seen_ns, 14 * kSec);
    EXPECT_EQ(out[0].tcp_flags, 0x12);
    out.clear();
    t.update(e2, out);  // no new packets: no sample
    EXPECT_TRUE(out.empty());
}

// The defect of c2ebe38: a kernel entry that outlived the agent's own record of the
// flow (evicted at --max-flows) counted again in full every interval. The baselines
// belong to the kernel entries, whatever the flow table keeps.
TEST(FlowDeltaTracker, KernelEntryOutlivingTheFlowRecordIsNotCountedTwice) {
    FlowDeltaTracker deltas;
    FlowTable table(1, 0s);  // room for one flow: the other is evicted every interval
    auto a = makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6);
    auto b = makeKey("198.18.0.1", "198.18.0.2", 2, 80, 6);
    std::uint64_t sent = 0, counted = 0;
    for (std::uint64_t i = 1; i <= 10; ++i) {
        // both kernel entries grow by 10 packets an interval
        const std::vector entries{makeEntry(a, 10 * i, 1000 * i, kSec, i * kSec), makeEntry(b, 10 * i, 1000 * i, kSec, i * kSec)};
        std::vector<FlowSample> samples;
        deltas.update(entries, samples);
        table.apply(samples, i * kSec);
        sent += 20;
        counted += sumPackets(samples);
        EXPECT_EQ(table.size(), 1u);
    }
    EXPECT_EQ(counted, sent);
    EXPECT_EQ(table.evictedTotal(), 10u);
}

// The other path of the defect: a removal that failed must not start the entry over.
TEST(FlowDeltaTracker, FailedRemovalKeepsTheBaseline) {
    FlowDeltaTracker t;
    auto k = makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6);
    std::vector<FlowSample> out;
    const std::vector e1{makeEntry(k, 4, 400, kSec, kSec)};
    t.update(e1, out);
    ASSERT_EQ(t.idle(10 * kSec, 2 * kSec).size(), 1u);
    // the LOOKUP_AND_DELETE failed: nothing retired; the entry is read again
    out.clear();
    const std::vector e2{makeEntry(k, 5, 500, kSec, 11 * kSec)};
    t.update(e2, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].packets, 1u);
    // the retry succeeds with the final values: only what came since the last read
    auto last = t.retire(k, makeEntry(k, 6, 600, kSec, 12 * kSec).stats);
    EXPECT_EQ(last.packets, 1u);
    EXPECT_EQ(last.bytes, 100u);
    EXPECT_TRUE(last.ended);
    EXPECT_EQ(t.size(), 0u);
    // a new kernel entry for the same key counts in full
    out.clear();
    const std::vector e3{makeEntry(k, 2, 200, 20 * kSec, 21 * kSec)};
    t.update(e3, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].packets, 2u);
}

TEST(FlowDeltaTracker, ForgetsEntriesAbsentFromARead) {
    FlowDeltaTracker t;
    auto a = makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6);
    auto b = makeKey("198.18.0.1", "198.18.0.3", 1, 80, 6);
    std::vector<FlowSample> out;
    const std::vector e1{makeEntry(a, 1, 60, kSec, kSec), makeEntry(b, 1, 60, kSec, kSec)};
    t.update(e1, out);
    EXPECT_EQ(t.size(), 2u);
    const std::vector e2{makeEntry(b, 2, 120, kSec, 2 * kSec)};
    t.update(e2, out);
    EXPECT_EQ(t.size(), 1u);
}

TEST(FlowDeltaTracker, ValuesBelowTheBaselineAreANewEntry) {
    FlowDeltaTracker t;
    auto k = makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6);
    std::vector<FlowSample> out;
    const std::vector e1{makeEntry(k, 10, 1000, kSec, kSec)};
    t.update(e1, out);
    out.clear();
    const std::vector e2{makeEntry(k, 3, 300, 5 * kSec, 6 * kSec)};
    t.update(e2, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].packets, 3u);
}

// ---- FlowTable: records from samples ----

TEST(FlowTable, AddsIntervalSamplesToTotals) {
    FlowTable t(100, 60s);
    auto k = makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6);
    const std::vector s1{makeSample(k, 3, 300, 10 * kSec, 11 * kSec, 0x02)};
    t.apply(s1, 12 * kSec);
    const std::vector s2{makeSample(k, 2, 200, 10 * kSec, 14 * kSec, 0x10)};
    t.apply(s2, 15 * kSec);
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

TEST(FlowTable, IntervalCountersResetWhenFlowIsQuiet) {
    FlowTable t(100, 60s);
    auto k = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17);
    const std::vector s1{makeSample(k, 1, 100, kSec, kSec)};
    t.apply(s1, 2 * kSec);
    t.apply({}, 3 * kSec);
    ASSERT_NE(t.find(k), nullptr);
    EXPECT_EQ(t.find(k)->interval_packets, 0u);
    EXPECT_EQ(t.find(k)->packets, 1u);
}

TEST(FlowTable, ExpiresIdleFlowsAndCountsThem) {
    FlowTable t(100, 10s);
    auto a = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17);
    auto b = makeKey("198.18.0.1", "198.18.0.3", 1, 2, 17);
    const std::vector s1{makeSample(a, 1, 100, kSec, kSec), makeSample(b, 1, 100, kSec, kSec)};
    t.apply(s1, 2 * kSec);
    t.apply({}, 5 * kSec);
    EXPECT_NE(t.find(a), nullptr);  // not idle for 10 s yet
    const std::vector s2{makeSample(b, 1, 100, kSec, 15 * kSec)};
    t.apply(s2, 16 * kSec);
    EXPECT_EQ(t.find(a), nullptr);
    EXPECT_NE(t.find(b), nullptr);
    EXPECT_EQ(t.expiredTotal(), 1u);
    EXPECT_EQ(t.evictedTotal(), 0u);
}

TEST(FlowTable, EvictsLeastRecentlySeenBeyondCapacity) {
    FlowTable t(3, 0s);  // 0: no idle expiry
    std::vector<FlowSample> d;
    for (std::uint16_t i = 0; i < 5; ++i)
        d.push_back(makeSample(makeKey("198.18.0.1", "198.18.0.2", i, 80, 6), 1, 60, kSec, (10 + i) * kSec));
    t.apply(d, 20 * kSec);
    EXPECT_EQ(t.size(), 3u);
    EXPECT_EQ(t.evictedTotal(), 2u);
    EXPECT_EQ(t.find(d[0].key), nullptr);
    EXPECT_EQ(t.find(d[1].key), nullptr);
    EXPECT_NE(t.find(d[4].key), nullptr);
}

TEST(FlowTable, RecordsSortedByIntervalBytesWithWallTimes) {
    FlowTable t(100, 60s);
    auto small = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17, 7);
    auto big = makeKey("fd6e:7072::1", "fd6e:7072::2", 3, 4, 6, 7, NP_DIR_EGRESS);
    const std::vector s{makeSample(small, 1, 100, kSec, kSec), makeSample(big, 10, 10000, kSec, 2 * kSec)};
    t.apply(s, 3 * kSec);
    const auto base = netprobe::collector::WallTime{} + std::chrono::hours(1000);
    auto recs = t.records([&](std::uint64_t ns) { return base + std::chrono::nanoseconds(ns); });
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[0].bytes, 10000u);
    EXPECT_EQ(recs[0].key.ifindex, 7u);
    EXPECT_EQ(recs[0].first_seen, base + std::chrono::seconds(1));
    EXPECT_EQ(recs[0].last_seen, base + std::chrono::seconds(2));
    EXPECT_EQ(recs[1].bytes, 100u);
}
