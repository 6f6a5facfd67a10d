// Uses an installed NetProbe through find_package(netprobe):
//  - the spec's sequence: Manager, attachNetworkMonitor, TCCollector, then a metrics
//    Server started on the collector; the server's start alone keeps collecting, so
//    traffic sent afterwards shows on /metrics (scraped here over HTTP);
//  - netprobe::k8s: a kubelet cgroup path parsed, the host attribution handed to the server;
//  - security analytics: a config parsed from YAML and the security pipeline (source,
//    collector, stage) plugged into the server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/collector/sources.hpp>
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/k8s/attribution.hpp>
#include <netprobe/k8s/cgroup.hpp>
#include <netprobe/metrics/server.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

// GET path from 127.0.0.1:port; the body ("" on failure).
std::string httpGet(std::uint16_t port, const char* path) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return {};
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        const std::string req = std::string("GET ") + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (::send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
            char buf[65536];
            for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    auto body = out.find("\r\n\r\n");
    return body == std::string::npos ? std::string() : out.substr(body + 4);
}

// The value of the first sample line starting with `series`, or -1.
double sample(const std::string& text, const std::string& series) {
    auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return -1;
    return std::strtod(text.c_str() + pos + series.size() + 2, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    auto manager = netprobe::ebpf::Manager::create();
    if (!manager) {
        std::fprintf(stderr, "%s\n", manager.error().what().c_str());
        return 1;
    }
    const std::string iface = argc > 1 ? argv[1] : "lo";
    if (auto r = (*manager)->attachNetworkMonitor(iface); !r) {
        std::fprintf(stderr, "%s\n", r.error().what().c_str());
        return 1;
    }
    netprobe::collector::TCCollector collector(**manager);
    collector.setCollectInterval(std::chrono::milliseconds(500));
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

    // Security analytics: its own collector (the tick) and pipeline.
    netprobe::analysis::security::SecurityConfig sec;
    if (auto r = netprobe::analysis::security::parseSecurityConfig("scan:\n  vertical_ports: 30\n", sec); !r) return 1;
    auto source = netprobe::collector::SecuritySource::create(**manager);
    if (!source) {
        std::fprintf(stderr, "%s\n", source.error().what().c_str());
        return 1;
    }
    netprobe::collector::Collector sec_collector("security", sec.tick);
    sec_collector.addSource(std::move(*source));
    auto sec_pipeline = std::make_shared<netprobe::analysis::Pipeline>(sec_collector);
    netprobe::analysis::security::SecurityStage::Options so;
    so.config = sec;
    sec_pipeline->addStage(std::make_unique<netprobe::analysis::security::SecurityStage>(so));
    config.security = sec_pipeline;
    if (!sec_collector.collect()) return 1;
    const auto sv = sec_pipeline->latest()->security;
    std::printf("security: %zu events, vertical_ports %u\n", sv ? sv->events.size() : 999, sec.scan_vertical_ports);

    netprobe::metrics::Server server(config);
    if (auto r = server.start(collector); !r) return 1;  // the spec: start(collector), nothing else
    std::printf("server on port %u\n", static_cast<unsigned>(server.port()));
    const std::string rx = "netprobe_interface_rx_packets_total{interface=\"" + iface + "\"}";
    const double before = sample(httpGet(server.port(), "/metrics"), rx);
    // Traffic after the start: only a running collection can show it.
    int u = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(9);  // discard; on loopback the packets cross lo either way
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    constexpr int kSent = 50;
    for (int i = 0; i < kSent; ++i) ::sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
    ::close(u);
    double after = before;
    for (int i = 0; i < 40 && after < before + kSent; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        after = sample(httpGet(server.port(), "/metrics"), rx);
    }
    std::printf("metrics: %s rx_packets %.0f -> %.0f after %d datagrams (%s)\n", iface.c_str(), before, after, kSent,
                after >= before + kSent ? "collected" : "NOT collected");
    std::fflush(stdout);
    server.stop();
    return after >= before + kSent ? 0 : 1;
}
