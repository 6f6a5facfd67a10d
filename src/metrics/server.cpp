#include <netprobe/metrics/server.hpp>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/metrics/security.hpp>

#include "metrics/json_api.hpp"

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
    std::unique_ptr<httplib::Server> server;  // its handlers hold the pipelines: dropped in stop()
    std::thread thread;
    std::uint16_t bound_port = 0;
    std::shared_ptr<const analysis::Pipeline> pipeline;
    collector::Collector* started = nullptr;  // the collector start() started; stop() stops it

    Result<void> serve(const std::shared_ptr<const analysis::Pipeline>& pipe);
};

Server::Server(ServerConfig config) : impl_(std::make_unique<Impl>()) { impl_->cfg = std::move(config); }

Server::~Server() { stop(); }

std::uint16_t Server::port() const { return impl_->bound_port; }

ServerConfig DefaultServerConfig() { return ServerConfig{}; }

Result<void> Server::start(collector::TCCollector& collector) {
    if (impl_->server) return std::unexpected(makeError("metrics server already started"));
    auto p = std::make_shared<analysis::Pipeline>(collector);
    p->addStage(std::make_unique<analysis::FlowAccounting>(
        analysis::FlowAccountingOptions{collector.options().max_flows, collector.options().flow_idle_timeout}));
    analysis::GroupingOptions go;
    go.workloads = impl_->cfg.workload_metrics.enabled;
    p->addStage(std::make_unique<analysis::Grouping>(impl_->cfg.attribution, go));
    return start(std::shared_ptr<const analysis::Pipeline>(std::move(p)));
}

Result<void> Server::start(std::shared_ptr<const analysis::Pipeline> pipeline) {
    auto& im = *impl_;
    if (im.server) return std::unexpected(makeError("metrics server already started"));
    if (!pipeline) return std::unexpected(makeError("metrics server: no pipeline"));
    if (auto r = im.serve(pipeline); !r) return r;
    im.pipeline = std::move(pipeline);
    auto& c = im.pipeline->collector();
    if (!c.running()) {
        if (auto r = c.collect(); !r) spdlog::warn("first collection failed: {}", r.error().what());
        c.start();
        im.started = &c;
    }
    return {};
}

Result<void> Server::Impl::serve(const std::shared_ptr<const analysis::Pipeline>& pipe) {
    if (cfg.port != 0) {
        if (auto r = probeBind(cfg.address, cfg.port); !r) return r;
    }
    server = std::make_unique<httplib::Server>();
    auto& http = *server;
    const ServerConfig c = cfg;
    // The handlers own what they read: the pipelines outlive every request.
    auto latest = [pipe] { return pipe->latest(); };

    http.Get("/metrics", [pipe, c](const httplib::Request&, httplib::Response& res) {
        const auto v = pipe->latest();
        auto body = renderMetrics(*v, c.render);
        if (v->groups) {
            const auto& g = *v->groups;
            if (g.kubernetes && c.pod_metrics.enabled) body += renderPodMetrics(g.pod_traffic, c.pod_metrics);
            if (g.workloads_enabled) body += renderWorkloadMetrics(g.workloads, c.workload_metrics);
            if (c.container_metrics.enabled && g.attribution && v->snapshot->cgroup_traffic)
                body += renderContainerMetrics(g.containers, c.container_metrics);
        }
        if (c.attribution) body += c.attribution->healthMetrics();
        std::vector<PipelineHealth> pipelines{{"main", pipe->stageStats()}};
        if (c.security) {
            if (const auto sv = c.security->latest(); sv->security) {
                const auto st = c.mitigator ? c.mitigator->status() : nullptr;
                body += renderSecurityMetrics(*sv->security, st.get());
            }
            pipelines.push_back({"security", c.security->stageStats()});
        }
        body += renderAgentHealth(pipelines, c.scheduler ? c.scheduler->stats() : std::vector<util::Scheduler::TaskStats>{});
        res.set_content(body, "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/api/v1/interfaces", [latest, c](const httplib::Request& req, httplib::Response& res) {
        if (!req.params.empty()) return sendError(res, 400, "this endpoint takes no parameters");
        sendJson(res, 200, interfacesJson(*latest()->snapshot, c.attribution.get()));
    });
    http.Get("/api/v1/flows", [latest, c](const httplib::Request& req, httplib::Response& res) {
        auto q = parseFlowQuery(req.params, c.default_flow_limit, c.max_flow_limit);
        if (!q) return sendError(res, 400, q.error());
        res.set_content(flowsJson(*latest(), *q, c.attribution.get()), "application/json");
    });
    http.Get("/api/v1/pods", [latest](const httplib::Request& req, httplib::Response& res) {
        if (!req.params.empty()) return sendError(res, 400, "this endpoint takes no parameters");
        res.set_content(podsJson(*latest()), "application/json");
    });
    http.Get("/api/v1/connections", [latest, c](const httplib::Request& req, httplib::Response& res) {
        auto q = parseConnectionQuery(req.params, c.default_flow_limit, c.max_flow_limit);
        if (!q) return sendError(res, 400, q.error());
        res.set_content(connectionsJson(*latest()->snapshot, *q, c.attribution.get())
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        "application/json");
    });
    http.Get("/api/v1/events", [c](const httplib::Request& req, httplib::Response& res) {
        std::vector<std::pair<std::string, std::string>> params(req.params.begin(), req.params.end());
        auto q = parseEventQuery(params, c.max_flow_limit);
        if (!q) return sendError(res, 400, q.error());
        const auto sv = c.security ? c.security->latest() : nullptr;
        if (!sv || !sv->security) return res.set_content(eventsJson({}, c.security != nullptr), "application/json");
        res.set_content(eventsJson(analysis::security::selectEvents(sv->security->events, *q)), "application/json");
    });
    http.Get("/api/v1/containers", [latest, c](const httplib::Request& req, httplib::Response& res) {
        if (!req.params.empty()) return sendError(res, 400, "this endpoint takes no parameters");
        res.set_content(containersJson(*latest(), c.attribution.get())
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        "application/json");
    });
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
    http.Get("/readyz", [latest](const httplib::Request&, httplib::Response& res) {
        if (latest()->snapshot->sequence == 0) {
            res.status = 503;
            res.set_content("not ready: no collection yet\n", "text/plain");
            return;
        }
        res.set_content("ready\n", "text/plain");
    });
    static constexpr const char* kPaths[] = {"/metrics",           "/api/v1/interfaces", "/api/v1/flows",
                                             "/api/v1/connections", "/api/v1/containers", "/api/v1/pods",
                                             "/api/v1/events",      "/healthz",           "/readyz"};
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
        std::string body = "NetProbe agent\n";
        for (const char* p : kPaths) body += std::string(p) + "\n";
        res.set_content(body, "text/plain");
    });
    auto notAllowed = [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Allow", "GET");
        sendError(res, 405, "method not allowed");
    };
    for (const char* p : kPaths) {
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
    if (cfg.port == 0) {
        port = http.bind_to_any_port(cfg.address);
    } else {
        port = http.bind_to_port(cfg.address, cfg.port) ? cfg.port : -1;
    }
    if (port <= 0) {
        server.reset();
        return std::unexpected(makeError("cannot listen on " + cfg.address + ":" + std::to_string(cfg.port)));
    }
    bound_port = static_cast<std::uint16_t>(port);
    thread = std::thread([&http] { http.listen_after_bind(); });
    // stop() is a no-op until the accept loop runs: wait for it so that a stop()
    // right after start() cannot leave the loop (and the join) hanging.
    for (int i = 0; i < 5000 && !http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    spdlog::info("serving metrics on http://{}:{}/metrics", cfg.address, bound_port);
    return {};
}

void Server::stop() {
    if (!impl_) return;
    if (impl_->thread.joinable()) {
        impl_->server->stop();
        impl_->thread.join();
    }
    impl_->server.reset();
    if (impl_->started) {
        impl_->started->stop();
        impl_->started = nullptr;
    }
    impl_->pipeline.reset();
}

}  // namespace netprobe::metrics
