// Resident memory of the agent's user-space pipeline with N tracked flows
// (default 100k), without the kernel: it replays what the datapath source and the flow
// accounting stage do every interval with synthetic flows and prints VmRSS after each
// stage, so the stage that dominates is visible. The real agent is measured by bench/rss_agent.sh;
// this program explains its number.
//   baselines      FlowDeltaTracker of N kernel entries (the datapath source's), read
//                  batch by batch as the agent reads the kernel table
//   samples        Snapshot::flows (FlowSample per flow that moved), one per snapshot
//   flow records   FlowTable::apply of N samples: the table's records are the view's;
//                  the second collection's are built while the first view is still
//                  published (peak: two alive; a view keeps its snapshot without the
//                  samples, as the pipeline publishes it)
//   top talkers    the TopTalkers stage over the N samples (per-talker sums, top-20)
//   /metrics       renderMetrics (top 20 talkers)
//   flows JSON     flowsJson with ?limit=10000 (the largest the server accepts), dumped
//   malloc_trim    how much of the RSS is freed memory glibc kept (not live data)
// Lines starting with "RESULT\t" are for bench/run.sh.
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include <netprobe/analysis/flow_table.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/collector/flow_deltas.hpp>
#include <netprobe/metrics/server.hpp>

#include "bench_common.hpp"
#include "metrics/json_api.hpp"

namespace {

// kB value of a /proc/self/status field ("VmRSS", "VmHWM").
long statusKb(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::size_t n = std::strlen(field);
    while (std::getline(in, line))
        if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':')
            return std::strtol(line.c_str() + n + 1, nullptr, 10);
    return -1;
}

long last_kb = 0;
void stage(const char* name) {
    const long kb = statusKb("VmRSS");
    std::printf("  %-34s VmRSS %8.1f MiB  (+%6.1f MiB)\n", name, kb / 1024.0, (kb - last_kb) / 1024.0);
    last_kb = kb;
}

}  // namespace

int main(int argc, char** argv) {
    std::uint32_t flows = 100000;
    if (argc > 1) flows = static_cast<std::uint32_t>(std::strtoul(argv[1], nullptr, 10));
    if (flows == 0) {
        std::fprintf(stderr, "usage: %s [FLOWS]\n", argv[0]);
        return 2;
    }
    using namespace netprobe;
    // The agent's allocator settings (cmd/netprobe-agent/main.cpp): large buffers mmapped.
    ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    std::printf("user-space pipeline with %u flows (synthetic, no kernel):\n", flows);
    last_kb = statusKb("VmRSS");
    stage("start");

    // Two collections in which every flow moved, as the agent runs them: the datapath
    // source reads the kernel table batch by batch (4096 entries) into the baselines and
    // the snapshot's samples (reserved for the whole kernel table: address space until
    // written); the flow accounting stage applies the samples, its records are the view.
    constexpr std::uint32_t kTable = 131072, kBatch = 4096;
    const auto now = npbench::monoNowNs();
    collector::FlowDeltaTracker baselines;
    baselines.reserve(kTable);  // as the datapath source does
    auto collect = [&](std::uint64_t at, std::uint64_t round) {
        auto s = std::make_shared<collector::Snapshot>();
        npbench::addInterfaces(*s, 4);
        s->mono = collector::MonoTime(std::chrono::nanoseconds(at));
        s->kernel_flows = {kTable, flows, 0, 0};
        s->flows.reserve(std::size_t{kTable} + 1024);
        std::vector<ebpf::FlowEntry> batch;
        batch.reserve(kBatch);
        baselines.begin();
        for (std::uint32_t first = 0; first < flows; first += kBatch) {
            batch.clear();
            for (std::uint32_t i = first; i < std::min(flows, first + kBatch); ++i) {
                ebpf::FlowEntry e;
                e.key = npbench::flowKey(i);
                e.stats.packets = round * (1 + i % 97);
                e.stats.bytes = e.stats.packets * (64 + i % 1400);
                e.stats.first_seen_ns = now - 1'000'000'000ull + i;
                e.stats.last_seen_ns = at - (i % 1000);
                e.stats.tcp_flags = 0x18;
                batch.push_back(e);
            }
            for (const auto& e : batch) baselines.add(e, s->flows);
        }
        baselines.end();
        return s;
    };
    analysis::FlowTable table(flows, std::chrono::minutes(2));
    auto run = [&](const std::shared_ptr<collector::Snapshot>& s) {
        table.apply(s->flows, s->monoNs());
        auto fv = std::make_shared<analysis::FlowView>();
        fv->records = npbench::makeRecords(table, s->monoNs());
        fv->health = {table.size(), flows, 0, 0};
        for (const auto& i : s->interfaces) fv->interfaces.emplace_back(i.index, i.name);
        analysis::Views v;
        v.snapshot = s->withoutFlowSamples();  // as the pipeline publishes it
        v.flows = std::move(fv);
        return v;
    };

    auto snap = collect(now, 1);  // the collector's latest snapshot
    stage("collection 1: baselines + samples");
    auto published = run(snap);
    stage("collection 1: flow records (view)");
    snap = collect(now + 1'000'000'000ull, 2);  // replaces the first (its samples go)
    stage("collection 2: samples");
    auto next = run(snap);  // built while collection 1's view is still published
    stage("collection 2: records (peak)");
    published = std::move(next);
    stage("previous view released");

    analysis::TopTalkers talkers({});
    talkers.run(*snap, published);
    stage("top talkers (stage)");

    std::string metrics = metrics::renderMetrics(published);
    stage("/metrics rendered");

    metrics::FlowQuery q;
    q.limit = 10000;
    std::string json = metrics::flowsJson(published, q);
    stage("/api/v1/flows?limit=10000 dumped");
    json.clear();
    json.shrink_to_fit();
    metrics.clear();
    metrics.shrink_to_fit();
    stage("responses released");
    const long before_trim_kb = statusKb("VmRSS");
    malloc_trim(0);
    stage("malloc_trim(0)");
    const long after_trim_kb = statusKb("VmRSS");

    const long rss = statusKb("VmRSS"), hwm = statusKb("VmHWM");
    std::printf("VmRSS %.1f MiB, VmHWM %.1f MiB (%zu flows tracked)\n", rss / 1024.0, hwm / 1024.0, table.size());
    std::printf("RESULT\trss_pipeline_hwm_mib\t%.1f\n", hwm / 1024.0);
    std::printf("RESULT\trss_pipeline_rss_mib\t%.1f\n", before_trim_kb / 1024.0);
    std::printf("RESULT\trss_pipeline_trimmed_mib\t%.1f\n", after_trim_kb / 1024.0);
    return table.size() == flows ? 0 : 1;
}
