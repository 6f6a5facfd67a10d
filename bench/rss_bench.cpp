// Resident memory of the agent's user-space pipeline with N tracked flows
// (default 100k), without the kernel: it replays what the datapath source and the flow
// accounting stage do every interval with synthetic flows and prints VmRSS after each
// stage, so the stage that dominates is visible. The real agent is measured by bench/rss_agent.sh;
// this program explains its number.
//   read buffer    std::vector<FlowEntry> of N (freed after the deltas are taken)
//   baselines      FlowDeltaTracker of N kernel entries (the datapath source's)
//   samples        Snapshot::flows (FlowSample per flow that moved)
//   flow table     FlowTable::apply of N samples (unordered_map nodes)
//   view x2        FlowView::records (FlowRecord per flow) built while the previous
//                  view is still published (peak: two alive)
//   /metrics       renderMetrics (top 20 flows)
//   flows JSON     flowsJson with ?limit=10000 (the largest the server accepts), dumped
//   malloc_trim    how much of the RSS is freed memory glibc kept (not live data)
// Lines starting with "RESULT\t" are for bench/run.sh.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include <netprobe/analysis/flow_table.hpp>
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
    std::printf("user-space pipeline with %u flows (synthetic, no kernel):\n", flows);
    last_kb = statusKb("VmRSS");
    stage("start");

    const auto now = npbench::monoNowNs();
    auto entries = npbench::makeEntries(flows, now);
    stage("read buffer (FlowEntry x N)");
    collector::FlowDeltaTracker baselines;
    auto snap = std::make_shared<collector::Snapshot>();
    npbench::addInterfaces(*snap, 4);
    snap->kernel_flows = {131072, flows, 0, 0};
    baselines.update(entries, snap->flows);
    stage("baselines + samples (N)");
    std::vector<ebpf::FlowEntry>().swap(entries);
    stage("read buffer released");

    analysis::FlowTable table(flows, std::chrono::minutes(2));
    table.apply(snap->flows, now);
    stage("FlowTable (N flows)");

    auto make_view = [&] {
        auto fv = std::make_shared<analysis::FlowView>();
        fv->records = npbench::makeRecords(table, now);
        fv->health = {flows, flows, 0, 0};
        for (const auto& i : snap->interfaces) fv->interfaces.emplace_back(i.index, i.name);
        analysis::Views v;
        v.snapshot = snap;
        v.flows = std::move(fv);
        return v;
    };
    auto published = make_view();
    stage("view (FlowRecord x N)");
    auto next = make_view();  // built while the previous one is still published
    stage("second view (peak: two alive)");
    published = std::move(next);
    stage("previous view released");

    std::string metrics = metrics::renderMetrics(published, {20});
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
