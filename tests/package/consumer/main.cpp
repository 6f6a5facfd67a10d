// Uses the spec's API from an installed NetProbe: Manager, TCCollector, Server.
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/metrics/server.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    auto manager = netprobe::ebpf::Manager::create();
    if (!manager) {
        std::fprintf(stderr, "%s\n", manager.error().what().c_str());
        return 1;
    }
    if (argc > 1) {
        if (auto r = (*manager)->attachNetworkMonitor(argv[1]); !r) {
            std::fprintf(stderr, "%s\n", r.error().what().c_str());
            return 1;
        }
    }
    netprobe::collector::TCCollector collector(**manager);
    collector.setCollectInterval(std::chrono::seconds(5));
    auto stats = collector.collectOnce();
    if (!stats) return 1;
    for (const auto& s : *stats)
        std::printf("Interface %s: RX %llu packets, TX %llu packets\n", s.name.c_str(),
                    static_cast<unsigned long long>(s.ingress_packets),
                    static_cast<unsigned long long>(s.egress_packets));
    auto config = netprobe::metrics::DefaultServerConfig();
    config.port = 0;  // any free port
    config.address = "127.0.0.1";
    netprobe::metrics::Server server(config);
    if (auto r = server.start(collector); !r) return 1;
    std::printf("server on port %u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    server.stop();
    return 0;
}
