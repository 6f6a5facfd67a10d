// The topology stream's update cost (GET /api/v1/topology/stream): per view and distinct
// query, the document of the view, its keyed graph, the diff against the previous one and
// the event's text - for a 2000-edge graph (500 nodes) of which 5% changed - and the bytes
// of that event against a full snapshot. Pure: no root, no kernel.
//   TopologyStream/Diff    diffTopology + the event text, given both graphs
//   TopologyStream/Update  everything publish() does per view: document + graph + diff + text
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/topology.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/metrics/topology_stream.hpp>
#include <netprobe/util/ip.hpp>

namespace {

using netprobe::analysis::Conversation;
using netprobe::analysis::TopologySlot;
using netprobe::analysis::TopologyView;

constexpr int kNodes = 500, kEdges = 2000;

netprobe::util::Addr16 addr(int i) {
    return *netprobe::util::parseAddr("198.18." + std::to_string(i / 250) + "." + std::to_string(1 + i % 250));
}

// 2000 conversations between 500 addresses (distinct client, server, port: 2000 edges).
TopologyView makeView() {
    TopologyView v;
    v.slot = std::chrono::seconds(10);
    v.slots = 90;
    v.now_slot = 100000;
    for (int i = 0; i < kEdges; ++i) {
        auto c = std::make_shared<Conversation>();
        c->client.ip = addr(i % kNodes);
        c->server.ip = addr((i * 7 + 3) % kNodes);
        c->port = static_cast<std::uint16_t>(1000 + i);
        c->ip_proto = 6;
        TopologySlot sl;
        sl.id = v.now_slot;
        sl.bytes_out = 100000 + static_cast<std::uint64_t>(i) * 13;
        sl.bytes_in = 5000 + static_cast<std::uint64_t>(i);
        sl.packets_out = sl.bytes_out / 1000;
        sl.packets_in = sl.bytes_in / 100;
        sl.opened = 1;
        c->slots.push_back(sl);
        v.conversations.push_back(std::move(c));
    }
    return v;
}

// The same view with 5% of the conversations' figures changed (and a new slot for them).
TopologyView changed(const TopologyView& v, std::uint32_t seed) {
    TopologyView n = v;
    std::mt19937 rng(seed);
    for (int k = 0; k < kEdges / 20; ++k) {
        auto& cp = n.conversations[rng() % n.conversations.size()];
        auto c = std::make_shared<Conversation>(*cp);
        c->slots.back().bytes_out += 1 + rng() % 100000;
        c->slots.back().packets_out += 1 + rng() % 100;
        cp = std::move(c);
    }
    return n;
}

void BM_StreamDiff(benchmark::State& state) {
    const auto a = makeView(), b = changed(a, 7);
    const netprobe::metrics::TopologyQuery q;
    const auto ga = netprobe::metrics::topologyGraph(netprobe::metrics::topologyDocument(&a, nullptr, q));
    const auto gb = netprobe::metrics::topologyGraph(netprobe::metrics::topologyDocument(&b, nullptr, q));
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto d = netprobe::metrics::diffTopology(ga, gb);
        bytes = netprobe::metrics::sseEvent("diff", "1.2", d.dump()).size();
        benchmark::DoNotOptimize(bytes);
    }
    auto snap = netprobe::metrics::topologyDocumentOf(gb);
    state.counters["edges"] = static_cast<double>(gb.edges.size());
    state.counters["nodes"] = static_cast<double>(gb.nodes.size());
    state.counters["bytes_per_update"] = static_cast<double>(bytes);
    state.counters["snapshot_bytes"] = static_cast<double>(netprobe::metrics::sseEvent("snapshot", "1.1", snap.dump()).size());
}

void BM_StreamUpdate(benchmark::State& state) {
    const auto a = makeView(), b = changed(a, 7);
    const netprobe::metrics::TopologyQuery q;
    auto prev = netprobe::metrics::topologyGraph(netprobe::metrics::topologyDocument(&a, nullptr, q));
    bool to_b = true;
    std::size_t bytes = 0;
    for (auto _ : state) {
        const TopologyView& v = to_b ? b : a;
        auto next = netprobe::metrics::topologyGraph(netprobe::metrics::topologyDocument(&v, nullptr, q));
        auto d = netprobe::metrics::diffTopology(prev, next);
        bytes = netprobe::metrics::sseEvent("diff", "1.2", d.dump()).size();
        prev = std::move(next);
        to_b = !to_b;
    }
    state.counters["bytes_per_update"] = static_cast<double>(bytes);
}

}  // namespace

BENCHMARK(BM_StreamDiff)->Name("TopologyStream/Diff")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StreamUpdate)->Name("TopologyStream/Update")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
