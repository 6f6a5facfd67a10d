#include <netprobe/metrics/server.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "export/json_api.hpp"
#include <netprobe/security/monitor.hpp>

namespace netprobe::metrics {

namespace {

// Binds a throw-away socket first so a failure names the real reason
// (httplib only reports "false").
Result<void> probeBind(const std::string& address, std::uint16_t port) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
    if (inet_pton(AF_INET, address.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
        family = AF_INET6;
    } else {
        return std::unexpected(makeError("invalid listen address \"" + address + "\""));
    }
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::unexpected(errnoError(errno, "socket"));
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int r = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len);
    int e = errno;
    ::close(fd);
    if (r != 0) {
        return std::unexpected(errnoError(
            e, "cannot listen on " + address + ":" + std::to_string(port) + (e == EADDRINUSE ? " (port in use)" : "")));
    }
    return {};
}

void sendJson(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

void sendError(httplib::Response& res, int status, const std::string& msg) {
    sendJson(res, status, {{"error", msg}});
}

}  // namespace

struct Server::Impl {
    ServerConfig cfg;
    httplib::Server http;
    std::thread thread;
    std::uint16_t bound_port = 0;
    collector::TCCollector* collector = nullptr;
    std::shared_ptr<PodCounters> pod_counters;  // with attribution: monotonic pod totals
};

Server::Server(ServerConfig config) : impl_(std::make_unique<Impl>()) { impl_->cfg = std::move(config); }

Server::~Server() { stop(); }

std::uint16_t Server::port() const { return impl_->bound_port; }

Result<void> Server::start(collector::TCCollector& collector) {
    auto& im = *impl_;
    if (im.thread.joinable()) return std::unexpected(makeError("metrics server already started"));
    im.collector = &collector;
    if (im.cfg.port != 0) {
        if (auto r = probeBind(im.cfg.address, im.cfg.port); !r) return r;
    }
    auto& http = im.http;
    const ServerConfig cfg = im.cfg;
    auto* col = &collector;
    std::shared_ptr<PodCounters> counters;
    std::shared_ptr<WorkloadCounters> workloads;
    if (cfg.attribution && cfg.attribution->kubernetes()) {
        counters = std::make_shared<PodCounters>();
        im.pod_counters = counters;
        if (cfg.workload_metrics.enabled) workloads = std::make_shared<WorkloadCounters>();
        collector.setSnapshotObserver([counters, workloads, attr = cfg.attribution](const collector::Snapshot& s) {
            counters->observe(s, attr->localPods());
            if (workloads) workloads->observe(s, *attr);
        });
    }

    http.Get("/metrics", [col, cfg, counters, workloads](const httplib::Request&, httplib::Response& res) {
        auto snap = col->latest();
        auto body = renderMetrics(*snap, cfg.render);
        if (counters && cfg.pod_metrics.enabled) {
            auto pods = cfg.attribution->localPods();
            body += renderPodMetrics(counters->traffic(pods), cfg.pod_metrics);
        }
        if (workloads) body += renderWorkloadMetrics(workloads->traffic(), cfg.workload_metrics);
        if (cfg.container_metrics.enabled && cfg.attribution && snap->cgroup_traffic)
            body += renderContainerMetrics(containerTraffic(*snap, cfg.attribution.get()), cfg.container_metrics);
        if (cfg.attribution) body += cfg.attribution->healthMetrics();
        if (cfg.security) {
            ExpositionWriter w;
            cfg.security->renderMetrics(w);
            body += w.take();
        }
        res.set_content(body, "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/api/v1/interfaces", [col, cfg](const httplib::Request& req, httplib::Response& res) {
        if (!req.params.empty()) return sendError(res, 400, "this endpoint takes no parameters");
        sendJson(res, 200, interfacesJson(*col->latest(), cfg.attribution.get()));
    });
    http.Get("/api/v1/flows", [col, cfg](const httplib::Request& req, httplib::Response& res) {
        auto q = parseFlowQuery(req.params, cfg.default_flow_limit, cfg.max_flow_limit);
        if (!q) return sendError(res, 400, q.error());
        res.set_content(flowsJson(*col->latest(), *q, cfg.attribution.get()), "application/json");
    });
    http.Get("/api/v1/pods", [col, cfg, counters](const httplib::Request& req, httplib::Response& res) {
        if (!req.params.empty()) return sendError(res, 400, "this endpoint takes no parameters");
        auto snap = col->latest();
        std::vector<LocalPod> pods;
        if (cfg.attribution) pods = cfg.attribution->localPods();
        res.set_content(podsJson(*snap, counters ? counters->traffic(pods) : podTraffic(*snap, pods),
                                 counters != nullptr, counters && cfg.attribution->synced()),
                        "application/json");
    });
    http.Get("/api/v1/connections", [col, cfg](const httplib::Request& req, httplib::Response& res) {
        auto q = parseConnectionQuery(req.params, cfg.default_flow_limit, cfg.max_flow_limit);
        if (!q) return sendError(res, 400, q.error());
        res.status = 200;
        res.set_content(connectionsJson(*col->latest(), *q, cfg.attribution.get()).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        "application/json");
    });
    http.Get("/api/v1/events", [cfg](const httplib::Request& req, httplib::Response& res) {
        std::vector<std::pair<std::string, std::string>> params(req.params.begin(), req.params.end());
        auto q = security::parseEventQuery(params, cfg.max_flow_limit);
        if (!q) return sendError(res, 400, q.error());
        if (!cfg.security) return sendJson(res, 200, {{"enabled", false}, {"count", 0}, {"events", nlohmann::json::array()}});
        res.status = 200;
        res.set_content(security::eventsJson(cfg.security->events(*q)), "application/json");
    });
    http.Get("/api/v1/containers", [col, cfg](const httplib::Request& req, httplib::Response& res) {
        if (!req.params.empty()) return sendError(res, 400, "this endpoint takes no parameters");
        res.set_content(containersJson(*col->latest(), cfg.attribution.get())
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        "application/json");
    });
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("ok\n", "text/plain");
    });
    http.Get("/readyz", [col](const httplib::Request&, httplib::Response& res) {
        auto snap = col->latest();
        if (snap->sequence == 0) {
            res.status = 503;
            res.set_content("not ready: no collection yet\n", "text/plain");
            return;
        }
        res.set_content("ready\n", "text/plain");
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(
            "NetProbe agent\n/metrics\n/api/v1/interfaces\n/api/v1/flows\n/api/v1/connections\n/api/v1/containers\n/api/v1/pods\n/api/v1/events\n/healthz\n"
            "/readyz\n", "text/plain");
    });
    auto notAllowed = [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Allow", "GET");
        sendError(res, 405, "method not allowed");
    };
    for (const char* p : {"/metrics", "/api/v1/interfaces", "/api/v1/flows", "/api/v1/connections",
                          "/api/v1/containers", "/api/v1/pods",
                          "/api/v1/events", "/healthz", "/readyz"}) {
        http.Post(p, notAllowed);
        http.Put(p, notAllowed);
        http.Delete(p, notAllowed);
        http.Patch(p, notAllowed);
    }
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
        if (res.status == 404 && res.body.empty()) sendError(res, 404, "not found");
    });
    http.set_payload_max_length(64 * 1024);
    http.set_read_timeout(10, 0);
    http.set_write_timeout(10, 0);

    int port = 0;
    if (im.cfg.port == 0) {
        port = http.bind_to_any_port(im.cfg.address);
    } else {
        port = http.bind_to_port(im.cfg.address, im.cfg.port) ? im.cfg.port : -1;
    }
    if (port <= 0)
        return std::unexpected(makeError("cannot listen on " + im.cfg.address + ":" + std::to_string(im.cfg.port)));
    im.bound_port = static_cast<std::uint16_t>(port);
    im.thread = std::thread([&http] { http.listen_after_bind(); });
    // stop() is a no-op until the accept loop runs: wait for it so that a stop()
    // right after start() cannot leave the loop (and the join) hanging.
    for (int i = 0; i < 5000 && !http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    spdlog::info("serving metrics on http://{}:{}/metrics", im.cfg.address, im.bound_port);
    return {};
}

void Server::stop() {
    if (!impl_) return;
    if (impl_->pod_counters && impl_->collector) {
        impl_->collector->setSnapshotObserver({});
        impl_->pod_counters.reset();
    }
    if (impl_->thread.joinable()) {
        impl_->http.stop();
        impl_->thread.join();
    }
}

}  // namespace netprobe::metrics
