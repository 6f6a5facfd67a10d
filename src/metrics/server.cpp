#include <netprobe/metrics/server.hpp>

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/metrics/security.hpp>
#include <netprobe/metrics/l7.hpp>
#include <netprobe/metrics/policy.hpp>
#include <netprobe/metrics/respond.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/metrics/trace.hpp>
#include <netprobe/metrics/topology_stream.hpp>
#include <netprobe/metrics/topology_events.hpp>
#include <netprobe/metrics/topology_history.hpp>
#include <netprobe/metrics/qos.hpp>
#include <netprobe/metrics/models.hpp>
#include <netprobe/analysis/cost.hpp>
#include <netprobe/history/cluster.hpp>
#include <netprobe/history/prometheus.hpp>
#include <netprobe/analysis/edge_counters.hpp>
#include <netprobe/metrics/cluster_topology.hpp>
#include <netprobe/history/writer.hpp>
#include <netprobe/metrics/bottlenecks.hpp>
#include <netprobe/analysis/qos.hpp>

#include "metrics/json_api.hpp"
#include "metrics/ui.hpp"

namespace netprobe::metrics {

namespace {

http::Response noParams(const http::Request& req) {
    return http::Response::error(400, "this endpoint takes no parameters (got \"" + req.query.front().first + "\")");
}

}  // namespace

struct Server::Impl {
    ServerConfig cfg;
    std::unique_ptr<http::Server> metrics_http;
    std::unique_ptr<http::Server> api_http;
    std::shared_ptr<const analysis::Pipeline> pipeline;
    std::unique_ptr<TopologyStreams> topology_streams;  // GET /api/v1/topology/stream
    std::unique_ptr<TopologyEvents> topology_events;    // new boundary edges (/api/v1/events)
    collector::Collector* started = nullptr;  // the collector start() started; stop() stops it
    bool start_called = false;

    // The web configuration file and its reloads.
    std::unique_ptr<http::WebConfigFile> web_file;
    mutable std::mutex web_mu;
    std::atomic<std::uint64_t> reloads_ok{0}, reloads_failed{0};
    std::atomic<bool> last_reload_ok{true};
    std::atomic<double> last_success{0};

    Result<void> serve(const std::shared_ptr<const analysis::Pipeline>& pipe);
    http::Response route(const http::Request& req, bool metrics_listener, bool api_listener) const;
    http::Response metrics() const;
    http::Response api(const http::Request& req) const;
    std::vector<http::ServerStats> httpStats() const {
        std::vector<http::ServerStats> out;
        if (metrics_http) out.push_back(metrics_http->stats());
        if (api_http) out.push_back(api_http->stats());
        return out;
    }
};

Server::Server(ServerConfig config) : impl_(std::make_unique<Impl>()) { impl_->cfg = std::move(config); }

Server::~Server() { stop(); }

std::uint16_t Server::port() const { return impl_->metrics_http ? impl_->metrics_http->port() : 0; }
std::uint16_t Server::apiPort() const { return impl_->api_http ? impl_->api_http->port() : 0; }

ServerConfig DefaultServerConfig() { return ServerConfig{}; }

Result<void> Server::start(collector::TCCollector& collector) {
    if (impl_->metrics_http) return std::unexpected(makeError("metrics server already started"));
    auto p = std::make_shared<analysis::Pipeline>(collector);
    p->addStage(std::make_unique<analysis::FlowAccounting>(
        analysis::FlowAccountingOptions{collector.options().max_flows, collector.options().flow_idle_timeout}));
    analysis::GroupingOptions go;
    go.workloads = impl_->cfg.workload_metrics.enabled;
    p->addStage(std::make_unique<analysis::Grouping>(impl_->cfg.attribution, go));
    p->addStage(std::make_unique<analysis::TopTalkers>(impl_->cfg.talkers));
    p->addStage(std::make_unique<analysis::Topology>(analysis::TopologyOptions{}, impl_->cfg.attribution));
    return start(std::shared_ptr<const analysis::Pipeline>(std::move(p)));
}

Result<void> Server::listen(std::shared_ptr<const analysis::Pipeline> pipeline) {
    auto& im = *impl_;
    if (im.metrics_http) return std::unexpected(makeError("metrics server already listening"));
    if (!pipeline) return std::unexpected(makeError("metrics server: no pipeline"));
    return im.serve(pipeline);
}

Result<void> Server::start(std::shared_ptr<const analysis::Pipeline> pipeline) {
    auto& im = *impl_;
    if (im.start_called) return std::unexpected(makeError("metrics server already started"));
    if (!pipeline) return std::unexpected(makeError("metrics server: no pipeline"));
    if (!im.metrics_http) {
        if (auto r = im.serve(pipeline); !r) return r;
    } else if (im.pipeline != pipeline) {
        return std::unexpected(makeError("metrics server: start() with another pipeline than listen()"));
    }
    im.start_called = true;
    auto& c = im.pipeline->collector();
    if (!c.running()) {
        if (auto r = c.collect(); !r) spdlog::warn("first collection failed: {}", r.error().what());
        c.start();
        im.started = &c;
    }
    return {};
}

Result<void> Server::Impl::serve(const std::shared_ptr<const analysis::Pipeline>& pipe) {
    pipeline = pipe;
    topology_streams = std::make_unique<TopologyStreams>(pipeline);
    topology_events = std::make_unique<TopologyEvents>(pipeline);
    http::WebConfig web = cfg.web;
    if (!cfg.web_config_file.empty()) {
        web_file = std::make_unique<http::WebConfigFile>(cfg.web_config_file);
        auto w = web_file->load();
        if (!w) return std::unexpected(w.error());
        web = std::move(*w);
        reloads_ok = 1;
        last_success = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    }
    const bool separate = cfg.api == ServerConfig::Api::Separate;
    // Health probes carry no credentials (kubelet); they reveal nothing.
    cfg.http.public_paths = {"/healthz", "/readyz"};
    http::ServerOptions mo = cfg.http;
    mo.name = "metrics";
    mo.address = cfg.address;
    mo.port = cfg.port;
    auto m = http::Server::start(mo, web, [this, separate](const http::Request& r) {
        return route(r, true, cfg.api == ServerConfig::Api::Same && !separate);
    });
    if (!m) return std::unexpected(m.error());
    metrics_http = std::move(*m);
    if (separate) {
        http::ServerOptions ao = cfg.http;
        ao.name = "api";
        ao.address = cfg.api_address;
        ao.port = cfg.api_port;
        auto a = http::Server::start(ao, web, [this](const http::Request& r) { return route(r, false, true); });
        if (!a) {
            metrics_http.reset();
            return std::unexpected(a.error());
        }
        api_http = std::move(*a);
        spdlog::info("serving the JSON API on {}://{}:{}/api/v1/", web.tls ? "https" : "http", cfg.api_address,
                     api_http->port());
    } else if (cfg.api == ServerConfig::Api::Off) {
        spdlog::info("JSON API off (--api-address=off)");
    }
    spdlog::info("serving metrics on {}://{}:{}/metrics{}{}", web.tls ? "https" : "http", cfg.address,
                 metrics_http->port(), web.basic_auth_users.empty() ? "" : " (basic auth)",
                 web.tls && web.tls->client_auth != http::ClientAuth::NoClientCert
                     ? std::string(", client certificates: ") + http::toString(web.tls->client_auth)
                     : std::string());
    return {};
}

http::Response Server::Impl::metrics() const {
    const auto& c = cfg;
    const auto v = pipeline->latest();
    auto body = renderMetrics(*v);
    if (v->groups) {
        const auto& g = *v->groups;
        if (g.kubernetes && c.pod_metrics.enabled) body += renderPodMetrics(g.pod_traffic, c.pod_metrics);
        if (g.workloads_enabled) body += renderWorkloadMetrics(g.workloads, c.workload_metrics);
        if (c.container_metrics.enabled && g.attribution && v->snapshot->cgroup_traffic)
            body += renderContainerMetrics(g.containers, c.container_metrics);
    }
    if (c.attribution) body += c.attribution->healthMetrics();
    std::vector<PipelineHealth> pipelines{{"main", pipeline->stageStats()}};
    if (c.security) {
        if (const auto sv = c.security->latest(); sv->security) {
            const auto st = c.mitigator ? c.mitigator->status() : nullptr;
            body += renderSecurityMetrics(*sv->security, st.get());
        }
        pipelines.push_back({"security", c.security->stageStats()});
    }
    body += renderAgentHealth(pipelines, c.scheduler ? c.scheduler->stats() : std::vector<util::Scheduler::TaskStats>{});
    WebConfigHealth wh;
    wh.from_file = web_file != nullptr;
    wh.reloads_ok = reloads_ok.load();
    wh.reloads_failed = reloads_failed.load();
    wh.last_reload_ok = last_reload_ok.load();
    wh.last_success_unix_seconds = last_success.load();
    body += renderHttpMetrics(httpStats(), wh);
    if (v->diagnosis) body += renderDiagnosisMetrics(*v->diagnosis);
    if (v->domains) body += renderDomainIntelMetrics(*v->domains);
    if (const auto ci = c.cni ? c.cni() : nullptr) body += renderCniMetrics(*ci);
    if (v->snapshot->names) body += renderNameCaptureMetrics(*v->snapshot->names);
    if (v->snapshot->trace) body += renderTraceMetrics(*v->snapshot->trace);
    if (v->l7) body += renderL7Metrics(*v->l7, v->snapshot->l7.get());
    if (v->topology) body += renderTopologyMetrics(*v->topology);
    if (v->topology && topology_streams) body += renderTopologyStreamMetrics(topology_streams->stats());
    if (v->topology && topology_events) body += topology_events->renderMetrics();
    if (v->qos) body += renderQosMetrics(v->topology.get(), *v->qos);
    if (v->forecast) body += renderForecastMetrics(*v->forecast);
    if (v->anomaly) body += renderAnomalyMetrics(*v->anomaly);
    if (v->cost) body += renderCostMetrics(*v->cost);
    if (c.history) body += renderHistoryMetrics(c.history->stats());
    if (c.cluster_history) body += renderClusterHistoryMetrics(c.cluster_history->stats());
    if (c.edge_counters) body += renderEdgeCounterMetrics(*c.edge_counters->latest());
    if (c.prometheus_topology) body += renderPrometheusTopologyMetrics(c.prometheus_topology->stats());
    if (v->bottlenecks) body += renderBottleneckMetrics(*v->bottlenecks);
    if (v->policy) body += renderPolicyMetrics(*v->policy);
    if (v->responses) body += renderResponseMetrics(*v->responses);
    if (v->exports || !c.flow_sinks.empty()) {
        std::vector<sinks::SinkStatus> st;
        for (const auto& s : c.flow_sinks) st.push_back(s->status());
        body += renderFlowExportMetrics(v->exports.get(), st);
    }
    if (c.kernel) body += renderKernelFeatures(*c.kernel);
    http::Response r = http::Response::text(200, std::move(body));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
}

http::Response Server::Impl::api(const http::Request& req) const {
    const auto& c = cfg;
    const auto& p = req.path;
    if (p == "/api/v1/interfaces") {
        if (!req.query.empty()) return noParams(req);
        auto j = interfacesJson(*pipeline->latest()->snapshot, c.attribution.get());
        if (const auto ci = c.cni ? c.cni() : nullptr)
            j["cni"] = {{"name", ci->name},
                        {"overlay", ci->overlay},
                        {"evidence", ci->evidence},
                        {"pod_interfaces", ci->pod_interfaces}};
        return http::Response::json(200, j.dump());
    }
    if (p == "/api/v1/flows") {
        auto q = parseFlowQuery(req.query, c.default_flow_limit, c.max_flow_limit);
        if (!q) return http::Response::error(400, q.error());
        return http::Response::json(200, flowsJson(*pipeline->latest(), *q, c.attribution.get()));
    }
    if (p == "/api/v1/diagnosis") {
        if (!req.query.empty()) return noParams(req);
        return http::Response::json(200, diagnosisJson(pipeline->latest()->diagnosis.get()));
    }
    if (p == "/api/v1/l7/dns/names") {
        std::optional<util::Addr16> ip;
        for (const auto& [k, v] : req.query) {
            if (k != "ip") return http::Response::error(400, "unknown parameter \"" + k + "\" (known: ip)");
            ip = util::parseAddr(v);
            if (!ip) return http::Response::error(400, "bad value \"" + v + "\" for parameter \"ip\": expected an address");
        }
        return http::Response::json(200, l7DnsNamesJson(pipeline->latest()->l7.get(), ip));
    }
    if (p == "/api/v1/l7/endpoints" || p == "/api/v1/l7/requests") {
        const bool requests = p.ends_with("requests");
        auto q = parseL7Query(req.query, requests);
        if (!q) return http::Response::error(400, q.error());
        const auto v = pipeline->latest();
        return http::Response::json(200, requests ? l7RequestsJson(v->l7.get(), *q) : l7EndpointsJson(v->l7.get(), *q));
    }
    if (p == "/api/v1/topology/stream") return topology_streams->open(req);
    if (p == "/api/v1/topology") {
        auto q = parseTopologyQuery(req.query);
        if (!q) return http::Response::error(400, q.error());
        if (q->at_unix) {
            // The graph at a past time: from the history store's topology frames.
            if (!c.history)
                return http::Response::error(400, "at=: this agent has no history store (--history=on, the default, "
                                                  "with a writable --state-dir)");
            const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch()).count();
            auto doc = topologyAt(c.history->store(), *q, now);
            if (!doc) return http::Response::error(doc.error().status, doc.error().message);
            return http::Response::json(200, doc->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        }
        const auto v = pipeline->latest();
        if (q->source == "clickhouse") {
            // Every node's flow records; this node's view (saying why) when ClickHouse fails.
            if (!c.cluster_history)
                return http::Response::error(400, "source=clickhouse: this agent has no --history-source=clickhouse");
            const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch()).count();
            auto flows = c.cluster_history->flows(now - static_cast<std::int64_t>(q->window_seconds), now + 1,
                                                  std::max<std::size_t>(q->limit * 4, 1000));
            if (flows) return http::Response::json(200, clusterTopologyJson(*flows, *q, c.cluster_history->target()));
            auto local = nlohmann::json::parse(topologyJson(v->topology.get(), v->l7.get(), *q));
            local["source"] = "local";
            local["fallback"] = flows.error().what();
            return http::Response::json(200, local.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        }
        if (q->source == "prometheus") {
            // Every agent's edge series; this node's view (saying why) when Prometheus fails.
            if (!c.prometheus_topology)
                return http::Response::error(400, "source=prometheus: this agent has no --topology-source=prometheus");
            auto edges = c.prometheus_topology->edges(q->window_seconds);
            if (edges) return http::Response::json(200, prometheusTopologyJson(*edges, *q, c.prometheus_topology->target()));
            auto local = nlohmann::json::parse(topologyJson(v->topology.get(), v->l7.get(), *q));
            local["source"] = "local";
            local["fallback"] = edges.error().what();
            return http::Response::json(200, local.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        }
        return http::Response::json(200, topologyJson(v->topology.get(), v->l7.get(), *q));
    }
    if (p == "/api/v1/cost") {
        auto body = costJson(pipeline->latest()->cost.get(), req.query);
        if (!body) return http::Response::error(400, body.error());
        return http::Response::json(200, std::move(*body));
    }
    if (p == "/api/v1/history") {
        const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch()).count();
        auto body = historyJson({c.history ? &c.history->store() : nullptr, c.cluster_history.get(), c.node_name},
                                req.query, now);
        if (!body) return http::Response::error(body.error().status, body.error().message);
        return http::Response::json(200, std::move(*body));
    }
    if (p == "/api/v1/forecast" || p == "/api/v1/anomalies") {
        const auto v = pipeline->latest();
        auto body = p == "/api/v1/forecast" ? forecastJson(v->forecast.get(), req.query)
                                            : anomaliesJson(v->anomaly.get(), req.query);
        if (!body) return http::Response::error(400, body.error());
        return http::Response::json(200, std::move(*body));
    }
    if (p == "/api/v1/qos") {
        auto q = parseQosQuery(req.query);
        if (!q) return http::Response::error(400, q.error());
        const auto v = pipeline->latest();
        return http::Response::json(200, qosJson(v->topology.get(), v->qos.get(), *q, v->flows.get()));
    }
    if (p == "/api/v1/bottlenecks") {
        auto q = parseBottleneckQuery(req.query);
        if (!q) return http::Response::error(400, q.error());
        return http::Response::json(200, bottlenecksJson(pipeline->latest()->bottlenecks.get(), *q));
    }
    if (p == "/api/v1/policies") {
        auto q = parsePolicyQuery(req.query);
        if (!q) return http::Response::error(400, q.error());
        return http::Response::json(200, policiesJson(*pipeline->latest(), *q));
    }
    if (p == "/api/v1/responses") {
        if (!req.query.empty()) return noParams(req);
        return http::Response::json(200, responsesJson(*pipeline->latest()));
    }
    if (p == "/api/v1/pods") {
        if (!req.query.empty()) return noParams(req);
        return http::Response::json(200, podsJson(*pipeline->latest()));
    }
    if (p == "/api/v1/connections") {
        auto q = parseConnectionQuery(req.query, c.default_flow_limit, c.max_flow_limit);
        if (!q) return http::Response::error(400, q.error());
        return http::Response::json(200, connectionsJson(*pipeline->latest()->snapshot, *q, c.attribution.get()));
    }
    if (p == "/api/v1/events") {
        // type=new_boundary_edge is the topology's (topology_events.hpp); the others the security pipeline's.
        http::QueryParams rest;
        bool types_given = false, want_topology = false, other_types = false;
        for (const auto& [k, v] : req.query) {
            if (k != "type") {
                rest.emplace_back(k, v);
                continue;
            }
            types_given = true;
            std::string others;
            std::string_view left = v;
            while (true) {
                const auto comma = left.find(',');
                const auto name = left.substr(0, comma);
                if (name == "new_boundary_edge") want_topology = true;
                else others += (others.empty() ? "" : ",") + std::string(name);
                if (comma == std::string_view::npos) break;
                left.remove_prefix(comma + 1);
            }
            if (!others.empty() || !want_topology) {
                other_types = true;
                rest.emplace_back(k, others);
            }
        }
        auto q = parseEventQuery(rest, c.max_flow_limit);
        if (!q) return http::Response::error(400, q.error());
        const bool want_security = !types_given || other_types;
        if (!types_given) want_topology = true;
        const auto sv = c.security ? c.security->latest() : nullptr;
        std::string sec = !sv || !sv->security
                              ? eventsJson({}, c.security != nullptr)
                              : eventsJson(want_security ? analysis::security::selectEvents(sv->security->events, *q)
                                                         : std::vector<analysis::security::EventPtr>{});
        if (!topology_events || !want_topology) return http::Response::json(200, std::move(sec));
        std::optional<std::chrono::system_clock::time_point> since;
        if (q->since) since = *q->since;
        return http::Response::json(200, mergeEventsJson(sec, want_security, topology_events->select(since, q->limit), q->limit));
    }
    if (p == "/api/v1/intel") {
        if (!req.query.empty()) return noParams(req);
        const auto sv = c.security ? c.security->latest() : nullptr;
        const collector::IntelSample* in = sv && sv->security ? sv->security->intel.get() : nullptr;
        const auto mv = pipeline->latest();
        return http::Response::json(200, intelJson(in, mv->domains.get())
                                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    if (p == "/api/v1/containers") {
        if (!req.query.empty()) return noParams(req);
        return http::Response::json(200, containersJson(*pipeline->latest(), c.attribution.get())
                                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    if (p == "/api/v1/trace") {
        auto q = parseTraceQuery(req.query);
        if (!q) return http::Response::error(400, q.error());
        // The views are held for the whole answer: a raw pointer into the temporary's
        // snapshot dangled as soon as the collector published the next views (every
        // 200 ms in e2e_trace: the agent died in memmove, once in a CI run).
        const auto views = pipeline->latest();
        const auto* sample = views->snapshot->trace.get();
        if (const auto* start = std::get_if<TraceStart>(&*q)) {
            if (!c.trace) return http::Response::error(503, "packet path tracing is not available (the datapath or the stack monitor is off)");
            auto id = c.trace->submit(start->request);
            if (!id) return http::Response::error(429, id.error());
            return http::Response::json(200, nlohmann::json{{"id", *id},
                                                            {"state", "pending"},
                                                            {"seconds", start->request.duration.count()},
                                                            {"read", "/api/v1/trace?id=" + std::to_string(*id)}}
                                                 .dump());
        }
        const auto id = std::get<TraceRead>(*q).id;
        if (!c.trace) return http::Response::json(200, nlohmann::json{{"enabled", false}, {"traces", nlohmann::json::array()}}.dump());
        auto body = traceJson(sample, *c.trace, id);
        if (!body) return http::Response::error(404, "no trace " + std::to_string(id) + " (unknown, or finished long ago)");
        return http::Response::json(200, std::move(*body));
    }
    return http::Response::error(404, "not found");
}

http::Response Server::Impl::route(const http::Request& req, bool metrics_listener, bool api_listener) const {
    const auto& p = req.path;
    if (p == "/healthz") return http::Response::text(200, "ok\n");
    if (p == "/readyz") {
        if (pipeline->latest()->snapshot->sequence == 0) return http::Response::text(503, "not ready: no collection yet\n");
        return http::Response::text(200, "ready\n");
    }
    if (metrics_listener && p == "/metrics") return metrics();
    if (api_listener && p.starts_with("/api/v1/")) return api(req);
    if (api_listener && p == "/ui") {
        http::Response r = http::Response::text(301, "moved to /ui/\n");
        r.headers = {{"Location", "/ui/"}};
        return r;
    }
    if (api_listener && p.starts_with("/ui/")) {
        if (auto a = uiAsset(p)) return std::move(*a);
        return http::Response::error(404, "not found");
    }
    if (p == "/") {
        std::string body = "NetProbe agent\n";
        if (metrics_listener) body += "/metrics\n";
        if (api_listener) body += "/ui/ (the web UI: service map)\n";
        if (api_listener)
            for (const char* e : {"/api/v1/interfaces", "/api/v1/flows", "/api/v1/connections", "/api/v1/containers",
                                  "/api/v1/pods", "/api/v1/events", "/api/v1/intel", "/api/v1/diagnosis", "/api/v1/l7/endpoints",
                                  "/api/v1/l7/requests", "/api/v1/l7/dns/names", "/api/v1/topology", "/api/v1/topology/stream", "/api/v1/qos",
                                  "/api/v1/forecast", "/api/v1/anomalies", "/api/v1/history", "/api/v1/cost", "/api/v1/bottlenecks",
                                  "/api/v1/policies", "/api/v1/responses", "/api/v1/trace"})
                body += std::string(e) + "\n";
        body += "/healthz\n/readyz\n";
        return http::Response::text(200, std::move(body));
    }
    return http::Response::error(404, "not found");
}

Result<void> Server::reloadWebConfig() {
    auto& im = *impl_;
    if (!im.web_file) return std::unexpected(makeError("no web config file (--web-config-file) to reload"));
    std::lock_guard lk(im.web_mu);
    auto fail = [&](const Error& e) -> Result<void> {
        im.reloads_failed.fetch_add(1);
        im.last_reload_ok = false;
        return std::unexpected(e);
    };
    auto w = im.web_file->load();
    if (!w) return fail(w.error());
    for (auto* s : {im.metrics_http.get(), im.api_http.get()}) {
        if (!s) continue;
        if (auto r = s->setWebConfig(*w); !r) return fail(r.error());
    }
    im.reloads_ok.fetch_add(1);
    im.last_reload_ok = true;
    im.last_success = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return {};
}

bool Server::webConfigChanged() const {
    std::lock_guard lk(impl_->web_mu);
    return impl_->web_file && impl_->web_file->changed();
}

void Server::stop() {
    if (!impl_) return;
    // The listeners first: their handlers read the pipelines.
    if (impl_->api_http) impl_->api_http->stop();
    if (impl_->metrics_http) impl_->metrics_http->stop();
    impl_->api_http.reset();
    impl_->metrics_http.reset();
    impl_->topology_streams.reset();
    impl_->topology_events.reset();
    if (impl_->started) {
        impl_->started->stop();
        impl_->started = nullptr;
    }
    impl_->pipeline.reset();
}

}  // namespace netprobe::metrics
