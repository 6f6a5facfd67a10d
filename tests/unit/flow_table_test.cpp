// Flow accounting: the datapath source's per-entry baselines (FlowDeltaTracker) and
// the analysis stage's flow records (FlowTable).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/collector/collector.hpp>
#include <netprobe/collector/flow_index.hpp>
#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/collector/sources.hpp>

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

// ---- The kernel table's pressure (aggregated connection attempts) ----

// On at 3/4 of capacity (entries plus the attempts aggregated meanwhile), off below half:
// a flood whose attempts are aggregated keeps it on although the table itself empties.
TEST(FlowPressure, OnAtThreeQuartersOffBelowHalf) {
    using netprobe::collector::nextFlowPressure;
    constexpr std::uint64_t cap = 65536;
    EXPECT_FALSE(nextFlowPressure(false, cap * 3 / 4 - 1, cap));
    EXPECT_TRUE(nextFlowPressure(false, cap * 3 / 4, cap));
    EXPECT_TRUE(nextFlowPressure(true, cap / 2, cap));       // hysteresis: stays on
    EXPECT_TRUE(nextFlowPressure(true, 4 + 100000, cap));    // 4 entries, a flood's attempts aggregated
    EXPECT_FALSE(nextFlowPressure(true, cap / 2 - 1, cap));
    EXPECT_FALSE(nextFlowPressure(false, cap / 2, cap));
    EXPECT_FALSE(nextFlowPressure(false, 10, 0));            // no table
}

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

// Idle entries in chunks (the datapath source removes them 4096 at a time): each chunk is
// the first idle entries in table order, and retiring chunk after chunk retires exactly the
// idle ones, each once.
TEST(FlowDeltaTracker, IdleInChunks) {
    FlowDeltaTracker t;
    std::vector<netprobe::ebpf::FlowEntry> entries;
    for (std::uint16_t i = 0; i < 100; ++i)  // odd ports: seen at 9 s (busy), even: at 1 s (idle)
        entries.push_back(makeEntry(makeKey("198.18.0.1", "198.18.0.2", i, 80, 6), 1, 100, kSec, i % 2 ? 9 * kSec : kSec));
    std::vector<FlowSample> out;
    t.update(entries, out);
    const auto all = t.idle(10 * kSec, 2 * kSec);
    ASSERT_EQ(all.size(), 50u);
    const auto first = t.idle(10 * kSec, 2 * kSec, 7);
    ASSERT_EQ(first.size(), 7u);
    EXPECT_TRUE(std::equal(first.begin(), first.end(), all.begin(), netprobe::collector::FlowKeyEq{}));
    std::size_t retired = 0;
    for (bool more = true; more;) {
        const auto keys = t.idle(10 * kSec, 2 * kSec, 7);
        more = keys.size() == 7;
        for (const auto& k : keys) {
            EXPECT_EQ(k.src_port % 2, 0);
            (void)t.retire(k, np_flow_stats{.packets = 1, .bytes = 100});
            ++retired;
        }
    }
    EXPECT_EQ(retired, 50u);
    EXPECT_EQ(t.size(), 50u);
    EXPECT_TRUE(t.idle(10 * kSec, 2 * kSec).empty());
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

// A routed packet is in two kernel entries (interfaces 2 and 3); the one created first is
// its 5-tuple's place for as long as it lives, whichever of the two moved in a read.
TEST(FlowDeltaTracker, MarksPlaces) {
    FlowDeltaTracker t;
    const auto in = makeKey("198.18.0.1", "198.18.1.1", 40000, 80, 6, 3);  // created first
    const auto out_if = makeKey("198.18.0.1", "198.18.1.1", 40000, 80, 6, 2, NP_DIR_EGRESS);
    const auto back = makeKey("198.18.1.1", "198.18.0.1", 80, 40000, 6, 2);   // the answer: another 5-tuple
    const auto other = makeKey("198.18.0.1", "198.18.1.1", 40001, 80, 6, 2);  // another port: alone
    auto primaries = [](const std::vector<FlowSample>& v) {
        std::map<std::uint32_t, int> n;  // ifindex of the 5-tuple's samples -> primary?
        for (const auto& s : v)
            if (s.key.src_port == 40000) n[s.key.ifindex] = s.primary;
        return n;
    };
    std::vector<FlowSample> out;
    t.update(std::vector{makeEntry(in, 1, 60, 10 * kSec, 10 * kSec), makeEntry(out_if, 1, 60, 10 * kSec + 1, 10 * kSec),
                         makeEntry(back, 1, 60, 10 * kSec, 10 * kSec), makeEntry(other, 1, 60, 12 * kSec, 12 * kSec)},
             out);
    t.markPlaces(out);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(primaries(out), (std::map<std::uint32_t, int>{{3, 1}, {2, 0}}));
    for (const auto& s : out) {
        if (s.key.src_port != 40000) { EXPECT_TRUE(s.primary) << s.key.src_port; }
    }
    // Only the later entry moved: it is still not the place (the first one lives).
    out.clear();
    t.update(std::vector{makeEntry(in, 1, 60, 10 * kSec, 10 * kSec), makeEntry(out_if, 3, 180, 10 * kSec + 1, 11 * kSec)},
             out);
    t.markPlaces(out);
    EXPECT_EQ(primaries(out), (std::map<std::uint32_t, int>{{2, 0}}));
    // The first entry retired with its last packets (in the same collection as a delta
    // of the other): its final sample is the place, the other's not.
    out.clear();
    t.update(std::vector{makeEntry(in, 1, 60, 10 * kSec, 10 * kSec), makeEntry(out_if, 4, 240, 10 * kSec + 1, 12 * kSec)},
             out);
    out.push_back(t.retire(in, makeEntry(in, 2, 120, 10 * kSec, 12 * kSec).stats));
    t.markPlaces(out);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_FALSE(out[0].primary);
    EXPECT_TRUE(out[1].primary && out[1].ended);
    // Gone: the entry that is left is the place.
    out.clear();
    t.update(std::vector{makeEntry(out_if, 6, 360, 10 * kSec + 1, 13 * kSec)}, out);
    t.markPlaces(out);
    EXPECT_EQ(primaries(out), (std::map<std::uint32_t, int>{{2, 1}}));
    // Created again at interface 3, later: the entry at interface 2 stays the place.
    out.clear();
    t.update(std::vector{makeEntry(out_if, 7, 420, 10 * kSec + 1, 14 * kSec), makeEntry(in, 1, 60, 14 * kSec, 14 * kSec)},
             out);
    t.markPlaces(out);
    EXPECT_EQ(primaries(out), (std::map<std::uint32_t, int>{{2, 1}, {3, 0}}));
    // Created in the same jiffy: the lower place (ifindex, tunnel, direction) is the place.
    FlowDeltaTracker u;
    out.clear();
    u.update(std::vector{makeEntry(in, 1, 60, 10 * kSec, 10 * kSec), makeEntry(out_if, 1, 60, 10 * kSec, 10 * kSec)}, out);
    u.markPlaces(out);
    EXPECT_EQ(primaries(out), (std::map<std::uint32_t, int>{{2, 1}, {3, 0}}));
}

// Many 5-tuples at up to three places over many reads (entries created, moving or not,
// retired): each sample is primary exactly when its entry comes first, by (kernel first
// seen, ifindex, direction), among the 5-tuple's entries of that read.
TEST(FlowDeltaTracker, MarksPlacesAgainstAModel) {
    FlowDeltaTracker t;
    std::map<std::pair<std::uint32_t, std::uint32_t>, netprobe::ebpf::FlowEntry> kernel;  // (5-tuple, place)
    std::mt19937 rng(5);
    auto keyOf = [](std::uint32_t tuple, std::uint32_t place) {
        return makeKey("198.18.0.1", "198.18.1.1", static_cast<std::uint16_t>(tuple), 80, 17, 1 + place / 2,
                       place % 2 ? NP_DIR_EGRESS : NP_DIR_INGRESS);
    };
    std::size_t checked = 0, secondary = 0;
    for (std::uint64_t round = 1; round <= 60; ++round) {
        for (int i = 0; i < 150; ++i) {
            const std::uint32_t tuple = rng() % 200, place = rng() % 3;
            // created in this round's jiffy or a few later (equal times happen)
            const std::uint64_t at = round * kSec + (rng() % 3) * 4'000'000;
            auto [it, fresh] = kernel.try_emplace({tuple, place}, makeEntry(keyOf(tuple, place), 0, 0, at, at));
            ++it->second.stats.packets;
            it->second.stats.last_seen_ns = std::max<std::uint64_t>(it->second.stats.last_seen_ns, at);
        }
        const auto at_read = kernel;
        std::vector<netprobe::ebpf::FlowEntry> read;
        for (const auto& [_, e] : kernel) read.push_back(e);
        std::shuffle(read.begin(), read.end(), rng);
        std::vector<FlowSample> out;
        t.update(read, out);
        for (const auto& k : t.idle(round * kSec, 3 * kSec)) {
            auto it = kernel.find({k.src_port, (k.ifindex - 1) * 2 + (k.direction == NP_DIR_EGRESS)});
            ASSERT_NE(it, kernel.end());
            out.push_back(t.retire(k, it->second.stats));
            kernel.erase(it);
        }
        t.markPlaces(out);
        for (const auto& smp : out) {
            const netprobe::ebpf::FlowEntry* best = nullptr;
            for (const auto& [tp, e] : at_read) {
                if (tp.first != smp.key.src_port) continue;
                auto rank = [](const netprobe::ebpf::FlowEntry& x) {
                    return std::tuple(x.stats.first_seen_ns, x.key.ifindex, x.key.direction);
                };
                if (!best || rank(e) < rank(*best)) best = &e;
            }
            ASSERT_TRUE(best);
            EXPECT_EQ(smp.primary, std::memcmp(&best->key, &smp.key, sizeof smp.key) == 0)
                << "round " << round << " port " << smp.key.src_port << " ifindex " << smp.key.ifindex;
            ++checked;
            secondary += !smp.primary;
        }
    }
    EXPECT_GT(checked, 5000u);
    EXPECT_GT(secondary, 1000u);  // (the model has 5-tuples at several places)
}

// Many entries over many reads (the flat baselines: growth, removal from the middle):
// entries created, moved, retired with their final values, removed behind the tracker's
// back; every packet in exactly one sample, one baseline per live kernel entry.
TEST(FlowDeltaTracker, CountsEveryPacketOnceOverManyReads) {
    FlowDeltaTracker t;
    std::map<std::uint32_t, netprobe::ebpf::FlowEntry> kernel;  // flow number -> cumulative entry
    std::mt19937 rng(3);
    std::uint64_t sent = 0, counted = 0;
    // Removed behind the tracker's back and not forgotten: no new entry for these keys
    // before the next read has forgotten them (the tracker could not tell it apart).
    std::set<std::uint32_t> gone;
    auto keyOf = [](std::uint32_t n) {
        return makeKey(n % 2 ? "fd6e:7072::1" : "198.18.0.1", n % 2 ? "fd6e:7072::2" : "198.18.0.2",
                       static_cast<std::uint16_t>(n), static_cast<std::uint16_t>(n >> 16), 17);
    };
    for (std::uint64_t round = 1; round <= 40; ++round) {
        for (int i = 0; i < 400; ++i) {  // traffic: new entries and more packets on known ones
            const std::uint32_t n = rng() % 5000;
            if (gone.contains(n)) continue;
            auto [it, fresh] = kernel.try_emplace(n, makeEntry(keyOf(n), 0, 0, round * kSec, round * kSec));
            const std::uint64_t p = 1 + rng() % 5;
            it->second.stats.packets += p;
            it->second.stats.bytes += 100 * p;
            it->second.stats.last_seen_ns = round * kSec;
            sent += p;
        }
        std::vector<netprobe::ebpf::FlowEntry> read;
        for (const auto& [_, e] : kernel) read.push_back(e);
        std::shuffle(read.begin(), read.end(), rng);
        std::vector<FlowSample> out;
        t.update(read, out);
        ASSERT_EQ(t.size(), kernel.size());
        gone.clear();
        // idle entries leave the kernel with their final values (maybe a few packets more)
        for (const auto& k : t.idle(round * kSec, 2 * kSec)) {
            auto it = kernel.find(k.src_port | (std::uint32_t{k.dst_port} << 16));
            ASSERT_NE(it, kernel.end());
            if (rng() % 3 == 0) {  // a packet between the read and the removal
                ++it->second.stats.packets;
                ++sent;
            }
            out.push_back(t.retire(k, it->second.stats));
            kernel.erase(it);
        }
        // some entries vanish without their removal being seen: found absent, forgotten
        for (int i = 0; i < 20 && !kernel.empty(); ++i) {
            auto it = std::next(kernel.begin(), static_cast<std::ptrdiff_t>(rng() % kernel.size()));
            if (rng() % 2) t.forget(it->second.key);
            else gone.insert(it->first);
            kernel.erase(it);  // no packets since the read: nothing is lost
        }
        counted += sumPackets(out);
        ASSERT_EQ(counted, sent) << "round " << round;
    }
    std::vector<FlowSample> out;
    std::vector<netprobe::ebpf::FlowEntry> read;
    for (const auto& [_, e] : kernel) read.push_back(e);
    t.update(read, out);
    EXPECT_EQ(t.size(), kernel.size());
    EXPECT_TRUE(out.empty());
}

// ---- FlowTable: records from samples ----

TEST(FlowTable, AddsIntervalSamplesToTotals) {
    FlowTable t(100, 60s);
    auto k = makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6);
    const std::vector s1{makeSample(k, 3, 300, 10 * kSec, 11 * kSec, 0x02)};
    t.apply(s1, 12 * kSec);
    const std::vector s2{makeSample(k, 2, 200, 10 * kSec, 14 * kSec, 0x10)};
    t.apply(s2, 15 * kSec);
    const auto e = t.find(k);
    ASSERT_TRUE(e.has_value());
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
    ASSERT_TRUE(t.find(k).has_value());
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
    EXPECT_TRUE(t.find(a).has_value());  // not idle for 10 s yet
    const std::vector s2{makeSample(b, 1, 100, kSec, 15 * kSec)};
    t.apply(s2, 16 * kSec);
    EXPECT_FALSE(t.find(a).has_value());
    EXPECT_TRUE(t.find(b).has_value());
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
    EXPECT_FALSE(t.find(d[0].key).has_value());
    EXPECT_FALSE(t.find(d[1].key).has_value());
    EXPECT_TRUE(t.find(d[4].key).has_value());
}

TEST(FlowTable, RecordsSortedByIntervalBytesWithKernelTimes) {
    FlowTable t(100, 60s);
    auto small = makeKey("198.18.0.1", "198.18.0.2", 1, 2, 17, 7);
    auto big = makeKey("fd6e:7072::1", "fd6e:7072::2", 3, 4, 6, 7, NP_DIR_EGRESS);
    const std::vector s{makeSample(small, 1, 100, kSec, kSec), makeSample(big, 10, 10000, kSec, 2 * kSec)};
    t.apply(s, 3 * kSec);
    auto recs = t.records();
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[0].bytes, 10000u);
    EXPECT_EQ(recs[0].key.ifindex, 7u);
    EXPECT_EQ(recs[0].first_seen_ns, kSec);
    EXPECT_EQ(recs[0].last_seen_ns, 2 * kSec);
    EXPECT_EQ(recs[1].bytes, 100u);
}

// After a burst of flows, the chunks of the ones forgotten go: new flows take the lowest
// free positions, so the last chunks empty out.
TEST(FlowTable, ChunksOfForgottenFlowsGo) {
    FlowTable t(100000, 10s);
    auto keyOf = [](std::uint32_t n) {
        return makeKey("198.18.0.1", "198.18.0.2", static_cast<std::uint16_t>(n), static_cast<std::uint16_t>(n >> 16), 17);
    };
    std::vector<FlowSample> burst;
    for (std::uint32_t n = 0; n < 5000; ++n) burst.push_back(makeSample(keyOf(n), 1, 100, kSec, kSec));
    t.apply(burst, 2 * kSec);
    EXPECT_EQ(t.chunks(), 5u);  // 1024 flows a chunk
    const auto held = t.records();
    // the first 1500 keep sending, the others go idle and expire
    std::vector<FlowSample> steady;
    for (std::uint32_t n = 0; n < 1500; ++n) steady.push_back(makeSample(keyOf(n), 1, 100, kSec, 20 * kSec));
    t.apply(steady, 21 * kSec);
    EXPECT_EQ(t.size(), 1500u);
    EXPECT_EQ(t.expiredTotal(), 3500u);
    EXPECT_EQ(t.chunks(), 2u);
    EXPECT_EQ(held.size(), 5000u);  // what a view held stays
    // new flows fill the free positions of the first chunks before a new chunk is made
    std::vector<FlowSample> more;
    for (std::uint32_t n = 10000; n < 10548; ++n) more.push_back(makeSample(keyOf(n), 1, 100, 21 * kSec, 21 * kSec));
    t.apply(more, 22 * kSec);
    EXPECT_EQ(t.size(), 2048u);
    EXPECT_EQ(t.chunks(), 2u);
    t.apply({}, 40 * kSec);  // every flow idle
    EXPECT_EQ(t.size(), 0u);
    EXPECT_EQ(t.chunks(), 0u);
    EXPECT_TRUE(t.records().empty());
}

// A view publishes the records of one collection: the next collection writes new
// ones, the published ones never change.
TEST(FlowTable, PublishedRecordsDoNotChange) {
    FlowTable t(100, 60s);
    auto a = makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6);
    auto b = makeKey("198.18.0.1", "198.18.0.3", 1, 80, 6);
    const std::vector s1{makeSample(a, 2, 200, kSec, kSec)};
    t.apply(s1, 2 * kSec);
    const auto view = t.records();
    const std::vector s2{makeSample(a, 1, 100, kSec, 3 * kSec), makeSample(b, 5, 500, 3 * kSec, 3 * kSec)};
    t.apply(s2, 4 * kSec);
    ASSERT_EQ(view.size(), 1u);
    EXPECT_EQ(view[0].packets, 2u);
    EXPECT_EQ(view[0].interval_packets, 2u);
    EXPECT_EQ(view[0].last_seen_ns, kSec);
    const auto next = t.records();
    ASSERT_EQ(next.size(), 2u);
    EXPECT_FALSE(next.sharesWith(view));
    EXPECT_EQ(next[0].key.dst_ip.v4m.v4, b.dst_ip.v4m.v4);  // 500 interval bytes first
    EXPECT_EQ(t.find(a)->packets, 3u);
    EXPECT_EQ(t.find(a)->interval_packets, 1u);
}

// A quiet collection after a quiet one changes nothing: the records stay the published
// ones (no copy of the table); interval counters to reset or a flow to expire make new ones.
TEST(FlowTable, QuietCollectionsKeepThePublishedRecords) {
    FlowTable t(100, 10s);
    auto a = makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6);
    const std::vector s1{makeSample(a, 2, 200, kSec, kSec)};
    t.apply(s1, 2 * kSec);
    const auto v1 = t.records();
    t.apply({}, 3 * kSec);  // the interval counters go to 0: new records
    const auto v2 = t.records();
    ASSERT_EQ(v2.size(), 1u);
    EXPECT_FALSE(v2.sharesWith(v1));
    EXPECT_EQ(v1[0].interval_packets, 2u);
    EXPECT_EQ(v2[0].interval_packets, 0u);
    t.apply({}, 4 * kSec);  // nothing to change
    EXPECT_TRUE(t.records().sharesWith(v2));
    EXPECT_EQ(t.find(a)->packets, v2[0].packets);
    t.apply({}, 12 * kSec);  // idle for 11 s: expired
    EXPECT_EQ(t.size(), 0u);
    EXPECT_FALSE(t.find(a).has_value());
    EXPECT_EQ(t.expiredTotal(), 1u);
    ASSERT_EQ(v2.size(), 1u);  // what was published stays
    EXPECT_EQ(v2[0].packets, 2u);
}

// The flat table against a plain model of the same rules (totals, interval counters,
// first/last seen, flags, idle expiry, least-recently-seen eviction, order) over many
// intervals of random samples; with views held across intervals as the pipeline does
// (the chunks of flows that moved are copied) or not (the table writes its own). Flows
// of equal interval bytes and bytes are in the table's order of positions: the model
// checks that the order is sorted and that each record is the model's of its key.
static void checkAgainstModel(bool hold_views, std::uint32_t universe = 600, std::size_t kMax = 300,
                              std::size_t per_interval = 200) {
    using netprobe::analysis::FlowRecord;
    auto same = [](const FlowRecord& a, const FlowRecord& b) {
        return std::memcmp(&a.key, &b.key, sizeof a.key) == 0 && a.tcp_flags == b.tcp_flags &&
               a.packets == b.packets && a.bytes == b.bytes && a.interval_packets == b.interval_packets &&
               a.interval_bytes == b.interval_bytes && a.first_seen_ns == b.first_seen_ns &&
               a.last_seen_ns == b.last_seen_ns;
    };
    std::map<std::uint32_t, FlowRecord> model;  // by flow number (= source port)
    const std::uint64_t kIdleNs = 20 * kSec;
    FlowTable t(kMax, std::chrono::nanoseconds(kIdleNs));
    std::uint64_t expired = 0, evicted = 0, seq = 0;
    std::mt19937 rng(7);
    netprobe::analysis::FlowRecords held;
    auto keyOf = [](std::uint32_t n) {
        return makeKey("198.18.0.1", n % 2 ? "fd6e:7072::2" : "198.18.0.2", static_cast<std::uint16_t>(n), 80,
                       static_cast<std::uint8_t>(n % 3 ? 6 : 17), 2 + n % 3);
    };
    for (std::uint64_t interval = 1; interval <= 80; ++interval) {
        const std::uint64_t now = 100 * kSec + interval * 2 * kSec;
        std::vector<FlowSample> samples;
        std::set<std::uint32_t> picked;
        // two quiet collections in a row now and then (the second changes nothing)
        const std::size_t count = interval % 7 == 3 || interval % 7 == 4 ? 0 : rng() % per_interval;
        for (std::size_t i = 0; i < count; ++i) {
            const std::uint32_t n = rng() % universe;
            if (!picked.insert(n).second) continue;
            const std::uint64_t pk = rng() % 4;  // 0: a sample without packets (an ended entry)
            // last_seen up to 30 s back, distinct across all samples: the eviction order is exact
            const std::uint64_t last = now - (rng() % 30) * kSec + ++seq;
            samples.push_back(makeSample(keyOf(n), pk, pk * (60 + rng() % 1400), last - rng() % (5 * kSec), last,
                                         static_cast<std::uint8_t>(1u << (rng() % 8))));
        }
        for (auto& [_, r] : model) r.interval_packets = r.interval_bytes = 0;
        for (const auto& s : samples) {
            auto [it, inserted] = model.try_emplace(s.key.src_port);
            auto& r = it->second;
            r.key = s.key;
            r.packets += s.packets;
            r.bytes += s.bytes;
            r.interval_packets += s.packets;
            r.interval_bytes += s.bytes;
            if (inserted || (s.first_seen_ns && s.first_seen_ns < r.first_seen_ns)) r.first_seen_ns = s.first_seen_ns;
            r.last_seen_ns = std::max(r.last_seen_ns, s.last_seen_ns);
            r.tcp_flags |= s.tcp_flags;
        }
        expired += std::erase_if(model, [&](const auto& kv) {
            const auto& r = kv.second;
            return r.interval_packets == 0 && now > r.last_seen_ns && now - r.last_seen_ns > kIdleNs;
        });
        while (model.size() > kMax) {
            model.erase(std::min_element(model.begin(), model.end(), [](const auto& x, const auto& y) {
                return x.second.last_seen_ns < y.second.last_seen_ns;
            }));
            ++evicted;
        }
        const std::vector<FlowRecord> before(held.begin(), held.end());
        t.apply(samples, now);
        // what a view held is untouched
        ASSERT_EQ(held.size(), before.size());
        for (std::size_t i = 0; i < before.size(); ++i) ASSERT_TRUE(same(held[i], before[i]));
        held = t.records();
        const auto recs = held;
        if (!hold_views) held = {};
        ASSERT_EQ(recs.size(), model.size()) << "interval " << interval;
        for (std::size_t i = 0; i < recs.size(); ++i) {
            const FlowRecord r = recs[i];
            auto it = model.find(r.key.src_port);
            ASSERT_NE(it, model.end()) << "interval " << interval << " record " << i;
            ASSERT_TRUE(same(r, it->second)) << "interval " << interval << " record " << i;
            if (i > 0) {
                const FlowRecord p = recs[i - 1];
                ASSERT_TRUE(p.interval_bytes > r.interval_bytes ||
                            (p.interval_bytes == r.interval_bytes && p.bytes >= r.bytes))
                    << "interval " << interval << " record " << i << " out of order";
            }
            const auto found = t.find(r.key);
            ASSERT_TRUE(found.has_value());
            EXPECT_TRUE(same(*found, r));
        }
        EXPECT_EQ(t.size(), model.size());
        EXPECT_EQ(t.expiredTotal(), expired);
        EXPECT_EQ(t.evictedTotal(), evicted);
        for (std::uint32_t n = 0; n < universe; ++n) {
            if (!model.contains(n)) {
                EXPECT_FALSE(t.find(keyOf(n)).has_value());
            }
        }
    }
    EXPECT_GT(expired, 0u);
    EXPECT_GT(evicted, 0u);
}

TEST(FlowTable, MatchesAModelWithViewsHeld) { checkAgainstModel(true); }
TEST(FlowTable, MatchesAModelReusingItsBuffer) { checkAgainstModel(false); }
// Several chunks of 1024 flows: positions freed and taken again across them.
TEST(FlowTable, MatchesAModelAcrossChunksWithViewsHeld) { checkAgainstModel(true, 9000, 4000, 3000); }
TEST(FlowTable, MatchesAModelAcrossChunks) { checkAgainstModel(false, 9000, 4000, 3000); }

// ---- the pipeline: views published without the snapshot's flow samples ----

TEST(Pipeline, PublishesTheSnapshotWithoutItsFlowSamples) {
    netprobe::collector::Collector collector("test", 1s);
    netprobe::analysis::Pipeline pipeline(collector);
    pipeline.addStage(std::make_unique<netprobe::analysis::FlowAccounting>(netprobe::analysis::FlowAccountingOptions{}));
    auto s = std::make_shared<netprobe::collector::Snapshot>();
    s->sequence = 7;
    s->taken_at = netprobe::collector::WallTime{} + 1000h;
    s->mono = netprobe::collector::MonoTime{} + 10s;
    s->interval_seconds = 1.5;
    s->interfaces.push_back({.name = "veth0", .index = 3, .ingress_packets = 5});
    s->kernel_flows.entries = 2;
    s->map_errors[NP_MAP_FLOW_STATS] = 4;
    s->icmp.push_back({});
    s->sources.push_back({.name = "datapath", .errors_total = 1});
    s->stack = std::make_shared<const netprobe::ebpf::StackStats>();
    s->flows = {makeSample(makeKey("198.18.0.1", "198.18.0.2", 1, 80, 6, 3), 2, 200, kSec, 9 * kSec),
                makeSample(makeKey("198.18.0.1", "198.18.0.2", 2, 80, 6, 3), 1, 100, kSec, 9 * kSec)};
    const auto v = pipeline.run(s);
    ASSERT_EQ(v->flows->records.size(), 2u);  // the stage read the samples
    const auto& p = *v->snapshot;
    EXPECT_TRUE(p.flows.empty());
    EXPECT_EQ(s->flows.size(), 2u);  // the collector's snapshot keeps them
    EXPECT_EQ(p.sequence, 7u);
    EXPECT_EQ(p.taken_at, s->taken_at);
    EXPECT_EQ(p.mono, s->mono);
    EXPECT_EQ(p.wallOf(9 * kSec), s->wallOf(9 * kSec));
    EXPECT_EQ(p.interval_seconds, 1.5);
    ASSERT_EQ(p.interfaces.size(), 1u);
    EXPECT_EQ(p.interfaces[0].name, "veth0");
    EXPECT_EQ(p.interfaces[0].ingress_packets, 5u);
    EXPECT_EQ(p.kernel_flows.entries, 2u);
    EXPECT_EQ(p.map_errors[NP_MAP_FLOW_STATS], 4u);
    EXPECT_EQ(p.icmp.size(), 1u);
    ASSERT_EQ(p.sources.size(), 1u);
    EXPECT_EQ(p.sources[0].errors_total, 1u);
    EXPECT_EQ(p.stack, s->stack);
    EXPECT_EQ(pipeline.latest(), v);
    // without samples there is nothing to leave out: the snapshot itself
    auto empty = std::make_shared<netprobe::collector::Snapshot>();
    EXPECT_EQ(pipeline.run(empty)->snapshot, empty);
}

// ---- FlowIndex: flow_key -> position ----

TEST(FlowIndex, InsertFindEraseMoveAgainstAMap) {
    using netprobe::collector::FlowIndex;
    std::vector<flow_key> keys;  // the caller's array; erase swaps the last key in
    std::map<std::uint32_t, std::uint32_t> where;  // flow number -> position
    FlowIndex idx;
    auto key_at = [&](std::uint32_t p) -> const flow_key& { return keys[p]; };
    auto keyOf = [](std::uint32_t n) { return makeKey("198.18.0.1", "198.18.0.2", static_cast<std::uint16_t>(n), 80, 6); };
    std::mt19937 rng(11);
    for (int step = 0; step < 20000; ++step) {
        const std::uint32_t n = rng() % 3000;
        const auto k = keyOf(n);
        auto it = where.find(n);
        if (it == where.end()) {
            ASSERT_EQ(idx.find(k, key_at), FlowIndex::npos);
            keys.push_back(k);
            idx.insert(k, static_cast<std::uint32_t>(keys.size() - 1), key_at);
            where[n] = static_cast<std::uint32_t>(keys.size() - 1);
        } else {
            ASSERT_EQ(idx.find(k, key_at), it->second);
            if (rng() % 2) {
                const std::uint32_t p = it->second, last = static_cast<std::uint32_t>(keys.size() - 1);
                idx.erase(k, p, key_at);
                if (p != last) {
                    idx.move(keys[last], last, p);
                    keys[p] = keys[last];
                    where[keys[p].src_port] = p;
                }
                keys.pop_back();
                where.erase(it);
            }
        }
        ASSERT_EQ(idx.size(), where.size());
    }
    for (std::uint32_t n = 0; n < 3000; ++n) {
        auto it = where.find(n);
        EXPECT_EQ(idx.find(keyOf(n), key_at), it == where.end() ? FlowIndex::npos : it->second);
    }
}
