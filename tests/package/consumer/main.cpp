// Uses the spec's API from an installed NetProbe: Manager, TCCollector, Server; and
// netprobe::k8s: a kubelet cgroup path parsed, the host attribution handed to the server;
// netprobe::security: a config parsed from YAML, a SecurityMonitor on the manager, plugged into the server.
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/k8s/attribution.hpp>
#include <netprobe/k8s/cgroup.hpp>
#include <netprobe/metrics/server.hpp>
#include <netprobe/security/monitor.hpp>

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
    auto ref = netprobe::k8s::parseCgroupPath(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0d1c2b3a_4e5f_6a7b_8c9d_0e1f2a3b4c5d.slice/"
        "cri-containerd-4f6c1e0b2a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a090.scope");
    if (!ref) return 1;
    std::printf("container %s pod %s\n", ref->container_id.substr(0, 12).c_str(), ref->pod_uid.c_str());
    auto config = netprobe::metrics::DefaultServerConfig();
    config.port = 0;  // any free port
    config.address = "127.0.0.1";
    config.attribution = std::make_shared<netprobe::k8s::HostAttribution>();
    netprobe::security::SecurityConfig sec;
    if (auto r = netprobe::security::parseSecurityConfig("scan:\n  vertical_ports: 30\n", sec); !r) return 1;
    auto monitor = netprobe::security::SecurityMonitor::create(**manager, sec);
    if (!monitor) {
        std::fprintf(stderr, "%s\n", monitor.error().what().c_str());
        return 1;
    }
    std::shared_ptr<netprobe::security::SecurityMonitor> mon = std::move(*monitor);
    mon->start();
    config.security = mon;
    std::printf("security: %zu events, vertical_ports %u\n", mon->events({}).size(), mon->config().scan_vertical_ports);
    netprobe::metrics::Server server(config);
    if (auto r = server.start(collector); !r) return 1;
    std::printf("server on port %u\n", static_cast<unsigned>(server.port()));
    std::fflush(stdout);
    server.stop();
    mon->stop();
    return 0;
}
