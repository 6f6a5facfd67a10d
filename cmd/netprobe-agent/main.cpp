// netprobe-agent: wires options -> Manager -> sources -> collectors -> analysis
// pipelines -> metrics::Server and sinks, follows interfaces over netlink, and
// detaches everything on SIGINT/SIGTERM.
#include <malloc.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <functional>
#include <optional>
#include <set>

#include <netprobe/collector/trace.hpp>
#include <netprobe/analysis/qos.hpp>
#include <netprobe/analysis/series.hpp>
#include <netprobe/analysis/forecast/stage.hpp>
#include <netprobe/analysis/anomaly/stage.hpp>
#include "models.hpp"
#include <netprobe/analysis/cost.hpp>
#include <netprobe/analysis/bottlenecks.hpp>
#include <netprobe/analysis/diagnosis.hpp>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/analysis/flow_export.hpp>
#include <netprobe/analysis/cni.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/policy.hpp>
#include <netprobe/analysis/respond/stage.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/analysis/talkers.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/collector/sources.hpp>
#include <netprobe/collector/tc_collector.hpp>
#include <netprobe/ebpf/mitigator.hpp>
#include <netprobe/ebpf/cgroup_traffic.hpp>
#include <netprobe/ebpf/features.hpp>
#include <netprobe/ebpf/interfaces.hpp>
#include <netprobe/ebpf/manager.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/http/server.hpp>
#include <netprobe/http/web_config.hpp>
#include <netprobe/k8s/attribution.hpp>
#include <netprobe/k8s/cgroup.hpp>
#include <netprobe/k8s/client.hpp>
#include <netprobe/k8s/config.hpp>
#include <netprobe/k8s/policy_publisher.hpp>
#include <netprobe/k8s/responder.hpp>
#include <netprobe/metrics/security.hpp>
#include <netprobe/metrics/server.hpp>
#include <netprobe/sinks/clickhouse.hpp>
#include <netprobe/history/cluster.hpp>
#include <netprobe/history/prometheus.hpp>
#include <netprobe/metrics/topology_history.hpp>
#include <netprobe/analysis/edge_counters.hpp>
#include <netprobe/sinks/flow_log.hpp>
#include <netprobe/sinks/ipfix.hpp>
#include <netprobe/util/capabilities.hpp>
#include <netprobe/util/cgroup.hpp>
#include <netprobe/util/scheduler.hpp>
#include <netprobe/analysis/domains/stage.hpp>
#include <netprobe/ebpf/intel_maps.hpp>
#include <netprobe/intel/feeds.hpp>
#include <netprobe/intel/indicators.hpp>
#include <netprobe/util/duration.hpp>
#include <netprobe/util/logging.hpp>

#include <execinfo.h>
#include <unistd.h>

#include <exception>

#include "doctor.hpp"
#include "options.hpp"

namespace {

using netprobe::agent::AgentOptions;

// An uncaught exception ends the agent with its message and the stack (module+offset
// per frame: `addr2line -fCe netprobe-agent 0xOFFSET` names them) on stderr, where a
// bare "terminate called" says nothing about where (a crash at shutdown in CI).
[[noreturn]] void terminateWithStack() {
    const char* what = "unknown exception";
    if (auto e = std::current_exception()) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            what = x.what();
        } catch (...) {
        }
    } else {
        what = "std::terminate without an exception";
    }
    std::fprintf(stderr, "netprobe-agent: fatal: %s; stack:\n", what);
    void* frames[64];
    const int n = ::backtrace(frames, 64);
    ::backtrace_symbols_fd(frames, n, STDERR_FILENO);
    std::abort();
}

int fatal(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "netprobe-agent: %s\n", msg.c_str());
    return code;
}

const char* envOr(const char* name, const char* fallback = "") {
    const char* v = std::getenv(name);
    return v ? v : fallback;
}

// Where the Kubernetes API is: --kubeconfig, else in-cluster (KUBERNETES_SERVICE_HOST),
// else none (nullopt). An error is fatal: --kubeconfig that cannot be loaded, or
// --k8s=on without a usable configuration.
std::expected<std::optional<netprobe::k8s::ClusterConfig>, std::string> kubernetesConfig(const AgentOptions& o) {
    using Mode = AgentOptions::K8sMode;
    if (o.k8s == Mode::Off) {
        spdlog::info("Kubernetes attribution off (--k8s=off)");
        return std::nullopt;
    }
    if (!o.kubeconfig.empty()) {
        auto c = netprobe::k8s::loadKubeconfig(o.kubeconfig);
        if (!c) return std::unexpected("--kubeconfig: " + std::string(c.error().what()));
        return std::optional(std::move(*c));
    }
    if (*envOr("KUBERNETES_SERVICE_HOST")) {
        auto c = netprobe::k8s::inClusterConfigFromEnv();
        if (c) return std::optional(std::move(*c));
        if (o.k8s == Mode::On) return std::unexpected("--k8s=on: in-cluster configuration: " + std::string(c.error().what()));
        spdlog::warn("Kubernetes attribution off: in-cluster configuration: {}", c.error().what());
        return std::nullopt;
    }
    if (o.k8s == Mode::On)
        return std::unexpected("--k8s=on but no Kubernetes configuration: give --kubeconfig=PATH or run in a pod "
                               "(KUBERNETES_SERVICE_HOST)");
    spdlog::info("Kubernetes attribution off: no --kubeconfig and not in a cluster (KUBERNETES_SERVICE_HOST unset)");
    return std::nullopt;
}

// Security configuration: defaults, then --security-config, then the flags.
std::expected<netprobe::analysis::security::SecurityConfig, std::string> securityConfig(const AgentOptions& o) {
    netprobe::analysis::security::SecurityConfig c;
    if (!o.security_config.empty()) {
        if (auto r = netprobe::analysis::security::loadSecurityConfig(o.security_config, c); !r)
            return std::unexpected("--security-config: " + r.error().what());
    }
    for (const auto& kv : o.security_set)
        if (auto r = netprobe::analysis::security::applySecuritySetting(kv, c); !r)
            return std::unexpected("--security-set " + kv + ": " + r.error().what());
    if (!o.security) c.enabled = false;
    if (!o.mitigate.empty()) c.mitigate = *netprobe::analysis::security::parseMitigationMode(o.mitigate);
    if (!c.enabled) c.mitigate = netprobe::analysis::security::MitigationMode::Off;
    return c;
}

bool wanted(const AgentOptions& o, const netprobe::ebpf::InterfaceInfo& i) {
    if (!o.interfaces.empty()) return std::find(o.interfaces.begin(), o.interfaces.end(), i.name) != o.interfaces.end();
    return i.up && !i.loopback;
}

class Agent {
public:
    explicit Agent(AgentOptions o) : opts_(std::move(o)) {}

    int run() {
        if (auto missing = netprobe::util::missingCapabilities(); !missing.empty()) {
            std::string list;
            for (const auto& c : missing) list += (list.empty() ? "" : ", ") + c;
            return fatal("missing capability " + list + " (run as root or grant " + list + ")");
        }
        // Kernel features: probed, one line for each one missing, exported.
        auto kernel = std::make_shared<netprobe::ebpf::KernelInfo>(netprobe::ebpf::probeKernel());
        for (const auto& f : kernel->features) {
            if (f.available) continue;
            if (f.required)
                return fatal("kernel " + kernel->release + " lacks " + f.name + " (Linux " + f.min_kernel +
                             "+), needed for " + f.used_for);
            spdlog::info("kernel {} lacks {} (Linux {}+): {}", kernel->release, f.name, f.min_kernel, f.without);
        }
        // Subscribe before listing, so no interface change in between is missed.
        auto watcher = netprobe::ebpf::LinkWatcher::open();
        if (!watcher) return fatal(watcher.error().what());
        auto ifaces = netprobe::ebpf::listInterfaces();
        if (!ifaces) return fatal(ifaces.error().what());
        for (const auto& name : opts_.interfaces) {
            bool found = std::any_of(ifaces->begin(), ifaces->end(), [&](const auto& i) { return i.name == name; });
            if (!found) return fatal("unknown interface \"" + name + "\"");
        }
        auto k8s_cfg = kubernetesConfig(opts_);
        if (!k8s_cfg) return fatal(k8s_cfg.error());
        // A bad web configuration stops the agent before it attaches anything.
        if (!opts_.web_config_file.empty()) {
            auto web = netprobe::http::loadWebConfig(opts_.web_config_file);
            if (!web) return fatal("--web-config-file: " + web.error().what());
            if (auto r = netprobe::http::checkWebConfig(*web); !r)
                return fatal("--web-config-file: " + opts_.web_config_file + ": " + r.error().what());
        }

        netprobe::ebpf::ManagerOptions mo;
        mo.xdp_mode = opts_.xdp_mode;
        mo.tc_mode = opts_.tc_mode;
        mo.flow_table_size = opts_.flow_table_size;
        mo.enable_decap = opts_.decap;
        mo.enable_handshakes = opts_.qos;
        mo.enable_udp_timing = opts_.qos && opts_.qos_udp_jitter;
        auto sec_cfg = securityConfig(opts_);
        if (!sec_cfg) return fatal(sec_cfg.error());
        mo.enable_security = sec_cfg->enabled;
        mo.mitigate = static_cast<np_mitigate_mode>(sec_cfg->mitigate);
        std::optional<netprobe::intel::IntelConfig> intel_cfg;
        if (!opts_.intel_config.empty()) {
            auto ic = netprobe::intel::loadIntelConfig(opts_.intel_config);
            if (!ic) return fatal(ic.error().what());
            intel_cfg = std::move(*ic);
            mo.enable_intel = true;
            // Domain indicators need the names of the traffic: from the L7 capture with
            // --l7=on, else from DNS answers and TLS ClientHellos captured at TC.
            const bool domain_feeds = std::ranges::any_of(intel_cfg->feeds, [](const auto& f) {
                using F = netprobe::intel::FeedFormat;
                return f.format == F::Hosts || f.format == F::Domains || f.format == F::Stix;
            });
            mo.enable_names = domain_feeds && !opts_.l7;
        }
        // With Kubernetes, the ClientHellos captured at TC also tell which conversations are TLS
        // (between two mesh sidecars: mTLS edges of the topology).
        if (*k8s_cfg) mo.enable_names = true;
        auto manager = netprobe::ebpf::Manager::create(mo);
        if (!manager) return fatal(manager.error().what());
        auto& mgr = **manager;

        // Slow work (reconciliation, cgroup walks, veth listings, symbol names) runs
        // here, on its own cadence; reads never do it.
        auto background = std::make_shared<netprobe::util::Scheduler>();
        // Freed heap pages go back to the system on the background cadence: glibc keeps
        // the free pages inside each thread's arena until then, so VmRSS only ever grew
        // after a burst (interface churn: +1.7 MiB of VmRSS per 200 veths created and
        // deleted while the live heap grew by 0.5 MiB). Its run time is the task's
        // netprobe_background_task_duration_seconds.
        background->every("memory: release free heap pages", std::chrono::seconds(30), [] { malloc_trim(0); });

        netprobe::collector::CollectorOptions co;
        co.interval = opts_.collect_interval;
        co.max_flows = opts_.max_flows;
        co.flow_idle_timeout = opts_.flow_timeout;
        netprobe::collector::TCCollector collector(mgr, co);

        // The kernel's netstat counters of this namespace (listen overflows for the diagnosis).
        collector.addSource(std::make_shared<netprobe::collector::NetstatSource>());
        // Link speeds and qdisc statistics (netlink dumps every 5 s in the background) and the
        // conntrack table of this namespace, for the bottleneck findings.
        auto link_source = std::make_shared<netprobe::collector::LinkSource>(opts_.link_speeds);
        link_source->schedule(*background);
        collector.addSource(link_source);
        collector.addSource(std::make_shared<netprobe::collector::ConntrackSource>());
        // The devices' own error and drop counters, every collection (interface-errors diagnosis).
        collector.addSource(std::make_shared<netprobe::collector::LinkCountersSource>());

        // The stack monitor is optional: if it cannot start, the core keeps working.
        std::unique_ptr<netprobe::ebpf::StackMonitor> stack;
        if (opts_.socket_monitor) {
            netprobe::ebpf::StackMonitorOptions so;
            so.netns_path = opts_.socket_netns;
            so.netfilter_hooks = opts_.netfilter_hooks;
            so.drop_flow_read_interval = opts_.collect_interval;
            auto sm = netprobe::ebpf::StackMonitor::create(so, background.get());
            if (sm) {
                stack = std::move(*sm);
                collector.addSource(std::make_shared<netprobe::collector::StackSource>(*stack));
            } else {
                spdlog::error("socket monitor disabled, continuing without it: {}", sm.error().what());
            }
        } else {
            spdlog::info("socket monitor off (--socket-monitor=off)");
        }

        // Application-layer capture: optional; without it the rest keeps working.
        bool l7_on = false;
        if (opts_.l7) {
            netprobe::collector::L7Source::Options lo;
            lo.capture.ring_bytes = opts_.l7_ring_bytes;
            lo.capture.max_connections = static_cast<std::uint32_t>(std::min<std::size_t>(opts_.l7_max_connections * 2, 1u << 22));
            lo.tracker.max_connections = opts_.l7_max_connections;
            lo.capture.tls = opts_.l7_tls;
            lo.capture.tls_probes = opts_.l7_tls_exported ? netprobe::ebpf::TlsProbeMode::Exported
                                                          : netprobe::ebpf::TlsProbeMode::Auto;
            auto src = netprobe::collector::L7Source::create(lo, background.get());
            if (src) {
                collector.addSource(std::shared_ptr<netprobe::collector::L7Source>(std::move(*src)));
                l7_on = true;
                spdlog::info("L7 capture on (HTTP/1.x, HTTP/2, gRPC, DNS, Redis, PostgreSQL, MySQL, Kafka, AMQP{}; ring {} bytes)", opts_.l7_tls ? ", TLS plaintext of OpenSSL" : "",
                             opts_.l7_ring_bytes);
            } else {
                spdlog::error("L7 capture disabled, continuing without it: {}", src.error().what());
            }
        }

        // Name capture at TC (domain indicators without --l7): a source of its own.
        bool names_on = false;
        if (mo.enable_names) {
            auto src = netprobe::collector::NameSource::create(mgr);
            if (src) {
                collector.addSource(std::shared_ptr<netprobe::collector::NameSource>(std::move(*src)));
                names_on = true;
                spdlog::info("name capture on: DNS answers (UDP port 53) and TLS ClientHello server names at TC{}",
                             *k8s_cfg ? " (TLS conversations: mesh mTLS)" : "");
            } else {
                spdlog::error("name capture disabled, domain indicators are not matched: {}", src.error().what());
            }
        }

        // Per-cgroup traffic (every protocol, per container): optional like the stack monitor;
        // without a cgroup v2 hierarchy or cgroup_skb links the agent continues without it.
        std::unique_ptr<netprobe::ebpf::CgroupTrafficMonitor> cgroup_traffic;
        netprobe::util::CgroupHierarchy hierarchy;  // an ancestor's mount, held open while attached
        if (opts_.cgroup_traffic) {
            netprobe::ebpf::CgroupTrafficOptions cto;
            if (auto h = netprobe::util::findCgroupHierarchy()) {
                hierarchy = std::move(*h);
                cto.cgroup_root = hierarchy.path;
            }
            netprobe::util::QuietLibbpf quiet;  // the one line below says why
            auto cm = netprobe::ebpf::CgroupTrafficMonitor::create(cto, background.get());
            if (cm) {
                cgroup_traffic = std::move(*cm);
                collector.addSource(std::make_shared<netprobe::collector::CgroupTrafficSource>(*cgroup_traffic));
            } else {
                spdlog::warn("per-cgroup traffic disabled, continuing without it: {}", cm.error().what());
            }
        } else {
            spdlog::info("per-cgroup traffic off (--cgroup-traffic=off)");
        }

        // Packet path tracing: off until an API request queues a trace; the trace source
        // arms it (datapath XDP/TC, and with the stack monitor netfilter, drops, sockets).
        std::shared_ptr<netprobe::collector::TraceQueue> trace_queue;
        {
            std::vector<netprobe::ebpf::TraceMaps> objs;
            auto dm = netprobe::ebpf::datapathTraceMaps([&](netprobe::ebpf::DatapathMap w) { return mgr.mapFd(w); });
            std::function<netprobe::Result<void>(bool)> hooks;
            std::function<std::size_t()> links;
            std::vector<std::string> reasons;
            if (dm) objs.push_back(std::move(*dm));
            else spdlog::warn("packet path tracing: datapath maps: {}", dm.error().what());
            if (stack) {
                if (auto sm = stack->traceMaps()) objs.push_back(std::move(*sm));
                else spdlog::warn("packet path tracing: stack monitor maps: {}", sm.error().what());
                auto* st = stack.get();
                hooks = [st](bool on) { return st->setTraceHooks(on); };
                links = [st] { return st->traceLinks(); };
                if (auto n = netprobe::ebpf::dropReasonNamesFromKernelBtf()) reasons = std::move(*n);
            }
            if (!objs.empty()) {
                auto tracer = std::make_shared<netprobe::ebpf::PacketTracer>(std::move(objs), std::move(hooks));
                trace_queue = std::make_shared<netprobe::collector::TraceQueue>();
                collector.addSource(std::make_shared<netprobe::collector::TraceSource>(tracer, trace_queue, std::move(reasons),
                                                                                       std::move(links)));
            }
        }

        auto cfg = netprobe::metrics::DefaultServerConfig();
        cfg.trace = trace_queue;
        cfg.port = opts_.metrics_port;
        cfg.address = opts_.metrics_address;
        cfg.talkers.selector.k = opts_.top_talkers;
        cfg.talkers.selector.hold = opts_.top_talkers_hold;
        cfg.container_metrics.enabled = opts_.container_metrics;
        cfg.container_metrics.limit = opts_.container_metrics_limit;
        cfg.scheduler = background;
        cfg.kernel = kernel;
        cfg.web_config_file = opts_.web_config_file;
        using Api = netprobe::metrics::ServerConfig::Api;
        cfg.api = opts_.api == AgentOptions::ApiMode::Off        ? Api::Off
                  : opts_.api == AgentOptions::ApiMode::Separate ? Api::Separate
                                                                 : Api::Same;
        cfg.api_address = opts_.api_address;
        cfg.api_port = opts_.api_port;
        cfg.http.max_connections = opts_.http_max_connections;
        cfg.http.head_timeout = opts_.http_header_timeout;
        cfg.http.handshake_timeout = opts_.http_header_timeout;
        cfg.http.idle_timeout = opts_.http_idle_timeout;
        cfg.http.write_timeout = opts_.http_write_timeout;

        // Kubernetes: the client lists and watches on its own threads; start() returns at
        // once, and nothing (readiness included) waits for it.
        std::shared_ptr<netprobe::k8s::Client> k8s;
        netprobe::k8s::HostAttributionOptions hao;
        hao.scheduler = background.get();
        if (*k8s_cfg) {
            netprobe::k8s::ClientOptions ko;
            const std::string api = (*k8s_cfg)->scheme + "://" + (*k8s_cfg)->host + ":" + std::to_string((*k8s_cfg)->port);
            ko.cluster = std::move(**k8s_cfg);
            ko.node_name = envOr("NODE_NAME");
            ko.watch_network_policies = opts_.k8s_policies;
            k8s = std::make_shared<netprobe::k8s::Client>(std::move(ko));
            k8s->start();
            cfg.attribution = std::make_shared<netprobe::k8s::ClientAttribution>(k8s, envOr("NODE_NAME"), hao);
            cfg.pod_metrics.enabled = opts_.pod_metrics;
            cfg.pod_metrics.limit = opts_.pod_metrics_limit;
            cfg.workload_metrics.enabled = opts_.workload_metrics;
            cfg.workload_metrics.limit = opts_.workload_metrics_limit;
            const std::string node = envOr("NODE_NAME");
            spdlog::info("Kubernetes attribution on: API {}, {}", api,
                         node.empty() ? std::string("all pods (NODE_NAME unset)") : "pods of node " + node);
        } else {
            // Without Kubernetes: containers by cgroup, network namespaces by veth.
            cfg.attribution = std::make_shared<netprobe::k8s::HostAttribution>(hao);
        }

        // The main pipeline: flow accounting, then pods/workloads/containers, then the
        // top talkers (the sticky top-K of netprobe_top_talker_*).
        auto pipeline = std::make_shared<netprobe::analysis::Pipeline>(collector);
        pipeline->addStage(std::make_unique<netprobe::analysis::FlowAccounting>(
            netprobe::analysis::FlowAccountingOptions{opts_.max_flows, opts_.flow_timeout}));
        netprobe::analysis::GroupingOptions go;
        go.workloads = opts_.workload_metrics;
        pipeline->addStage(std::make_unique<netprobe::analysis::Grouping>(cfg.attribution, go));
        pipeline->addStage(std::make_unique<netprobe::analysis::TopTalkers>(cfg.talkers));
        // This node's subnets (interface addresses and routes: segments "subnet:<cidr>"),
        // dumped over netlink every 10 s in the background, read by the topology at each run.
        netprobe::analysis::TopologyOptions topo_opts;
        {
            auto subnets = std::make_shared<std::atomic<std::shared_ptr<const netprobe::analysis::LocalSubnets>>>();
            auto refresh = [subnets] {
                auto prefixes = netprobe::ebpf::dumpPrefixes();
                if (!prefixes) {
                    spdlog::debug("topology: local subnets: {}", prefixes.error().what());
                    return;
                }
                std::vector<netprobe::analysis::LocalSubnet> list;
                for (const auto& p : *prefixes)
                    if (auto s = netprobe::analysis::localSubnet(p.addr, p.len)) list.push_back(std::move(*s));
                subnets->store(std::make_shared<const netprobe::analysis::LocalSubnets>(
                    netprobe::analysis::normalizeSubnets(std::move(list))));
            };
            refresh();
            background->every("topology: local subnets", std::chrono::seconds(10), refresh);
            topo_opts.subnets = [subnets] { return subnets->load(); };
        }
        if (!opts_.topology_groups.empty())
            topo_opts.groups = std::make_shared<const netprobe::analysis::CidrGroups>(opts_.topology_groups);
        pipeline->addStage(std::make_unique<netprobe::analysis::Topology>(topo_opts, cfg.attribution));
        if (opts_.qos) pipeline->addStage(std::make_unique<netprobe::analysis::Qos>());
        // Bottlenecks and hotspots (/api/v1/bottlenecks): links, qdiscs, accept queues,
        // conntrack, edges; after the topology and QoS views it reads.
        pipeline->addStage(std::make_unique<netprobe::analysis::Bottlenecks>());
        // History, forecasts, anomalies: the Series stage closes fixed intervals; the store
        // keeps them (its own writer thread), the models learn from them and start from what
        // the store kept of a previous run.
        std::shared_ptr<netprobe::history::Writer> history;
        if (opts_.history) history = netprobe::agent::openHistory(opts_);
        cfg.history = history;
        // This node's name in flow records and history rows: NODE_NAME (the DaemonSet sets
        // it from spec.nodeName), else the host name.
        const std::string node_name = [] {
            std::string n = envOr("NODE_NAME");
            if (n.empty()) {
                char host[256] = {};
                if (gethostname(host, sizeof host - 1) == 0) n = host;
            }
            return n;
        }();
        cfg.node_name = node_name;
        if (opts_.history_source_clickhouse) {
            const auto& ch = opts_.clickhouse.front();
            netprobe::history::ClusterOptions co;
            co.endpoint = {ch.url, *envOr("NETPROBE_CLICKHOUSE_USER") ? envOr("NETPROBE_CLICKHOUSE_USER") : "default",
                           envOr("NETPROBE_CLICKHOUSE_PASSWORD"), std::chrono::seconds(1), std::chrono::seconds(5)};
            co.database = ch.database;
            cfg.cluster_history = std::make_shared<netprobe::history::ClusterHistory>(std::move(co));
            spdlog::info("history: /api/v1/history reads every node's series from ClickHouse {} database {} "
                         "(this node's store answers while it fails)", ch.url, ch.database);
        }
        // The topology's edges as counters for Prometheus (netprobe_topology_edge_*_total:
        // workloads with Kubernetes, else addresses), and the cluster view read back from it.
        std::shared_ptr<netprobe::analysis::EdgeCounters> edge_counters;
        if (opts_.topology_edge_series > 0) {
            netprobe::analysis::EdgeCounterOptions eo;
            eo.workloads = cfg.attribution && cfg.attribution->kubernetes();
            eo.series = opts_.topology_edge_series;
            edge_counters = std::make_shared<netprobe::analysis::EdgeCounters>(eo);
            cfg.edge_counters = edge_counters;
        }
        if (opts_.topology_source_prometheus) {
            netprobe::history::PrometheusOptions po;
            po.url = opts_.prometheus_url;
            po.user = envOr("NETPROBE_PROMETHEUS_USER");
            po.password = envOr("NETPROBE_PROMETHEUS_PASSWORD");
            po.bearer_token_file = opts_.prometheus_bearer_token_file;
            po.ca_file = opts_.prometheus_ca_file;
            cfg.prometheus_topology = std::make_shared<netprobe::history::PrometheusTopology>(std::move(po));
            spdlog::info("topology: /api/v1/topology?source=prometheus reads every agent's edge series from {} "
                         "(this node's graph answers while it fails)", opts_.prometheus_url);
        }
        {
            netprobe::analysis::SeriesOptions sro;
            sro.step = opts_.series_step;
            pipeline->addStage(std::make_unique<netprobe::analysis::Series>(sro));
        }
        const std::int64_t start_unix =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        if (opts_.forecast) {
            netprobe::analysis::forecast::StageOptions fo;
            fo.season = opts_.forecast_season;
            fo.capacity_threshold = opts_.capacity_threshold;
            std::map<std::string, std::vector<double>> past;
            // stored minutes are the models' points only when the models' step is a minute
            if (history && opts_.series_step == std::chrono::seconds(60)) {
                const auto span = std::min<std::chrono::seconds>(std::max<std::chrono::seconds>(3 * fo.season, std::chrono::days(1)),
                                                                 opts_.history_minutes);
                past = netprobe::agent::loadForecastHistory(history->store(), span, start_unix, fo.max_models);
                if (!past.empty()) spdlog::info("forecast: {} series warm-started from the history store", past.size());
            }
            pipeline->addStage(std::make_unique<netprobe::analysis::forecast::ForecastStage>(fo, std::move(past)));
        }
        // Cost: bytes by destination class per local workload, at the price table. The
        // node's addresses (interfaces, this node's pods) on the background cadence.
        {
            netprobe::analysis::CostOptions co;
            if (!opts_.cost_config.empty()) {
                std::ifstream in(opts_.cost_config);
                std::stringstream text;
                text << in.rdbuf();
                if (!in) return fatal("--cost-config " + opts_.cost_config + ": cannot read it");
                auto cc = netprobe::analysis::parseCostConfig(text.str());
                if (!cc) return fatal("--cost-config " + opts_.cost_config + ": " + cc.error());
                co.config = std::move(*cc);
            }
            auto addrs = std::make_shared<std::atomic<std::shared_ptr<const std::set<netprobe::util::Addr16>>>>();
            // With Kubernetes: the zones of the cluster's nodes (topology.kubernetes.io/zone),
            // republished only when they change (the stage re-merges on a new pointer).
            auto zones = std::make_shared<std::atomic<std::shared_ptr<const netprobe::analysis::ClusterZones>>>();
            auto refresh = [addrs, attribution = cfg.attribution] {
                auto set = std::make_shared<std::set<netprobe::util::Addr16>>(netprobe::agent::interfaceAddresses());
                if (attribution)
                    for (const auto& p : attribution->localPods())
                        if (!p.host_network) set->insert(p.ips.begin(), p.ips.end());
                addrs->store(std::move(set));
            };
            auto refresh_zones = [zones, attribution = cfg.attribution] {
                if (!attribution || !attribution->kubernetes()) return;
                auto z = netprobe::analysis::clusterZones(attribution->clusterNodes(), attribution->nodeName());
                const auto prev = zones->load();
                if (!prev || *prev != z) {
                    if (!prev || prev->node_zone != z.node_zone)
                        spdlog::info("cost: this node's zone {} ({} of {} nodes have a zone label)",
                                     z.node_zone.empty() ? "unknown" : z.node_zone, z.zoned_nodes, z.nodes);
                    zones->store(std::make_shared<const netprobe::analysis::ClusterZones>(std::move(z)));
                }
            };
            refresh();
            background->every("cost: local addresses", std::chrono::seconds(30), refresh);
            if (cfg.attribution && cfg.attribution->kubernetes())
                background->every("cost: cluster zones", std::chrono::seconds(5), refresh_zones);
            co.local_addresses = [addrs] { return addrs->load(); };
            co.cluster_zones = [zones] { return zones->load(); };
            pipeline->addStage(std::make_unique<netprobe::analysis::Cost>(std::move(co)));
        }
        if (opts_.anomaly) {
            std::map<std::string, std::string> state;
            if (history) state = netprobe::agent::loadAnomalyState(history->store());
            pipeline->addStage(std::make_unique<netprobe::analysis::anomaly::AnomalyStage>(
                netprobe::agent::anomalyOptions(opts_.anomaly_learning), std::move(state)));
        }
        // NetworkPolicy monitoring (with Kubernetes): the policy set is rebuilt in the background
        // when the watched objects change (debounced); the stage evaluates the topology's
        // conversations against the current one.
        if (k8s && opts_.k8s_policies) {
            auto publisher = std::make_shared<netprobe::k8s::PolicyPublisher>(k8s);
            background->every("k8s: NetworkPolicy set", std::chrono::milliseconds(250),
                              [publisher] { publisher->tick(std::chrono::steady_clock::now()); });
            netprobe::analysis::PolicyMonitorOptions pmo;
            pmo.policies = [publisher] { return publisher->current(); };
            pipeline->addStage(std::make_unique<netprobe::analysis::PolicyMonitor>(std::move(pmo)));
            spdlog::info("NetworkPolicy monitoring on (/api/v1/policies)");
        }

        // Flow export: records per flow and interval for the IPFIX collectors and the flow
        // log. The stage runs only when there is a sink to feed.
        std::vector<std::shared_ptr<netprobe::sinks::FlowSink>> flow_sinks;
        std::vector<std::shared_ptr<netprobe::sinks::ClickHouseSink>> clickhouse_sinks;  // also history series
        std::vector<netprobe::analysis::Pipeline::Subscription> flow_subs;
        if (!opts_.ipfix_collectors.empty() || !opts_.flow_log.empty() || !opts_.clickhouse.empty()) {
            const std::string& node = node_name;
            netprobe::analysis::FlowExportOptions fo;
            fo.active_timeout = opts_.flow_active_timeout;
            fo.idle_timeout = opts_.flow_idle_timeout;
            fo.max_flows = opts_.max_flows;
            fo.node = node;
            pipeline->addStage(std::make_unique<netprobe::analysis::FlowExport>(cfg.attribution, fo));
            for (auto c : opts_.ipfix_collectors) {
                c.encoder.node = node;
                spdlog::info("flow export: IPFIX to {} ({}, observation domain {})", c.target(),
                             c.encoder.biflow ? "biflows, RFC 5103" : "unidirectional records",
                             c.encoder.observation_domain);
                flow_sinks.push_back(netprobe::sinks::ipfix::IpfixExporter::start(std::move(c)));
            }
            if (!opts_.flow_log.empty()) {
                auto log = netprobe::sinks::FlowLog::start(
                    {opts_.flow_log, opts_.flow_log_max_bytes, opts_.flow_log_max_files, 100000}, node);
                if (!log) return fatal(log.error().what());
                spdlog::info("flow export: JSON lines to {}", opts_.flow_log);
                flow_sinks.push_back(std::move(*log));
            }
            for (std::size_t i = 0; i < opts_.clickhouse.size(); ++i) {
                auto c = opts_.clickhouse[i];
                c.node = node;
                c.spool_dir = opts_.state_dir + "/spool/clickhouse" + (i ? "-" + std::to_string(i) : std::string());
                c.user = *envOr("NETPROBE_CLICKHOUSE_USER") ? envOr("NETPROBE_CLICKHOUSE_USER") : "default";
                c.password = envOr("NETPROBE_CLICKHOUSE_PASSWORD");
                auto sink = netprobe::sinks::ClickHouseSink::start(c);
                if (!sink) return fatal(sink.error().what());
                spdlog::info("flow export: ClickHouse {} database {} (spool {}{})", c.url, c.database, c.spool_dir,
                             c.series ? ", history series too" : "");
                std::shared_ptr<netprobe::sinks::ClickHouseSink> shared = std::move(*sink);
                clickhouse_sinks.push_back(shared);
                flow_sinks.push_back(std::move(shared));
            }
            for (const auto& sink : flow_sinks)
                flow_subs.push_back(pipeline->subscribe([s = sink.get()](const auto& v) {
                    if (v->exports) s->offer(*v->exports);
                }));
            cfg.flow_sinks.assign(flow_sinks.begin(), flow_sinks.end());
        }

        // Security analytics: a pipeline of its own on the security tick, fed by the
        // datapath's ring and host counters; sinks: the mitigator and the events log.
        std::unique_ptr<netprobe::collector::Collector> sec_collector;
        std::shared_ptr<netprobe::analysis::Pipeline> sec_pipeline;
        // cfg was made first, so it goes last, holding the security pipeline (and the
        // mitigator) past sec_collector, which that pipeline subscribes to: its
        // subscription then locked a freed mutex at exit ("terminate called ...
        // std::system_error: Invalid argument" in CI; every run with glibc's tcache off and
        // MALLOC_PERTURB_ set). This guard, made after them, lets go of cfg's references
        // before they are destroyed, on every return.
        struct ReleaseConfig {
            netprobe::metrics::ServerConfig& c;
            ~ReleaseConfig() { c = netprobe::metrics::ServerConfig{}; }
        } release_config{cfg};
        std::shared_ptr<netprobe::ebpf::Mitigator> mitigator;
        std::unique_ptr<netprobe::metrics::EventLog> events_log;
        std::unique_ptr<netprobe::ebpf::IntelMaps> intel_maps;
        std::shared_ptr<netprobe::collector::IntelSource> intel_source;
        std::unique_ptr<netprobe::intel::FeedLoader> intel_loader;
        netprobe::util::Scheduler intel_scheduler;
        std::vector<netprobe::analysis::Pipeline::Subscription> sinks;
        // The history sink: each closed interval's points to the store's writer (a queue,
        // never blocking); the anomaly models' state on the background cadence and at exit.
        std::shared_ptr<const std::map<std::string, std::string>> saved_state;
        auto save_state = [&history, &pipeline, &saved_state] {
            const auto v = pipeline->latest();
            if (!history || !v->anomaly || !v->anomaly->state || v->anomaly->state == saved_state) return;
            saved_state = v->anomaly->state;
            netprobe::agent::saveAnomalyState(history->store(), *saved_state);
        };
        if (history || !clickhouse_sinks.empty()) {
            // (subscribers are called through copies: the last interval written is shared state)
            // Each closed interval's points: the local store, and every ClickHouse sink
            // (series=on) for the cluster-wide history (--history-source=clickhouse).
            auto last = std::make_shared<std::atomic<std::uint64_t>>(0);
            sinks.push_back(pipeline->subscribe([w = history, ch = clickhouse_sinks, last](const auto& v) {
                if (!v->series || v->series->intervals == last->load()) return;
                last->store(v->series->intervals);
                auto points = netprobe::agent::pointsOf(*v->series);
                for (const auto& s : ch) s->offerSeries(points);
                if (w) w->push(std::move(points));
            }));
        }
        if (history) {
            // Topology frames (GET /api/v1/topology?at=): each complete slot of the
            // conversations' figures, once, as per-minute series (metrics/topology_history.hpp).
            auto frames = std::make_shared<netprobe::metrics::TopologyFrames>();
            sinks.push_back(pipeline->subscribe([w = history, frames](const auto& v) {
                if (!v->topology || !v->snapshot) return;
                if (auto points = frames->take(*v->topology, v->snapshot->taken_at); !points.empty())
                    w->push(std::move(points));
            }));
        }
        if (edge_counters)
            sinks.push_back(pipeline->subscribe([edge_counters](const auto& v) {
                if (v->topology) edge_counters->update(*v->topology, std::chrono::steady_clock::now());
            }));
        if (history) background->every("history: anomaly model state", std::chrono::seconds(60), save_state);
        if (sec_cfg->enabled) {
            auto source = netprobe::collector::SecuritySource::create(mgr);
            if (!source) return fatal(source.error().what());
            sec_collector = std::make_unique<netprobe::collector::Collector>("security", sec_cfg->tick);
            sec_collector->addSource(std::move(*source));
            if (intel_cfg) {
                auto maps = netprobe::ebpf::IntelMaps::create(mgr);
                if (!maps) return fatal(maps.error().what());
                intel_maps = std::move(*maps);
                intel_source = std::make_shared<netprobe::collector::IntelSource>(*intel_maps);
                sec_collector->addSource(intel_source);
                intel_loader = std::make_unique<netprobe::intel::FeedLoader>(*intel_cfg, opts_.state_dir + "/intel");
            }
            sec_pipeline = std::make_shared<netprobe::analysis::Pipeline>(*sec_collector);
            netprobe::analysis::security::SecurityStage::Options so;
            so.config = *sec_cfg;
            so.flows = [main = pipeline.get()] { return main->latest()->flows; };
            so.domains = [main = pipeline.get()] { return main->latest()->domains; };
            so.policy = [main = pipeline.get()] { return main->latest()->policy; };
            sec_pipeline->addStage(std::make_unique<netprobe::analysis::security::SecurityStage>(std::move(so)));
            auto log = netprobe::metrics::EventLog::open(opts_.events_log);
            if (!log) return fatal(log.error().what());
            events_log = std::move(*log);
            sinks.push_back(sec_pipeline->subscribe([log = events_log.get()](const auto& v) { log->write(*v); }));
            if (sec_cfg->mitigate != netprobe::analysis::security::MitigationMode::Off) {
                auto m = netprobe::ebpf::Mitigator::create(mgr);
                if (!m) return fatal(m.error().what());
                mitigator = std::move(*m);
                sinks.push_back(sec_pipeline->subscribe([m = mitigator.get()](const auto& v) {
                    if (!v->security) return;
                    std::vector<netprobe::ebpf::BlockRequest> want;
                    for (const auto& b : v->security->blocklist) want.push_back({b.cidr.addr, b.cidr.prefix, b.event_id});
                    (void)m->apply(want);  // failures are in its status, logged once, retried next time
                }));
            }
            cfg.security = sec_pipeline;
            cfg.mitigator = mitigator;
            spdlog::info("security analytics on: mitigation {}{}",
                         netprobe::analysis::security::toString(sec_cfg->mitigate),
                         opts_.events_log.empty() ? std::string() : ", events log " + opts_.events_log);
        } else {
            spdlog::info("security analytics off");
        }

        if (l7_on) {
            pipeline->addStage(std::make_unique<netprobe::analysis::l7::L7Stage>(netprobe::analysis::l7::L7Options{},
                                                                                 cfg.attribution));
        }
        // Domain indicators: matched on the DNS the L7 source parses (or the names captured
        // at TC); the addresses the answers give become temporary IP indicators in the
        // kernel (intel_resolved).
        if (intel_source && (l7_on || names_on)) {
            netprobe::analysis::domains::DomainIntelOptions dio;
            dio.resolved = intel_cfg->resolved;
            dio.indicators = [sec = sec_pipeline.get()]() -> std::shared_ptr<const netprobe::intel::IndicatorSet> {
                auto v = sec->latest();
                return v && v->snapshot && v->snapshot->intel ? v->snapshot->intel->set : nullptr;
            };
            pipeline->addStage(std::make_unique<netprobe::analysis::domains::DomainIntel>(std::move(dio)));
            sinks.push_back(pipeline->subscribe([maps = intel_maps.get(), last = std::uint64_t{0},
                                                 warned = false](const auto& v) mutable {
                if (!v->domains || v->domains->resolved_generation == last) return;
                std::vector<netprobe::ebpf::IntelResolvedEntry> want;
                want.reserve(v->domains->resolved.size());
                for (const auto& r : v->domains->resolved)
                    want.push_back({r.addr, np_intel_value{r.feed_index,
                                                           static_cast<__u8>(r.block ? NP_INTEL_BLOCK : NP_INTEL_ALERT),
                                                           r.confidence, 0}});
                const auto a = maps->applyResolved(want);
                if (a.failed == 0) last = v->domains->resolved_generation;  // else retried with the next view
                if (a.failed && !warned) {
                    spdlog::warn("intel: {} resolved address(es) not written to the kernel (retried)", a.failed);
                    warned = true;
                }
                spdlog::debug("intel: resolved addresses in the kernel: {} (+{} -{} ~{}), generation {}", a.entries,
                              a.added, a.removed, a.updated, a.generation);
            }));
        } else if (intel_source) {
            spdlog::info("intel: domain indicators are not matched (neither the L7 capture nor name capture runs)");
        }

        // Automatic response (--respond, with Kubernetes and security analytics): the stage
        // plans NetworkPolicies for the security events that involve this node's pods and
        // verifies them from the policy stage's view; the applier (its own thread) logs them
        // (dry-run) or makes them exist through the API (on).
        std::shared_ptr<netprobe::k8s::ResponseApplier> responder;
        if (opts_.respond.mode != netprobe::analysis::respond::Mode::Off) {
            namespace respond = netprobe::analysis::respond;
            if (!k8s) return fatal("--respond needs Kubernetes (--kubeconfig, or in-cluster with KUBERNETES_SERVICE_HOST)");
            if (!sec_pipeline) return fatal("--respond needs security analytics (--security=on)");
            respond::ResponseStageOptions ro;
            ro.config = opts_.respond;
            ro.config.node = envOr("NODE_NAME");
            ro.security = [sec = sec_pipeline.get()] { return sec->latest()->security; };
            auto toRef = [](const netprobe::k8s::PodInfo& p, bool local) {
                return respond::PodRef{p.ns, p.name, p.node, p.labels, p.ips, local};
            };
            ro.pods = [k8s, toRef](const netprobe::util::Addr16& a) -> std::optional<respond::PodRef> {
                if (auto p = k8s->podByIp(a)) return toRef(*p, true);
                if (const auto* remote = k8s->remotePods())
                    if (auto p = remote->byIp(a)) return toRef(*p, false);
                return std::nullopt;
            };
            ro.selection = [k8s](const std::string& ns, const std::map<std::string, std::string>& labels) {
                std::vector<std::string> out;
                auto add = [&](const std::vector<netprobe::k8s::PodInfo>& pods) {
                    for (const auto& p : pods) {
                        if (p.ns != ns || p.host_network) continue;
                        bool all = true;
                        for (const auto& [k, v] : labels) {
                            auto it = p.labels.find(k);
                            all = all && it != p.labels.end() && it->second == v;
                        }
                        if (all) out.push_back(p.ns + "/" + p.name);
                    }
                };
                add(k8s->pods().all());
                if (const auto* remote = k8s->remotePods()) add(remote->all());
                std::sort(out.begin(), out.end());
                return out;
            };
            netprobe::k8s::ResponseApplierOptions rao;
            rao.mode = opts_.respond.mode;
            rao.node = ro.config.node;
            responder = std::make_shared<netprobe::k8s::ResponseApplier>(
                k8s, rao, [main = pipeline.get()] { return main->latest()->responses; });
            ro.applier = [responder] { return responder->state(); };
            pipeline->addStage(std::make_unique<respond::ResponseStage>(std::move(ro)));
            std::string types;
            for (auto t : opts_.respond.events) types += (types.empty() ? "" : ",") + std::string(netprobe::analysis::security::toString(t));
            spdlog::info("automatic response {}: NetworkPolicies for {} events from severity {} (ttl {}, quarantine {}){}",
                         respond::toString(opts_.respond.mode), types,
                         netprobe::analysis::security::toString(opts_.respond.min_severity),
                         netprobe::util::formatDuration(opts_.respond.ttl), opts_.respond.quarantine ? "on" : "off",
                         opts_.k8s_policies ? "" : "; not verified: --k8s-policies=off");
        }

        // The CNI plugin, told by the node's links (a netlink dump at start, then every 30 s
        // on the background cadence; a scrape reads the last result).
        {
            using CniPtr = std::shared_ptr<const netprobe::analysis::CniInfo>;
            auto state = std::make_shared<std::atomic<CniPtr>>();
            auto refresh = [state] {
                auto links = netprobe::ebpf::dumpLinks();
                if (!links) return;
                auto ci = std::make_shared<const netprobe::analysis::CniInfo>(netprobe::analysis::detectCni(*links));
                const auto prev = state->load();
                if (prev && *prev == *ci) return;
                std::string links_told;
                for (const auto& e : ci->evidence) links_told += (links_told.empty() ? "; links " : ", ") + e;
                spdlog::info("CNI: {} (overlay {}{})", ci->name, ci->overlay, links_told);
                state->store(ci);
            };
            refresh();
            background->every("cni detection", std::chrono::seconds(30), refresh);
            cfg.cni = [state] { return state->load(); };
        }

        // Diagnosis: findings over the main snapshots' counters and the security view.
        {
            netprobe::analysis::DiagnosisOptions dop;
            if (sec_pipeline)
                dop.security = [sec = sec_pipeline.get()] { return sec->latest()->security; };
            pipeline->addStage(std::make_unique<netprobe::analysis::Diagnosis>(std::move(dop)));
        }

        // Listen first: while the interfaces are attached /healthz answers and /readyz
        // says 503 (a readiness probe sees "not ready", not "connection refused").
        netprobe::metrics::Server server(cfg);
        if (auto r = server.listen(pipeline); !r) return fatal(r.error().what());
        int attached = 0;
        for (const auto& i : *ifaces) {
            if (!wanted(opts_, i)) continue;
            if (auto r = mgr.attachNetworkMonitor(i.name); !r) {
                if (!opts_.interfaces.empty()) return fatal(r.error().what());
                spdlog::warn("{}", r.error().what());
                continue;
            }
            ++attached;
        }
        // Starts the collector (first collection now): ready from then on.
        if (auto r = server.start(pipeline); !r) return fatal(r.error().what());
        spdlog::info("netprobe-agent started: {} interface(s), collect interval {}, metrics on :{}", attached,
                     netprobe::util::formatDuration(opts_.collect_interval), server.port());
        if (sec_collector) sec_collector->start();
        // The web configuration follows its files (a rotated certificate, a Secret
        // update); SIGHUP reloads at once.
        std::optional<netprobe::util::Scheduler::TaskId> web_watch;
        if (!opts_.web_config_file.empty())
            web_watch = background->every("web config watch", std::chrono::seconds(5), [&server] {
                if (server.webConfigChanged()) reloadWebConfig(server, "changed on disk");
            });
        reload_ = [&server] { reloadWebConfig(server, "SIGHUP"); };
        // Threat-intel feeds: files read again when they change, urls fetched when due; each
        // new set becomes a new kernel trie (swapped in, no gap). A scheduler of its own: a
        // download may take seconds and must not delay the other background work.
        std::optional<netprobe::util::Scheduler::TaskId> intel_watch;
        if (intel_loader)
            intel_watch = intel_scheduler.every("intel feeds", std::chrono::seconds(5), [&] {
                auto set = intel_loader->refresh(std::chrono::system_clock::now());
                // the feeds' statuses are published once the set they describe is in the
                // kernel (a reader never sees a new feed count with the old set)
                if (!set) {
                    intel_source->statuses(intel_loader->statuses());
                    return;
                }
                auto r = intel_maps->install(set->kernelEntries());
                for (const auto& f : set->feeds())
                    if (!f.last_error.empty()) spdlog::warn("intel: feed {}: {}", f.name, f.last_error);
                if (r)
                    spdlog::info("intel: {} prefixes from {} feed(s) in the kernel in {:.3f} s ({}, generation {})",
                                 r->entries, set->feeds().size(), r->seconds, r->batched ? "batched" : "one by one",
                                 r->generation);
                else
                    spdlog::error("intel: the indicator set was not installed (the previous one stays): {}",
                                  r.error().what());
                intel_source->installed(std::move(set), r);
                intel_source->statuses(intel_loader->statuses());
            });
        background->start();
        if (intel_watch) intel_scheduler.start();
        if (responder) responder->start();

        int rc = loop(*watcher, mgr);
        reload_ = nullptr;
        if (web_watch) background->cancel(*web_watch);
        if (intel_watch) intel_scheduler.cancel(*intel_watch);
        intel_scheduler.stop();
        spdlog::info("shutting down: detaching from {} interface(s)", mgr.attachments().size());
        server.stop();  // stops the main collector too
        if (responder) responder->stop();
        if (!flow_sinks.empty() || history) {
            // The last interval's packets and every open flow go to the sinks; the anomaly
            // models' state as it is now goes to the history store.
            if (auto r = collector.collect(); !r) spdlog::warn("final collection: {}", r.error().what());
            pipeline->finish();
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            for (auto& sink : flow_sinks)
                sink->drain(std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::max(deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration::zero())));
            flow_subs.clear();
        }
        if (sec_collector) sec_collector->stop();
        background->stop();
        sinks.clear();
        if (history) {  // the models as they are now, and every queued point
            save_state();
            history->stop();
        }
        if (k8s) k8s->stop();
        mgr.detachAll();
        return rc;
    }

private:
    int loop(netprobe::ebpf::LinkWatcher& watcher, netprobe::ebpf::Manager& mgr) {
        for (;;) {
            signalfd_siginfo si{};
            ssize_t n = ::read(sigfd_, &si, sizeof si);
            if (n == sizeof si && si.ssi_signo == SIGHUP) {
                if (reload_) reload_();
                else spdlog::info("SIGHUP: nothing to reload (no --web-config-file)");
                continue;
            }
            if (n == sizeof si) {
                spdlog::info("received signal {}", strsignal(static_cast<int>(si.ssi_signo)));
                return 0;
            }
            auto events = watcher.poll(std::chrono::milliseconds(200));
            if (!events) {
                // Netlink overrun: resynchronise from a fresh listing.
                spdlog::warn("{}; rescanning interfaces", events.error().what());
                resync(mgr);
                continue;
            }
            for (const auto& ev : *events) handle(ev, mgr);
        }
    }

    void handle(const netprobe::ebpf::LinkEvent& ev, netprobe::ebpf::Manager& mgr) {
        using Kind = netprobe::ebpf::LinkEvent::Kind;
        if (ev.kind == Kind::Removed) {
            mgr.forgetInterface(ev.iface.index);
            return;
        }
        if (mgr.isAttached(ev.iface.index) || !wanted(opts_, ev.iface)) return;
        if (auto r = mgr.attachNetworkMonitor(ev.iface.name); !r) spdlog::warn("{}", r.error().what());
    }

    void resync(netprobe::ebpf::Manager& mgr) {
        auto ifaces = netprobe::ebpf::listInterfaces();
        if (!ifaces) {
            spdlog::warn("interface rescan failed: {} (retried at the next netlink event)", ifaces.error().what());
            return;
        }
        std::set<std::uint32_t> present;
        for (const auto& i : *ifaces) {
            present.insert(i.index);
            if (mgr.isAttached(i.index) || !wanted(opts_, i)) continue;
            if (auto r = mgr.attachNetworkMonitor(i.name); !r) spdlog::warn("{}", r.error().what());
        }
        for (const auto& a : mgr.attachments())
            if (!present.contains(a.ifindex)) mgr.forgetInterface(a.ifindex);
    }

    static void reloadWebConfig(netprobe::metrics::Server& server, const char* why) {
        if (auto r = server.reloadWebConfig(); !r)
            spdlog::error("web config reload ({}) failed, the previous configuration stays in use: {}", why,
                          r.error().what());
        else
            spdlog::info("web config reloaded ({})", why);
    }

public:
    int sigfd_ = -1;

private:
    AgentOptions opts_;
    std::function<void()> reload_;
};

}  // namespace

int main(int argc, char** argv) {
    std::set_terminate(terminateWithStack);
    auto parsed = netprobe::agent::parseOptions(argc, argv, std::getenv("NETWORK_INTERFACE"));
    if (!parsed.run) {
        std::fputs(parsed.output.c_str(), parsed.exit_code ? stderr : stdout);
        if (parsed.exit_code) std::fputc('\n', stderr);
        return parsed.exit_code;
    }
    // Every interval builds a few large buffers (the flow samples, the flow view) and
    // drops the previous ones. A fixed mmap threshold keeps them out of the heap, so
    // freeing them returns the memory at once (glibc's dynamic threshold would move them
    // into the heap after the first free, where they fragment and stay resident).
    if (parsed.options.doctor) {
        netprobe::util::setLogLevel("error");
        netprobe::util::routeLibbpfLogs();
        netprobe::util::QuietLibbpf quiet;  // absent qdiscs and the like are answers here
        netprobe::agent::DoctorOptions d;
        d.json = parsed.options.output_json;
        d.address = parsed.options.metrics_address;
        d.port = parsed.options.metrics_port;
        d.basic_auth = envOr("NETPROBE_DOCTOR_AUTH");
        return netprobe::agent::runDoctor(d);
    }
    ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
    netprobe::util::setLogLevel(parsed.options.log_level);
    netprobe::util::routeLibbpfLogs();

    // Signals are taken synchronously by the main loop; every thread created
    // after this inherits the blocked mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return fatal(std::string("signalfd: ") + std::strerror(errno));
    ::signal(SIGPIPE, SIG_IGN);

    Agent agent(std::move(parsed.options));
    agent.sigfd_ = sfd;
    int rc = agent.run();
    ::close(sfd);
    return rc;
}
