#include "options.hpp"

#include <CLI/CLI.hpp>
#include <net/if.h>

#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/history/prometheus.hpp>
#include <netprobe/util/duration.hpp>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <netprobe/util/parse.hpp>

#include <cctype>
#include <sstream>
#include <tuple>

namespace netprobe::agent {

namespace {

std::vector<std::string> splitList(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    std::istringstream in(s);
    while (std::getline(in, cur, ',')) {
        auto b = cur.find_first_not_of(" \t");
        auto e = cur.find_last_not_of(" \t");
        if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
    }
    return out;
}

std::string firstLine(const std::string& s) {
    auto n = s.find('\n');
    return n == std::string::npos ? s : s.substr(0, n);
}

}  // namespace

std::expected<std::pair<std::string, std::uint16_t>, std::string> parseHostPort(const std::string& s) {
    std::string host, port;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find("]:");
        if (close == std::string::npos) return std::unexpected("expected [IPV6]:PORT");
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        const auto colon = s.rfind(':');
        if (colon == std::string::npos || s.find(':') != colon) return std::unexpected("expected HOST:PORT or [IPV6]:PORT");
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    if (host.empty()) return std::unexpected("the address is empty");
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
        return std::unexpected("the port must be 1-65535");
    const long p = std::stol(port);
    if (p < 1 || p > 65535) return std::unexpected("the port must be 1-65535");
    return std::pair<std::string, std::uint16_t>{host, static_cast<std::uint16_t>(p)};
}

std::expected<std::map<std::string, std::uint32_t>, std::string> parseLinkSpeeds(const std::string& s) {
    std::map<std::string, std::uint32_t> out;
    for (const auto& item : splitList(s)) {
        const auto eq = item.find('=');
        if (eq == std::string::npos) return std::unexpected("'" + item + "': expected IF=RATE (eth0=10G)");
        const std::string name = item.substr(0, eq), rate = item.substr(eq + 1);
        if (name.empty() || name.size() >= IFNAMSIZ || name.find_first_of("/ \t") != std::string::npos)
            return std::unexpected("'" + name + "' is not an interface name");
        // the number, then k/M/G/T (decimal, bits/s) and an optional "bit"/"bps"
        std::size_t i = 0;
        while (i < rate.size() && (std::isdigit(static_cast<unsigned char>(rate[i])) || rate[i] == '.')) ++i;
        double v = 0;
        if (i == 0 || !util::parseNumber(std::string_view(rate).substr(0, i), v))
            return std::unexpected("'" + rate + "' is not a rate (100M, 2.5G, 10Gbit)");
        std::string unit = rate.substr(i);
        for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        double mult = 1;
        if (!unit.empty() && std::string_view("kmgt").find(unit[0]) != std::string_view::npos) {
            mult = unit[0] == 'k' ? 1e3 : unit[0] == 'm' ? 1e6 : unit[0] == 'g' ? 1e9 : 1e12;
            unit.erase(0, 1);
        }
        if (!unit.empty() && unit != "bit" && unit != "bps" && unit != "b/s")
            return std::unexpected("'" + rate + "': unknown unit (k, M, G or T bits/s)");
        const double mbps = v * mult / 1e6;
        if (!(mbps >= 1) || mbps > 4e9) return std::unexpected("'" + rate + "': must be 1M-4000T bits/s");
        if (!out.emplace(name, static_cast<std::uint32_t>(mbps + 0.5)).second)
            return std::unexpected("'" + name + "' given twice");
    }
    if (out.empty()) return std::unexpected("expected IF=RATE[,IF=RATE] (eth0=10G)");
    return out;
}

ParseOutcome parseOptions(int argc, const char* const* argv, const char* network_interface_env) {
    ParseOutcome out;
    AgentOptions& o = out.options;
    CLI::App app{"NetProbe agent: eBPF network observability with Prometheus metrics.", "netprobe-agent"};
    app.set_version_flag("--version", std::string("netprobe-agent ") + NETPROBE_AGENT_VERSION);
    app.get_formatter()->column_width(34);

    std::string interval = "5s", flow_timeout = "2m", filter, xdp = "auto", tc = "auto";
    // Parsed signed so that "-1" is an error, not a huge unsigned value.
    long long port = 8081, flow_table = o.flow_table_size, max_flows = static_cast<long long>(o.max_flows),
              top_talkers = static_cast<long long>(o.top_talkers), top_flows = top_talkers;
    app.add_option("--metrics-port", port, "Port of the metrics/API HTTP server")->capture_default_str();
    app.add_option("--metrics-address", o.metrics_address, "Address to listen on")->capture_default_str();
    app.add_option("--collect-interval", interval, "How often to read the BPF maps (Go duration: 500ms, 5s, 1m)")
        ->capture_default_str();
    app.add_option("--interface-filter", filter,
                   "Comma-separated interfaces to monitor (default: env NETWORK_INTERFACE, else every up, "
                   "non-loopback interface, followed as they come and go)");
    app.add_option("--xdp-mode", xdp, "XDP attachment: auto (native on physical devices whose driver has it, else TC only), native, generic, off")
        ->capture_default_str();
    app.add_option("--tc-mode", tc, "TC attachment: auto (tcx, else clsact), tcx, clsact")->capture_default_str();
    app.add_option("--flow-table-size", flow_table, "Kernel flow table entries (flows per collect interval)")
        ->capture_default_str();
    app.add_option("--max-flows", max_flows, "Flows kept by the agent (least recently seen evicted beyond)")
        ->capture_default_str();
    app.add_option("--flow-timeout", flow_timeout, "Forget flows idle for this long (Go duration)")
        ->capture_default_str();
    std::string talkers_hold = "5m";
    app.add_option("--top-talkers", top_talkers,
                   "Talkers (interface, direction, protocol, local/peer address, server port) exported as "
                   "netprobe_top_talker_* series (rest aggregated as other)")
        ->capture_default_str();
    app.add_option("--top-talkers-hold", talkers_hold,
                   "Least time a talker keeps its series once in the top-K (Go duration); bounds the series created "
                   "over time")
        ->capture_default_str();
    app.add_option("--top-flows", top_flows, "Old name of --top-talkers (the per-flow series are gone: flows are in "
                                             "/api/v1/flows)");
    app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error")->capture_default_str();
    std::string socket_monitor = "on", socket_netns = "all";
    app.add_option("--socket-monitor", socket_monitor,
                   "Socket layer, TCP health, drop reasons and netfilter hooks: on, off")
        ->capture_default_str();
    std::string netfilter_hooks = "input,forward,output";
    app.add_option("--netfilter-hooks", netfilter_hooks,
                   "Netfilter hooks counted (netprobe_netfilter_*): all, none, or a list of prerouting, input, "
                   "forward, output, postrouting; each hook is a program run per packet passing it")
        ->capture_default_str();
    app.add_option("--socket-netns", socket_netns,
                   "Network namespaces whose socket/drop events count: all, own (the agent's), or a namespace "
                   "file such as /run/netns/NAME")
        ->capture_default_str();

    std::string k8s = "auto", pod_metrics = "on";
    long long pod_limit = static_cast<long long>(o.pod_metrics_limit);
    app.add_option("--k8s", k8s,
                   "Kubernetes attribution: auto (--kubeconfig, else in-cluster when KUBERNETES_SERVICE_HOST is set, "
                   "else off), on (fail without a configuration), off")
        ->capture_default_str();
    app.add_option("--kubeconfig", o.kubeconfig,
                   "Kubeconfig file of the Kubernetes API (current-context); env NODE_NAME selects the local pods");
    app.add_option("--pod-metrics", pod_metrics, "netprobe_pod_* series (with Kubernetes): on, off")
        ->capture_default_str();
    app.add_option("--pod-metrics-limit", pod_limit, "Pods with their own netprobe_pod_* series (rest as pod=\"other\")")
        ->capture_default_str();
    std::string k8s_policies = "on";
    app.add_option("--k8s-policies", k8s_policies,
                   "NetworkPolicy monitoring (with Kubernetes): watch NetworkPolicies, Namespaces, Nodes and the other "
                   "nodes' pods, evaluate the observed traffic (netprobe_policy_*, /api/v1/policies): on, off")
        ->capture_default_str();
    std::string respond = "off", respond_ttl = "1h", respond_events = "port_scan,syn_flood,udp_flood,icmp_flood,threat_intel_match",
                respond_severity = "medium", respond_quarantine = "on";
    long long respond_max = static_cast<long long>(o.respond.max_policies);
    app.add_option("--respond", respond,
                   "Automatic response to security events through NetworkPolicies (with Kubernetes; "
                   "docs/respond.md): off, dry-run (show them in /api/v1/responses and the log), on (create them; "
                   "needs the RBAC of deploy/respond)")
        ->capture_default_str();
    app.add_option("--respond-ttl", respond_ttl, "How long a response lasts after its event was last seen")
        ->capture_default_str();
    app.add_option("--respond-events", respond_events, "Event types answered (comma-separated)")->capture_default_str();
    app.add_option("--respond-min-severity", respond_severity,
                   "Events answered from this severity up: low, medium, high, critical")
        ->capture_default_str();
    app.add_option("--respond-quarantine", respond_quarantine,
                   "Quarantine a pod of this node that attacks (all traffic denied but DNS): on, off")
        ->capture_default_str();
    app.add_option("--respond-max-policies", respond_max, "Response policies at once (more are refused)")
        ->capture_default_str();
    std::string workload_metrics = "on";
    long long workload_limit = static_cast<long long>(o.workload_metrics_limit);
    app.add_option("--workload-metrics", workload_metrics,
                   "netprobe_workload_traffic_* series (with Kubernetes): on, off")
        ->capture_default_str();
    app.add_option("--workload-metrics-limit", workload_limit,
                   "Workload pairs with their own netprobe_workload_traffic_* series (rest as \"other\")")
        ->capture_default_str();

    std::string l7 = "off", l7_ring = "8MiB", l7_tls = "on";
    app.add_option("--l7-tls", l7_tls,
                   "With --l7=on: plaintext of TLS connections from uprobes on OpenSSL's SSL_read/SSL_write in the "
                   "libssl of running processes: on, exported (probe the exported functions' entries only, not their "
                   "internal callees), off")
        ->capture_default_str();
    long long l7_conns = static_cast<long long>(o.l7_max_connections);
    app.add_option("--l7", l7,
                   "Application-layer requests (HTTP/1.x) from the syscalls of every process's TCP sockets "
                   "(raw syscall tracepoints): on, off")
        ->capture_default_str();
    app.add_option("--l7-ring-size", l7_ring, "Kernel ring of captured messages (a power of two: 4MiB, 16MiB)")
        ->capture_default_str();
    app.add_option("--l7-max-connections", l7_conns, "Connections with L7 parser state (beyond: counted, not parsed)")
        ->capture_default_str();

    std::string decap = "on";
    app.add_option("--decap", decap,
                   "Overlay decapsulation at TC: the packet a VXLAN, Geneve, IPIP, 6in4, IP6IP6, 4in6 or GRE packet "
                   "carries is accounted as a flow of its own, with its encapsulation (docs/cni.md): on, off")
        ->capture_default_str();
    std::string qos = "on";
    app.add_option("--qos", qos,
                   "Quality of service: TCP handshakes timed at TC (round trip, jitter) with the sockets' loss, "
                   "per edge (/api/v1/qos, netprobe_edge_*; docs/qos.md): on, off")
        ->capture_default_str();
    std::string qos_udp = "off";
    app.add_option("--qos-udp-jitter", qos_udp,
                   "With --qos: every UDP datagram timed at TC for its flow's interarrival jitter (RFC 3550; "
                   "/api/v1/flows udp_jitter, /api/v1/qos udp_flows); costs one map lookup per UDP packet: on, off")
        ->capture_default_str();
    std::string cgroup_traffic = "on", container_metrics = "on";
    long long container_limit = static_cast<long long>(o.container_metrics_limit);
    app.add_option("--cgroup-traffic", cgroup_traffic,
                   "Traffic of every protocol per cgroup/container (cgroup_skb programs on the cgroup v2 root): on, off")
        ->capture_default_str();
    app.add_option("--container-metrics", container_metrics, "netprobe_container_* series: on, off")
        ->capture_default_str();
    app.add_option("--container-metrics-limit", container_limit,
                   "Containers with their own netprobe_container_* series (rest as container_id=\"other\")")
        ->capture_default_str();

    std::string security = "on";
    app.add_option("--security", security, "Security analytics (port scans, floods, abnormal connections): on, off")
        ->capture_default_str();
    app.add_option("--security-config", o.security_config, "Security thresholds/allow-lists YAML file");
    app.add_option("--intel-config", o.intel_config,
                   "Threat-intel feeds YAML (docs/intel.md): IP indicators checked at TC (counted; block-action "
                   "feeds dropped with --mitigate=on), threat_intel_match events");
    app.add_option("--mitigate", o.mitigate,
                   "Blocklist fed by detections (XDP, else TC ingress): off, dry-run (count what would be dropped), on "
                   "(default: the config file's mitigation.mode, else off)");
    app.add_option("--events-log", o.events_log, "Append every security event as one JSON line to this file");
    app.add_option("--security-set", o.security_set,
                   "One security setting, as in the config file, over it (repeatable): "
                   "--security-set=scan.vertical_ports=50 --security-set=allow=[198.18.0.0/24]");

    std::string api = "same", header_timeout = "10s", idle_timeout = "2m", write_timeout = "30s";
    long long max_conns = static_cast<long long>(o.http_max_connections);
    app.add_option("--web-config-file", o.web_config_file,
                   "TLS, basic auth and response headers of the HTTP server, in the Prometheus exporter-toolkit "
                   "web config format (docs/security.md); reloaded on SIGHUP and when it or a file it names changes");
    app.add_option("--api-address", api,
                   "Where the JSON API (/api/v1/*: flows, connections with processes, containers, security events) "
                   "is served: same (the metrics listener), off, or HOST:PORT of a listener of its own")
        ->capture_default_str();
    app.add_option("--http-max-connections", max_conns,
                   "Open HTTP connections per listener; beyond it the longest-waiting idle one is closed")
        ->capture_default_str();
    app.add_option("--http-header-timeout", header_timeout,
                   "Time a client has to send a request head (from its first byte, or from the connection)")
        ->capture_default_str();
    app.add_option("--http-idle-timeout", idle_timeout, "Keep-alive connections idle this long are closed")
        ->capture_default_str();
    app.add_option("--http-write-timeout", write_timeout, "Time a response may take to be sent")->capture_default_str();

    std::vector<std::string> ipfix;
    app.add_option("--ipfix-collector", ipfix,
                   "Export flow records over IPFIX to HOST:PORT[,transport=udp|tcp][,biflow=on|off][,domain=N]"
                   "[,enterprise=N][,mtu=BYTES][,template-refresh=DURATION][,queue=RECORDS] (repeatable)");
    std::vector<std::string> clickhouse;
    app.add_option("--clickhouse", clickhouse,
                   "Insert flow records into ClickHouse: http[s]://HOST:PORT[,database=NAME][,batch=N][,flush=DURATION]"
                   "[,retention=DURATION][,retention-1m=DURATION][,retention-1h=DURATION][,spool-max=SIZE]"
                   "[,queue=N][,series=on|off] (series: the history series too; "
                   "credentials: env NETPROBE_CLICKHOUSE_USER, NETPROBE_CLICKHOUSE_PASSWORD)");
    std::string history_source = "local";
    app.add_option("--history-source", history_source,
                   "Where /api/v1/history reads: local (this node's store) or clickhouse (every node's series in the "
                   "first --clickhouse server; the local store answers while it fails)")
        ->capture_default_str();
    std::string topology_source = "local";
    app.add_option("--topology-source", topology_source,
                   "local, or prometheus: GET /api/v1/topology?source=prometheus answers for the whole cluster from the "
                   "agents' netprobe_topology_edge_* series in --prometheus-url (this node's graph while it fails); "
                   "requests without source= still get this node's view")
        ->capture_default_str();
    app.add_option("--prometheus-url", o.prometheus_url,
                   "Prometheus server of --topology-source=prometheus: http[s]://HOST:PORT[/PREFIX] (basic auth: env "
                   "NETPROBE_PROMETHEUS_USER, NETPROBE_PROMETHEUS_PASSWORD)");
    app.add_option("--prometheus-bearer-token-file", o.prometheus_bearer_token_file,
                   "File holding a bearer token sent to --prometheus-url (read at each query)");
    app.add_option("--prometheus-ca-file", o.prometheus_ca_file, "CA certificate(s) to verify an https --prometheus-url");
    app.add_option("--topology-edge-series", o.topology_edge_series,
                   "Topology edges exported as netprobe_topology_edge_*_total series (the busiest; the rest as "
                   "\"other\"); 0: none")
        ->capture_default_str();
    app.add_option("--topology-group", o.topology_group,
                   "A named group of remote addresses in the topology (repeatable): NAME=CIDR[,CIDR...]; an end in "
                   "it without a workload or DNS name is the node group:NAME, e.g. --topology-group=corp=10.0.0.0/8");
    app.add_option("--state-dir", o.state_dir,
                   "Directory for state that outlives the agent (the history store, the ClickHouse spool)")
        ->envname("NETPROBE_STATE_DIR")
        ->capture_default_str();
    std::string history = "on", history_minutes = "7d", history_hours = "90d", history_max = "1GiB";
    app.add_option("--history", history,
                   "The embedded history store (STATE_DIR/history/history.db, SQLite): per-minute aggregates of the "
                   "series the models use, hourly rollups (docs/history.md): on, off")
        ->capture_default_str();
    app.add_option("--history-retention", history_minutes, "Per-minute rows kept")->capture_default_str();
    app.add_option("--history-hour-retention", history_hours, "Hourly rows kept")->capture_default_str();
    app.add_option("--history-max-size", history_max, "Largest history database (oldest rows dropped beyond)")
        ->capture_default_str();
    std::string series_step = "60s";
    app.add_option("--series-step", series_step,
                   "Interval of the series the history, forecasts and anomaly models see (aligned to the clock)")
        ->capture_default_str();
    std::string forecast = "on", forecast_season = "24h";
    app.add_option("--forecast", forecast, "Bandwidth forecasts and capacity/fault lead times (docs/forecast.md): on, off")
        ->capture_default_str();
    app.add_option("--forecast-season", forecast_season, "Season of the forecast models (0: none)")->capture_default_str();
    app.add_option("--capacity-threshold", o.capacity_threshold,
                   "Share of a link's speed at which a capacity finding is due (0-1]")
        ->capture_default_str();
    std::string link_speed;
    app.add_option("--link-speed", link_speed,
                   "Capacity of links whose device reports none or a nominal one (veth, tun, cloud NICs): "
                   "IF=RATE[,IF=RATE] in bits/s (eth0=10G,veth1=100M); used for utilisation and capacity findings");
    app.add_option("--cost-config", o.cost_config,
                   "Price table and zones for /api/v1/cost (YAML: zone, zones [{cidr, zone}], prices {class: per GB}, "
                   "currency; docs/cost.md); without it, bytes by class at price 0");
    std::string anomaly = "on";
    app.add_option("--anomaly", anomaly, "Anomaly detection over the series and behaviour profiles (docs/anomaly.md): on, off")
        ->capture_default_str();
    long long anomaly_learning = static_cast<long long>(o.anomaly_learning);
    app.add_option("--anomaly-learning", anomaly_learning,
                   "Intervals (--series-step) a model learns before it judges (360 = 6 hours of minutes)")
        ->capture_default_str();
    app.add_option("--flow-log", o.flow_log, "Write every flow record as one JSON line to this file (rotated by size)");
    std::string flow_log_max = "100MiB";
    app.add_option("--flow-log-max-size", flow_log_max, "Rotate --flow-log beyond this size")->capture_default_str();
    long long flow_log_files = 5;
    app.add_option("--flow-log-max-files", flow_log_files, "Rotated --flow-log files kept (0: truncate instead)")
        ->capture_default_str();
    std::string active_timeout = "60s", idle_timeout_flows = "15s";
    app.add_option("--flow-active-timeout", active_timeout,
                   "Flow records: a long-lived flow reports its counts this often")->capture_default_str();
    app.add_option("--flow-idle-timeout", idle_timeout_flows,
                   "Flow records: a flow without packets this long has ended")->capture_default_str();

    std::string output = "text";
    app.add_flag("--doctor", o.doctor,
                 "Diagnose and exit: kernel features, NetProbe programs/links per interface (tcx included), map "
                 "fill, the running agent's health (at --metrics-address/--metrics-port; env "
                 "NETPROBE_DOCTOR_AUTH=user:password for basic auth). Exit 1 when a problem is found");
    app.add_option("--output", output, "With --doctor: text or json")->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        out.output = app.help();
        return out;
    } catch (const CLI::CallForVersion&) {
        out.output = app.version() + "\n";
        return out;
    } catch (const CLI::ParseError& e) {
        out.exit_code = 2;
        out.output = "netprobe-agent: " + firstLine(e.what()) + " (see --help)";
        return out;
    }

    auto fail = [&](const std::string& msg) {
        out.exit_code = 2;
        out.output = "netprobe-agent: " + msg;
        return out;
    };
    if (port < 1 || port > 65535) return fail("invalid --metrics-port " + std::to_string(port) + ": must be 1-65535");
    o.metrics_port = static_cast<std::uint16_t>(port);

    auto iv = util::parseDuration(interval);
    if (!iv) return fail("--collect-interval: " + iv.error());
    if (*iv < std::chrono::milliseconds(100))
        return fail("--collect-interval " + interval + " is too short: minimum 100ms");
    o.collect_interval = *iv;
    auto ft = util::parseDuration(flow_timeout);
    if (!ft) return fail("--flow-timeout: " + ft.error());
    o.flow_timeout = *ft;

    if (xdp == "auto") o.xdp_mode = ebpf::XdpMode::Auto;
    else if (xdp == "native") o.xdp_mode = ebpf::XdpMode::Native;
    else if (xdp == "generic") o.xdp_mode = ebpf::XdpMode::Generic;
    else if (xdp == "off") o.xdp_mode = ebpf::XdpMode::Off;
    else return fail("invalid --xdp-mode \"" + xdp + "\": expected auto, native, generic or off");
    if (tc == "auto") o.tc_mode = ebpf::TcMode::Auto;
    else if (tc == "tcx") o.tc_mode = ebpf::TcMode::Tcx;
    else if (tc == "clsact") o.tc_mode = ebpf::TcMode::Clsact;
    else return fail("invalid --tc-mode \"" + tc + "\": expected auto, tcx or clsact");

    if (flow_table < 1 || flow_table > (1 << 24))
        return fail("invalid --flow-table-size " + std::to_string(flow_table) + ": must be 1-16777216");
    o.flow_table_size = static_cast<std::uint32_t>(flow_table);
    if (max_flows < 1 || max_flows > 100'000'000)
        return fail("invalid --max-flows " + std::to_string(max_flows) + ": must be 1-100000000");
    o.max_flows = static_cast<std::size_t>(max_flows);
    if (app.count("--top-flows") > 0 && app.count("--top-talkers") > 0)
        return fail("--top-flows is the old name of --top-talkers: give only one of them");
    const bool old_name = app.count("--top-flows") > 0;
    const long long top = old_name ? top_flows : top_talkers;
    if (top < 0 || top > 1000)
        return fail(std::string("invalid ") + (old_name ? "--top-flows " : "--top-talkers ") + std::to_string(top) +
                    ": must be 0-1000");
    o.top_talkers = static_cast<std::size_t>(top);
    auto th = util::parseDuration(talkers_hold);
    if (!th) return fail("--top-talkers-hold: " + th.error());
    if (*th > std::chrono::hours(24)) return fail("--top-talkers-hold " + talkers_hold + " is too long: maximum 24h");
    o.top_talkers_hold = *th;
    if (socket_monitor == "on") o.socket_monitor = true;
    else if (socket_monitor == "off") o.socket_monitor = false;
    else return fail("invalid --socket-monitor \"" + socket_monitor + "\": expected on or off");
    if (auto h = netprobe::ebpf::parseNetfilterHooks(netfilter_hooks); h) o.netfilter_hooks = *h;
    else return fail("invalid --netfilter-hooks \"" + netfilter_hooks + "\": " + h.error().what());
    if (socket_netns == "all") o.socket_netns.clear();
    else if (socket_netns == "own") o.socket_netns = "/proc/self/ns/net";
    else if (!socket_netns.empty() && socket_netns[0] == '/') o.socket_netns = socket_netns;
    else return fail("invalid --socket-netns \"" + socket_netns + "\": expected all, own or a namespace file path");
    if (k8s == "auto") o.k8s = AgentOptions::K8sMode::Auto;
    else if (k8s == "on") o.k8s = AgentOptions::K8sMode::On;
    else if (k8s == "off") o.k8s = AgentOptions::K8sMode::Off;
    else return fail("invalid --k8s \"" + k8s + "\": expected auto, on or off");
    if (app.count("--kubeconfig") > 0 && o.kubeconfig.empty()) return fail("--kubeconfig is empty");
    if (pod_metrics == "on") o.pod_metrics = true;
    else if (pod_metrics == "off") o.pod_metrics = false;
    else return fail("invalid --pod-metrics \"" + pod_metrics + "\": expected on or off");
    if (pod_limit < 0 || pod_limit > 100000)
        return fail("invalid --pod-metrics-limit " + std::to_string(pod_limit) + ": must be 0-100000");
    o.pod_metrics_limit = static_cast<std::size_t>(pod_limit);
    if (k8s_policies == "on") o.k8s_policies = true;
    else if (k8s_policies == "off") o.k8s_policies = false;
    else return fail("invalid --k8s-policies \"" + k8s_policies + "\": expected on or off");
    if (respond == "off") o.respond.mode = analysis::respond::Mode::Off;
    else if (respond == "dry-run") o.respond.mode = analysis::respond::Mode::DryRun;
    else if (respond == "on") o.respond.mode = analysis::respond::Mode::On;
    else return fail("invalid --respond \"" + respond + "\": expected off, dry-run or on");
    {
        auto d = util::parseDuration(respond_ttl);
        if (!d) return fail("--respond-ttl: " + d.error());
        if (*d < std::chrono::seconds(1) || *d > std::chrono::days(30))
            return fail("--respond-ttl " + respond_ttl + ": must be 1s-30d");
        o.respond.ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    o.respond.events.clear();
    for (std::size_t pos = 0; pos <= respond_events.size();) {
        auto comma = respond_events.find(',', pos);
        if (comma == std::string::npos) comma = respond_events.size();
        std::string t = respond_events.substr(pos, comma - pos);
        pos = comma + 1;
        if (t.empty()) continue;
        auto e = analysis::security::parseEventType(t);
        if (!e) return fail("invalid --respond-events type \"" + t + "\": expected " + analysis::security::eventTypeNames());
        o.respond.events.push_back(*e);
    }
    if (o.respond.events.empty()) return fail("--respond-events: no event type");
    if (respond_severity == "low") o.respond.min_severity = analysis::security::Severity::Low;
    else if (respond_severity == "medium") o.respond.min_severity = analysis::security::Severity::Medium;
    else if (respond_severity == "high") o.respond.min_severity = analysis::security::Severity::High;
    else if (respond_severity == "critical") o.respond.min_severity = analysis::security::Severity::Critical;
    else return fail("invalid --respond-min-severity \"" + respond_severity + "\": expected low, medium, high or critical");
    if (respond_quarantine == "on") o.respond.quarantine = true;
    else if (respond_quarantine == "off") o.respond.quarantine = false;
    else return fail("invalid --respond-quarantine \"" + respond_quarantine + "\": expected on or off");
    if (respond_max < 1 || respond_max > 10000)
        return fail("invalid --respond-max-policies " + std::to_string(respond_max) + ": must be 1-10000");
    o.respond.max_policies = static_cast<std::size_t>(respond_max);
    if (workload_metrics == "on") o.workload_metrics = true;
    else if (workload_metrics == "off") o.workload_metrics = false;
    else return fail("invalid --workload-metrics \"" + workload_metrics + "\": expected on or off");
    if (workload_limit < 0 || workload_limit > 100000)
        return fail("invalid --workload-metrics-limit " + std::to_string(workload_limit) + ": must be 0-100000");
    o.workload_metrics_limit = static_cast<std::size_t>(workload_limit);
    if (l7_tls == "on") o.l7_tls = true;
    else if (l7_tls == "exported") o.l7_tls = true, o.l7_tls_exported = true;
    else if (l7_tls == "off") o.l7_tls = false;
    else return fail("invalid --l7-tls \"" + l7_tls + "\": expected on, exported or off");
    if (l7 == "on") o.l7 = true;
    else if (l7 == "off") o.l7 = false;
    else return fail("invalid --l7 \"" + l7 + "\": expected on or off");
    {
        auto n = util::parseByteSize(l7_ring);
        if (!n) return fail("invalid --l7-ring-size \"" + l7_ring + "\": " + n.error());
        if (*n < 4096 || *n > (1ull << 30) || (*n & (*n - 1)))
            return fail("invalid --l7-ring-size \"" + l7_ring + "\": must be a power of two from 4KiB to 1GiB");
        o.l7_ring_bytes = static_cast<std::uint32_t>(*n);
    }
    if (l7_conns < 1 || l7_conns > 10000000)
        return fail("invalid --l7-max-connections " + std::to_string(l7_conns) + ": must be 1-10000000");
    o.l7_max_connections = static_cast<std::size_t>(l7_conns);
    if (decap == "on") o.decap = true;
    else if (decap == "off") o.decap = false;
    else return fail("invalid --decap \"" + decap + "\": expected on or off");
    if (qos == "on") o.qos = true;
    else if (qos == "off") o.qos = false;
    else return fail("invalid --qos \"" + qos + "\": expected on or off");
    if (qos_udp == "on") o.qos_udp_jitter = true;
    else if (qos_udp == "off") o.qos_udp_jitter = false;
    else return fail("invalid --qos-udp-jitter \"" + qos_udp + "\": expected on or off");
    if (cgroup_traffic == "on") o.cgroup_traffic = true;
    else if (cgroup_traffic == "off") o.cgroup_traffic = false;
    else return fail("invalid --cgroup-traffic \"" + cgroup_traffic + "\": expected on or off");
    if (container_metrics == "on") o.container_metrics = true;
    else if (container_metrics == "off") o.container_metrics = false;
    else return fail("invalid --container-metrics \"" + container_metrics + "\": expected on or off");
    if (container_limit < 0 || container_limit > 100000)
        return fail("invalid --container-metrics-limit " + std::to_string(container_limit) + ": must be 0-100000");
    o.container_metrics_limit = static_cast<std::size_t>(container_limit);
    if (security == "on") o.security = true;
    else if (security == "off") o.security = false;
    else return fail("invalid --security \"" + security + "\": expected on or off");
    if (app.count("--mitigate") > 0 && o.mitigate != "off" && o.mitigate != "dry-run" && o.mitigate != "on")
        return fail("invalid --mitigate \"" + o.mitigate + "\": expected off, dry-run or on");
    if (app.count("--security-config") > 0 && o.security_config.empty()) return fail("--security-config is empty");
    if (app.count("--intel-config") > 0 && o.intel_config.empty()) return fail("--intel-config is empty");
    if (!o.intel_config.empty() && !o.security) return fail("--intel-config needs --security=on (its matches are security events)");
    if (app.count("--events-log") > 0 && o.events_log.empty()) return fail("--events-log is empty");
    for (const auto& kv : o.security_set) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0 || kv.find_first_not_of("abcdefghijklmnopqrstuvwxyz_.") < eq)
            return fail("invalid --security-set \"" + kv + "\": expected KEY=VALUE, e.g. scan.vertical_ports=50");
    }
    if (!o.security && (!o.mitigate.empty() && o.mitigate != "off"))
        return fail("--mitigate needs --security=on");
    if (app.count("--web-config-file") > 0 && o.web_config_file.empty()) return fail("--web-config-file is empty");
    if (api == "same") o.api = AgentOptions::ApiMode::Same;
    else if (api == "off") o.api = AgentOptions::ApiMode::Off;
    else if (auto hp = parseHostPort(api)) {
        o.api = AgentOptions::ApiMode::Separate;
        o.api_address = hp->first;
        o.api_port = hp->second;
    } else return fail("invalid --api-address \"" + api + "\": " + hp.error() + " (or same, off)");
    if (max_conns < 1 || max_conns > 65536)
        return fail("invalid --http-max-connections " + std::to_string(max_conns) + ": must be 1-65536");
    o.http_max_connections = static_cast<std::size_t>(max_conns);
    for (auto [flag, text, dst] : {std::tuple{"--http-header-timeout", &header_timeout, &o.http_header_timeout},
                                   std::tuple{"--http-idle-timeout", &idle_timeout, &o.http_idle_timeout},
                                   std::tuple{"--http-write-timeout", &write_timeout, &o.http_write_timeout}}) {
        auto d = util::parseDuration(*text);
        if (!d) return fail(std::string(flag) + ": " + d.error());
        if (*d < std::chrono::milliseconds(100) || *d > std::chrono::hours(24))
            return fail(std::string(flag) + " " + *text + ": must be 100ms-24h");
        *dst = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
    }
    for (const auto& spec : ipfix) {
        auto c = sinks::ipfix::parseCollector(spec);
        if (!c) return fail(c.error().what());
        o.ipfix_collectors.push_back(std::move(*c));
    }
    if (history_source != "local" && history_source != "clickhouse")
        return fail("--history-source " + history_source + ": expected local or clickhouse");
    o.history_source_clickhouse = history_source == "clickhouse";
    for (const auto& spec : clickhouse) {
        auto c = sinks::parseClickHouse(spec);
        if (!c) return fail(c.error().what());
        o.clickhouse.push_back(std::move(*c));
    }
    if (topology_source != "local" && topology_source != "prometheus")
        return fail("--topology-source " + topology_source + ": expected local or prometheus");
    o.topology_source_prometheus = topology_source == "prometheus";
    if (o.topology_source_prometheus && o.prometheus_url.empty())
        return fail("--topology-source=prometheus needs --prometheus-url");
    if (!o.prometheus_url.empty()) {
        if (auto r = history::checkPrometheusUrl(o.prometheus_url); !r) return fail(r.error().what());
    }
    for (auto [flag, f] : {std::pair{"--prometheus-bearer-token-file", &o.prometheus_bearer_token_file},
                           std::pair{"--prometheus-ca-file", &o.prometheus_ca_file}})
        if (!f->empty() && ::access(f->c_str(), R_OK) != 0)
            return fail(std::string(flag) + " " + *f + ": cannot read (" + std::strerror(errno) + ")");
    if (o.topology_edge_series > 100000) return fail("--topology-edge-series: at most 100000");
    if (o.topology_group.size() > 256) return fail("--topology-group: at most 256 groups");
    for (const auto& t : o.topology_group) {
        auto g = analysis::parseCidrGroup(t);
        if (!g) return fail("--topology-group " + t + ": " + g.error());
        if (std::ranges::any_of(o.topology_groups, [&](const auto& x) { return x.name == g->name; }))
            return fail("--topology-group " + t + ": group " + g->name + " given twice");
        o.topology_groups.push_back(std::move(*g));
    }
    if (o.history_source_clickhouse && o.clickhouse.empty())
        return fail("--history-source=clickhouse needs a --clickhouse server (its first one is read)");
    if (o.history_source_clickhouse && !o.clickhouse.front().series)
        return fail("--history-source=clickhouse reads the series the first --clickhouse writes: not with series=off");
    if (o.state_dir.empty() || o.state_dir.front() != '/') return fail("--state-dir must be an absolute path");
    for (auto [flag, text, on] : {std::tuple{"--history", &history, &o.history}, std::tuple{"--forecast", &forecast, &o.forecast},
                                  std::tuple{"--anomaly", &anomaly, &o.anomaly}}) {
        if (*text == "on") *on = true;
        else if (*text == "off") *on = false;
        else return fail("invalid " + std::string(flag) + " \"" + *text + "\": expected on or off");
    }
    for (auto [flag, text, dst, min] : {std::tuple{"--history-retention", &history_minutes, &o.history_minutes, 1},
                                        std::tuple{"--history-hour-retention", &history_hours, &o.history_hours, 1}}) {
        auto d = util::parseDuration(*text);
        if (!d) return fail(std::string(flag) + ": " + d.error());
        if (*d < std::chrono::hours(min) || *d > std::chrono::days(3650))
            return fail(std::string(flag) + " " + *text + ": must be 1h-3650d");
        *dst = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    if (auto hm = util::parseByteSize(history_max); !hm) return fail("--history-max-size: " + hm.error());
    else if (*hm < (1u << 20)) return fail("--history-max-size " + history_max + ": at least 1MiB");
    else o.history_max_bytes = *hm;
    if (auto d = util::parseDuration(series_step); !d) return fail("--series-step: " + d.error());
    else if (*d < std::chrono::seconds(1) || *d > std::chrono::hours(1) || *d % std::chrono::seconds(1) != std::chrono::seconds(0))
        return fail("--series-step " + series_step + ": must be whole seconds, 1s-1h");
    else o.series_step = std::chrono::duration_cast<std::chrono::seconds>(*d);
    if (auto d = util::parseDuration(forecast_season); !d) return fail("--forecast-season: " + d.error());
    else if (*d > std::chrono::days(28)) return fail("--forecast-season " + forecast_season + ": at most 28d");
    else o.forecast_season = std::chrono::duration_cast<std::chrono::seconds>(*d);
    if (app.count("--link-speed") > 0) {
        auto ls = parseLinkSpeeds(link_speed);
        if (!ls) return fail("--link-speed: " + ls.error());
        o.link_speeds = std::move(*ls);
    }
    if (app.count("--cost-config") > 0 && o.cost_config.empty()) return fail("--cost-config: empty path");
    if (!(o.capacity_threshold > 0 && o.capacity_threshold <= 1))
        return fail("invalid --capacity-threshold " + std::to_string(o.capacity_threshold) + ": must be in (0, 1]");
    if (anomaly_learning < 16 || anomaly_learning > 1000000)
        return fail("invalid --anomaly-learning " + std::to_string(anomaly_learning) + ": must be 16-1000000");
    o.anomaly_learning = static_cast<std::size_t>(anomaly_learning);
    auto fls = util::parseByteSize(flow_log_max);
    if (!fls) return fail("--flow-log-max-size: " + fls.error());
    if (*fls < 4096) return fail("--flow-log-max-size " + flow_log_max + ": at least 4096 bytes");
    o.flow_log_max_bytes = *fls;
    if (flow_log_files < 0 || flow_log_files > 1000)
        return fail("invalid --flow-log-max-files " + std::to_string(flow_log_files) + ": must be 0-1000");
    o.flow_log_max_files = static_cast<unsigned>(flow_log_files);
    if (app.count("--flow-log") > 0 && o.flow_log.empty()) return fail("--flow-log: empty path");
    for (auto [flag, text, dst] : {std::tuple{"--flow-active-timeout", &active_timeout, &o.flow_active_timeout},
                                   std::tuple{"--flow-idle-timeout", &idle_timeout_flows, &o.flow_idle_timeout}}) {
        auto d = util::parseDuration(*text);
        if (!d) return fail(std::string(flag) + ": " + d.error());
        if (*d < std::chrono::seconds(1) || *d > std::chrono::hours(24))
            return fail(std::string(flag) + " " + *text + ": must be 1s-24h");
        *dst = *d;
    }
    if (output == "json") o.output_json = true;
    else if (output != "text") return fail("invalid --output \"" + output + "\": expected text or json");
    if (app.count("--output") > 0 && !o.doctor) return fail("--output needs --doctor");
    static const char* levels[] = {"trace", "debug", "info", "warn", "error"};
    if (std::find(std::begin(levels), std::end(levels), o.log_level) == std::end(levels))
        return fail("invalid --log-level \"" + o.log_level + "\": expected trace, debug, info, warn or error");

    const bool from_flag = app.count("--interface-filter") > 0;
    std::string list = from_flag ? filter : (network_interface_env ? network_interface_env : "");
    o.interfaces = splitList(list);
    if (from_flag && o.interfaces.empty()) return fail("--interface-filter is empty");
    for (const auto& n : o.interfaces) {
        if (n.size() >= IF_NAMESIZE || n.find_first_of("/ \t:") != std::string::npos)
            return fail("invalid interface name \"" + n + "\"");
    }
    out.run = true;
    return out;
}

}  // namespace netprobe::agent
