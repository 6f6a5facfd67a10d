// User-space collection costs (Google Benchmark):
//   ReadFlows/Batch             readFlowMap over a real flow_stats map (the
//                               datapath skeleton, max_entries 131072) holding
//                               100k distinct flows with per-CPU values.
//   DrainFlows/Batch            readFlowMap(take=true) (read + delete of every entry;
//                               the agent reads and removes only idle flows); the map is
//                               refilled with BPF_MAP_UPDATE_BATCH outside the timing.
//   FlowDeltas                  FlowDeltaTracker::update of 100k kernel entries that
//                               all moved (the datapath source, every interval).
//   RenderMetrics/Series10k     renderMetrics of a snapshot with 900 interfaces
//                               (11 series each: 8 interface + 2 XDP + attached)
//                               plus the fixed families and the top-20 talkers of
//                               100k flows: ~10k series (exact count reported).
//   RenderMetrics/Flows100k     renderMetrics of 4 interfaces + 100k flows (what
//                               the agent renders with 100k tracked flows).
//   FlowPlaces                  FlowDeltaTracker::markPlaces of those 100k samples (which
//                               entry is its 5-tuple's place), every collection.
//   FlowTableApply/{Insert,Update}  FlowTable::apply of 100k samples into an empty
//                               table / a table already holding those flows.
//   FlowTableRecords            a quiet collection's apply of 100k flows (no samples;
//                               nothing moved before: the published version stays).
//   TopTalkers                  the TopTalkers stage over 100k samples (talkers,
//                               sums, sticky top-20), every interval.
//   FlowExport/Update           the FlowExport stage over 100k samples of open flows
//                               (the per-interval cost of flow records with 100k flows).
//   FlowExport/Emit             100k flows ending at once: their records built.
//   IpfixEncode                 Encoder::data of 100k biflow records (IPFIX messages
//                               of at most 1400 bytes); bytes per record reported.
//   FlowLogJson                 the flow log's JSON line of 100k records.
// Needs root (loads BPF maps). Counters: flows, series, bytes.
#include <benchmark/benchmark.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <netprobe/analysis/flow_export.hpp>
#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/ebpf/map_io.hpp>
#include <netprobe/metrics/server.hpp>
#include <netprobe/sinks/flow_log.hpp>
#include <netprobe/sinks/ipfix.hpp>

#include "bench_common.hpp"
#include "datapath.skel.h"
#include "ebpf/datapath.hpp"

namespace {

using netprobe::analysis::FlowTable;
using netprobe::collector::Snapshot;
using netprobe::ebpf::FlowEntry;

constexpr std::uint32_t kFlows = 100000;
constexpr std::uint32_t kMapSize = 131072;

datapath_bpf* g_skel = nullptr;
int g_flow_fd = -1;
std::vector<flow_key> g_keys;
std::vector<np_flow_stats> g_vals;  // kFlows * ncpu, per-CPU layout

int quietLibbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
    if (level != LIBBPF_WARN) return 0;
    return std::vfprintf(stderr, fmt, args);
}

// BPF_MAP_UPDATE_BATCH of all flows. flow_stats is BPF_F_NO_PREALLOC: a long
// burst of inserts can fail with ENOMEM while the BPF memory allocator refills its
// per-CPU cache asynchronously (irq_work), so the rest is retried after a pause.
int g_fill_enomem_retries = 0;
void fillMap() {
    std::uint32_t done = 0;
    for (int attempt = 0; done < kFlows; ++attempt) {
        __u32 count = kFlows - done;
        LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
        const int ncpu = netprobe::ebpf::possibleCpus();
        int err = bpf_map_update_batch(g_flow_fd, &g_keys[done],
                                       &g_vals[static_cast<std::size_t>(done) * static_cast<std::size_t>(ncpu)],
                                       &count, &opts);
        const int e = errno;
        done += count;
        if (err == 0) continue;
        if (e == ENOMEM && attempt < 1000) {
            ++g_fill_enomem_retries;
            usleep(1000);
            continue;
        }
        throw std::runtime_error(std::string("fill flow_stats: ") + std::strerror(e) + " after " +
                                 std::to_string(done));
    }
}

std::size_t mapEntries() {
    std::vector<FlowEntry> out;
    auto r = netprobe::ebpf::readFlowMap(g_flow_fd, out);
    return r ? *r : 0;
}

void BM_ReadFlows(benchmark::State& state) {
    if (mapEntries() != kFlows) fillMap();
    std::vector<FlowEntry> out;
    out.reserve(kFlows);
    for (auto _ : state) {
        out.clear();
        auto r = netprobe::ebpf::readFlowMap(g_flow_fd, out);
        if (!r || out.size() != kFlows) {
            const std::string msg = r ? "wrong number of flows read" : r.error().what();
            state.SkipWithError(msg.c_str());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["flows"] = static_cast<double>(out.size());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

void BM_DrainFlows(benchmark::State& state) {
    std::vector<FlowEntry> out;
    out.reserve(kFlows);
    for (auto _ : state) {
        state.PauseTiming();
        fillMap();
        out.clear();
        state.ResumeTiming();
        auto r = netprobe::ebpf::readFlowMap(g_flow_fd, out, /*take=*/true);
        if (!r || out.size() != kFlows) {
            const std::string msg = r ? "wrong number of flows drained" : r.error().what();
            state.SkipWithError(msg.c_str());
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    if (mapEntries() != 0) state.SkipWithError("drain left entries in the map");
    state.counters["flows"] = static_cast<double>(out.size());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

struct SnapshotFixture {
    netprobe::analysis::Views views;
    std::size_t series = 0;
};

SnapshotFixture makeSnapshot(std::uint32_t ifaces, std::uint32_t flows, std::size_t top_talkers) {
    SnapshotFixture f;
    auto snap = std::make_shared<Snapshot>();
    npbench::addInterfaces(*snap, ifaces);
    snap->kernel_flows = {kMapSize, flows, 0, 0};
    const auto now = npbench::monoNowNs();
    snap->mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
    snap->interval_seconds = 5;
    snap->flows = npbench::makeSamples(flows, now, ifaces > 0 ? ifaces : 1);
    FlowTable t(flows + 1, std::chrono::minutes(2));
    t.apply(snap->flows, now);
    auto fv = std::make_shared<netprobe::analysis::FlowView>();
    fv->records = npbench::makeRecords(t, now);
    fv->health = {flows, flows + 1, 0, 0};
    for (const auto& i : snap->interfaces) fv->interfaces.emplace_back(i.index, i.name);
    f.views.flows = std::move(fv);
    netprobe::analysis::TopTalkersOptions to;
    to.selector.k = top_talkers;
    netprobe::analysis::TopTalkers(to).run(*snap, f.views);
    f.views.snapshot = std::move(snap);
    f.series = npbench::countSeries(netprobe::metrics::renderMetrics(f.views));
    return f;
}

void BM_RenderMetrics(benchmark::State& state, std::uint32_t ifaces, std::uint32_t flows) {
    static std::optional<SnapshotFixture> fx;
    static std::pair<std::uint32_t, std::uint32_t> made{};
    if (!fx || made != std::pair{ifaces, flows}) {
        fx = makeSnapshot(ifaces, flows, 20);
        made = {ifaces, flows};
    }
    std::size_t bytes = 0;
    for (auto _ : state) {
        std::string s = netprobe::metrics::renderMetrics(fx->views);
        bytes = s.size();
        benchmark::DoNotOptimize(s.data());
    }
    state.counters["series"] = static_cast<double>(fx->series);
    state.counters["interfaces"] = ifaces;
    state.counters["flows"] = flows;
    state.counters["bytes"] = static_cast<double>(bytes);
}

// The datapath source's per-entry baselines: one read of 100k kernel entries that all
// moved (what every collection does before the flow accounting stage).
void BM_FlowDeltas(benchmark::State& state) {
    const auto now = npbench::monoNowNs();
    auto entries = npbench::makeEntries(kFlows, now);
    netprobe::collector::FlowDeltaTracker t;
    std::vector<netprobe::collector::FlowSample> out;
    out.reserve(kFlows);
    t.update(entries, out);
    for (auto _ : state) {
        state.PauseTiming();
        for (auto& e : entries) {
            e.stats.packets += 1;
            e.stats.bytes += 100;
        }
        out.clear();
        state.ResumeTiming();
        t.update(entries, out);
    }
    if (out.size() != kFlows) state.SkipWithError("wrong number of samples");
    state.counters["flows"] = kFlows;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

// Which of 100k samples (of 100k live entries) is its 5-tuple's place: every collection
// with samples, after the read.
void BM_FlowPlaces(benchmark::State& state) {
    const auto now = npbench::monoNowNs();
    auto entries = npbench::makeEntries(kFlows, now);
    netprobe::collector::FlowDeltaTracker t;
    std::vector<netprobe::collector::FlowSample> out;
    t.update(entries, out);
    std::size_t primary = 0;
    for (auto _ : state) {
        t.markPlaces(out);
        benchmark::DoNotOptimize(out.data());
    }
    for (const auto& s : out) primary += s.primary;
    if (primary != kFlows) state.SkipWithError("every 5-tuple is at one place: each sample is primary");
    state.counters["flows"] = kFlows;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

void BM_FlowTableApplyInsert(benchmark::State& state) {
    const auto now = npbench::monoNowNs();
    const auto deltas = npbench::makeSamples(kFlows, now);
    std::unique_ptr<FlowTable> t;
    for (auto _ : state) {
        state.PauseTiming();
        t.reset();
        t = std::make_unique<FlowTable>(kFlows, std::chrono::minutes(2));
        state.ResumeTiming();
        t->apply(deltas, now);
    }
    if (t && t->size() != kFlows) state.SkipWithError("wrong table size");
    state.counters["flows"] = kFlows;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

void BM_FlowTableApplyUpdate(benchmark::State& state) {
    const auto now = npbench::monoNowNs();
    const auto deltas = npbench::makeSamples(kFlows, now);
    FlowTable t(kFlows, std::chrono::minutes(2));
    t.apply(deltas, now);
    for (auto _ : state) {
        const auto published = t.records();  // the view of the previous collection, as in the agent
        t.apply(deltas, now);
        benchmark::DoNotOptimize(published.size());
    }
    if (t.size() != kFlows) state.SkipWithError("wrong table size");
    state.counters["flows"] = kFlows;
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

// The top talkers stage over one interval of 100k samples: talker of each sample,
// per-talker sums, the sticky top-20 (steady state: the same talkers every interval).
void BM_TopTalkers(benchmark::State& state) {
    auto now = npbench::monoNowNs();
    Snapshot snap;
    npbench::addInterfaces(snap, 4);
    snap.interval_seconds = 5;
    snap.flows = npbench::makeSamples(kFlows, now);
    netprobe::analysis::TopTalkers stage({});
    netprobe::analysis::Views views;
    std::size_t talkers = 0;
    for (auto _ : state) {
        now += 5'000'000'000ull;
        snap.mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
        stage.run(snap, views);
        talkers = views.talkers->talkers;
    }
    state.counters["flows"] = kFlows;
    state.counters["talkers"] = static_cast<double>(talkers);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

// The topology stage over one interval of 100k samples (the same 5-tuples every
// interval: conversations found, their slot updated, copy-on-write against the view the
// previous run published), and the API's answer over the result.
void BM_Topology(benchmark::State& state) {
    auto now = npbench::monoNowNs();
    Snapshot snap;
    npbench::addInterfaces(snap, 4);
    snap.interval_seconds = 5;
    snap.flows = npbench::makeSamples(kFlows, now);
    netprobe::analysis::Topology stage;
    netprobe::analysis::Views views;
    for (auto _ : state) {
        now += 5'000'000'000ull;
        snap.mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
        stage.run(snap, views);
    }
    state.counters["flows"] = kFlows;
    state.counters["conversations"] = static_cast<double>(views.topology->conversations.size());
}

void BM_TopologyJson(benchmark::State& state) {
    auto now = npbench::monoNowNs();
    Snapshot snap;
    npbench::addInterfaces(snap, 4);
    snap.flows = npbench::makeSamples(kFlows, now);
    snap.mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
    netprobe::analysis::Topology stage;
    netprobe::analysis::Views views;
    stage.run(snap, views);
    std::size_t bytes = 0;
    for (auto _ : state) bytes = netprobe::metrics::topologyJson(views.topology.get(), nullptr, {}).size();
    state.counters["bytes"] = static_cast<double>(bytes);
}

void BM_FlowExportUpdate(benchmark::State& state) {
    auto now = npbench::monoNowNs();
    Snapshot snap;
    npbench::addInterfaces(snap, 4);
    snap.flows = npbench::makeSamples(kFlows, now);
    netprobe::analysis::FlowExportOptions o;
    o.active_timeout = std::chrono::hours(24);
    o.idle_timeout = std::chrono::hours(24);
    o.max_flows = kFlows;
    netprobe::analysis::FlowExport stage(nullptr, o);
    netprobe::analysis::Views views;
    snap.mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
    stage.run(snap, views);
    for (auto _ : state) {
        now += 5'000'000'000ull;
        snap.mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
        stage.run(snap, views);
    }
    state.counters["open_flows"] = static_cast<double>(views.exports->health.cached);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

std::vector<netprobe::analysis::FlowExportRecord> exportRecords() {
    auto now = npbench::monoNowNs();
    Snapshot snap;
    npbench::addInterfaces(snap, 4);
    snap.flows = npbench::makeSamples(kFlows, now);
    snap.mono = netprobe::collector::MonoTime(std::chrono::nanoseconds(now));
    snap.taken_at = std::chrono::system_clock::now();
    netprobe::analysis::FlowExport stage(nullptr, {});
    netprobe::analysis::Views views;
    stage.run(snap, views);
    stage.finish(snap, views);
    return views.exports->records;
}

void BM_FlowExportEmit(benchmark::State& state) {
    std::size_t records = 0;
    for (auto _ : state) records = exportRecords().size();
    state.counters["records"] = static_cast<double>(records);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kFlows);
}

void BM_IpfixEncode(benchmark::State& state) {
    const auto recs = exportRecords();
    netprobe::sinks::ipfix::EncoderOptions o;
    o.node = "node-1";
    netprobe::sinks::ipfix::Encoder enc(o);
    std::size_t bytes = 0, messages = 0;
    for (auto _ : state) {
        auto m = enc.data(recs, 1);
        messages = m.size();
        bytes = 0;
        for (const auto& x : m) bytes += x.bytes.size();
        benchmark::DoNotOptimize(m.data());
    }
    state.counters["records"] = static_cast<double>(recs.size());
    state.counters["messages"] = static_cast<double>(messages);
    state.counters["bytes_per_record"] = static_cast<double>(bytes) / static_cast<double>(recs.size());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(recs.size()));
}

void BM_FlowLogJson(benchmark::State& state) {
    const auto recs = exportRecords();
    std::size_t bytes = 0;
    for (auto _ : state) {
        bytes = 0;
        for (const auto& r : recs) bytes += netprobe::sinks::flowRecordJson(r, "node-1").size() + 1;
    }
    state.counters["bytes_per_record"] = static_cast<double>(bytes) / static_cast<double>(recs.size());
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(recs.size()));
}

// The flow view build of an interval without samples: the published records copied
// with their interval counters reset, sorted and indexed (what apply() adds to the
// samples' work; the view itself shares the records).
void BM_FlowTableRecords(benchmark::State& state) {
    const auto now = npbench::monoNowNs();
    FlowTable t(kFlows, std::chrono::minutes(2));
    t.apply(npbench::makeSamples(kFlows, now), now);
    for (auto _ : state) {
        const auto published = t.records();
        t.apply({}, now);
        benchmark::DoNotOptimize(published.size());
    }
    if (t.size() != kFlows) state.SkipWithError("wrong table size");
    state.counters["flows"] = kFlows;
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
    libbpf_set_print(quietLibbpf);

    g_skel = datapath_bpf__open();
    if (!g_skel) {
        std::fprintf(stderr, "np_collector_bench: open datapath: %s\n", std::strerror(errno));
        return 1;
    }
    int err = bpf_map__set_max_entries(g_skel->maps.flow_stats, kMapSize);
    if (!err) err = datapath_bpf__load(g_skel);
    if (err) {
        std::fprintf(stderr, "np_collector_bench: load datapath (needs root): %s\n", std::strerror(-err));
        datapath_bpf__destroy(g_skel);
        return 1;
    }
    g_flow_fd = bpf_map__fd(g_skel->maps.flow_stats);

    const int ncpu = netprobe::ebpf::possibleCpus();
    const auto now = npbench::monoNowNs();
    g_keys.resize(kFlows);
    g_vals.resize(static_cast<std::size_t>(kFlows) * static_cast<std::size_t>(ncpu));
    for (std::uint32_t i = 0; i < kFlows; ++i) {
        g_keys[i] = npbench::flowKey(i);
        for (int c = 0; c < ncpu; ++c) {
            auto& v = g_vals[static_cast<std::size_t>(i) * static_cast<std::size_t>(ncpu) + static_cast<std::size_t>(c)];
            v.packets = 1 + (i + static_cast<std::uint32_t>(c)) % 50;
            v.bytes = v.packets * 800;
            v.first_seen_ns = now - 2'000'000'000ull + i;
            v.last_seen_ns = now - static_cast<std::uint64_t>(c);
            v.tcp_flags = 0x18;
        }
    }
    try {
        fillMap();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "np_collector_bench: %s\n", e.what());
        datapath_bpf__destroy(g_skel);
        return 1;
    }

    using benchmark::kMillisecond;
    benchmark::RegisterBenchmark("ReadFlows/Batch", BM_ReadFlows)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("DrainFlows/Batch", BM_DrainFlows)->Unit(kMillisecond)->UseRealTime()->Iterations(5);
    benchmark::RegisterBenchmark("FlowDeltas", BM_FlowDeltas)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowPlaces", BM_FlowPlaces)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("RenderMetrics/Series10k", BM_RenderMetrics, 900u, kFlows)
        ->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("RenderMetrics/Flows100k", BM_RenderMetrics, 4u, kFlows)
        ->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowTableApply/Insert", BM_FlowTableApplyInsert)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowTableApply/Update", BM_FlowTableApplyUpdate)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowTableRecords", BM_FlowTableRecords)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("TopTalkers", BM_TopTalkers)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("Topology", BM_Topology)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("TopologyJson", BM_TopologyJson)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowExport/Update", BM_FlowExportUpdate)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowExport/Emit", BM_FlowExportEmit)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("IpfixEncode", BM_IpfixEncode)->Unit(kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("FlowLogJson", BM_FlowLogJson)->Unit(kMillisecond)->UseRealTime();

    benchmark::RunSpecifiedBenchmarks();
    if (g_fill_enomem_retries)
        std::fprintf(stderr, "np_collector_bench: note: filling flow_stats hit ENOMEM %d time(s) (retried)\n",
                     g_fill_enomem_retries);
    benchmark::Shutdown();
    datapath_bpf__destroy(g_skel);
    return 0;
}
