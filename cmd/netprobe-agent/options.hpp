// Command-line and environment options of netprobe-agent (pure parsing, unit-tested).
#pragma once

#include <netprobe/analysis/topology.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <string>
#include <vector>

#include <netprobe/analysis/respond/response.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/sinks/clickhouse.hpp>
#include <netprobe/sinks/ipfix.hpp>

namespace netprobe::agent {

struct AgentOptions {
    std::uint16_t metrics_port = 8081;
    std::string metrics_address = "0.0.0.0";
    std::chrono::nanoseconds collect_interval = std::chrono::seconds(5);
    std::vector<std::string> interfaces;  // empty: every up, non-loopback interface, followed
    ebpf::XdpMode xdp_mode = ebpf::XdpMode::Auto;
    ebpf::TcMode tc_mode = ebpf::TcMode::Auto;
    std::uint32_t flow_table_size = 65536;
    std::size_t max_flows = 100000;
    std::chrono::nanoseconds flow_timeout = std::chrono::minutes(2);
    std::size_t top_talkers = 20;  // --top-talkers (old name --top-flows): talkers with their own series
    std::chrono::nanoseconds top_talkers_hold = std::chrono::minutes(5);  // --top-talkers-hold
    std::string log_level = "info";
    bool socket_monitor = true;          // --socket-monitor: TCP/drops/netfilter stack monitor
    std::string socket_netns;            // --socket-netns: "" = all, else a netns file path
    std::uint32_t netfilter_hooks = ebpf::StackMonitorOptions::kDefaultNetfilterHooks;  // --netfilter-hooks
    enum class K8sMode { Auto, On, Off } k8s = K8sMode::Auto;  // --k8s
    std::string kubeconfig;              // --kubeconfig: "" = in-cluster when KUBERNETES_SERVICE_HOST is set
    bool pod_metrics = true;             // --pod-metrics=on|off
    std::size_t pod_metrics_limit = 200; // --pod-metrics-limit: pods with their own series
    bool k8s_policies = true;            // --k8s-policies=on|off: NetworkPolicy monitoring (with Kubernetes)
    // --respond=off|dry-run|on, --respond-ttl, --respond-events, --respond-min-severity,
    // --respond-quarantine, --respond-max-policies: automatic response (with Kubernetes)
    analysis::respond::ResponseConfig respond;
    bool workload_metrics = true;              // --workload-metrics=on|off
    std::size_t workload_metrics_limit = 500;  // --workload-metrics-limit: workload pairs with their own series
    bool qos = true;                            // --qos=on|off: handshake timing at TC + the QoS stage
    bool qos_udp_jitter = false;                // --qos-udp-jitter=on|off: UDP interarrival timing at TC
    bool decap = true;                          // --decap=on|off: overlay decapsulation (bpf/lib/decap.h)
    bool cgroup_traffic = true;                 // --cgroup-traffic=on|off: per-cgroup traffic (cgroup_skb)
    bool container_metrics = true;              // --container-metrics=on|off: netprobe_container_* series
    std::size_t container_metrics_limit = 500;  // --container-metrics-limit: containers with their own series
    bool l7 = false;                     // --l7=on|off: application-layer capture and parsing
    std::uint32_t l7_ring_bytes = 8u << 20;    // --l7-ring-size
    std::size_t l7_max_connections = 50000;    // --l7-max-connections
    bool l7_tls = true;                        // --l7-tls=on|exported|off: OpenSSL plaintext (uprobes)
    bool l7_tls_exported = false;              // --l7-tls=exported: at the exported functions' entries only
    bool security = true;                // --security=on|off: security analytics (issue 3)
    std::string security_config;         // --security-config: YAML file (docs/security.md)
    std::string intel_config;            // --intel-config: threat-intel feeds YAML (docs/intel.md)
    std::string mitigate;                // --mitigate=off|dry-run|on ("" = the config's, default off)
    std::string events_log;              // --events-log: append events as JSON lines
    std::vector<std::string> security_set;  // --security-set=KEY=VALUE: one config setting (after the file)
    std::string web_config_file;         // --web-config-file: TLS/basic auth (exporter-toolkit format)
    enum class ApiMode { Same, Off, Separate } api = ApiMode::Same;  // --api-address=same|off|HOST:PORT
    std::string api_address;
    std::uint16_t api_port = 0;
    std::size_t http_max_connections = 512;                                // --http-max-connections
    std::chrono::milliseconds http_header_timeout = std::chrono::seconds(10);  // --http-header-timeout
    std::chrono::milliseconds http_idle_timeout = std::chrono::minutes(2);     // --http-idle-timeout
    std::chrono::milliseconds http_write_timeout = std::chrono::seconds(30);   // --http-write-timeout
    // Flow export (docs/flow-export.md): records per flow and interval -> IPFIX, a JSON-lines log.
    std::vector<sinks::ipfix::CollectorConfig> ipfix_collectors;  // --ipfix-collector (repeatable)
    std::vector<sinks::ClickHouseConfig> clickhouse;      // --clickhouse (repeatable)
    bool history_source_clickhouse = false;                // --history-source=clickhouse (the first --clickhouse)
    // The cluster topology from Prometheus (docs/topology.md): --topology-source=prometheus
    // enables /api/v1/topology?source=prometheus against --prometheus-url.
    bool topology_source_prometheus = false;               // --topology-source
    std::string prometheus_url;                            // --prometheus-url
    std::string prometheus_bearer_token_file;              // --prometheus-bearer-token-file
    std::string prometheus_ca_file;                        // --prometheus-ca-file
    std::size_t topology_edge_series = 500;                // --topology-edge-series (0: no per-edge series)
    std::vector<std::string> topology_group;               // --topology-group NAME=CIDR[,CIDR...] (repeatable)
    std::vector<analysis::CidrGroup> topology_groups;      // parsed from it
    std::string state_dir = "/var/lib/netprobe";          // --state-dir: the history store, spools
    bool history = true;                                   // --history
    std::chrono::seconds history_minutes{std::chrono::days(7)};   // --history-retention
    std::chrono::seconds history_hours{std::chrono::days(90)};    // --history-hour-retention
    std::uint64_t history_max_bytes = 1ull << 30;          // --history-max-size
    std::chrono::seconds series_step{60};                  // --series-step
    bool forecast = true;                                  // --forecast
    std::chrono::seconds forecast_season{std::chrono::hours(24)};  // --forecast-season
    double capacity_threshold = 0.8;                       // --capacity-threshold
    // --link-speed IF=RATE,...: the capacity of links whose device reports none or only a
    // nominal figure (veth, tun, a cloud VM's virtio NIC), in Mb/s by interface name.
    std::map<std::string, std::uint32_t> link_speeds;
    std::string cost_config;                               // --cost-config (YAML file)
    bool anomaly = true;                                   // --anomaly
    std::size_t anomaly_learning = 360;                    // --anomaly-learning (intervals)
    std::string flow_log;                                // --flow-log: JSON lines
    std::uint64_t flow_log_max_bytes = 100ull << 20;     // --flow-log-max-size
    unsigned flow_log_max_files = 5;                     // --flow-log-max-files
    std::chrono::nanoseconds flow_active_timeout = std::chrono::seconds(60);  // --flow-active-timeout
    std::chrono::nanoseconds flow_idle_timeout = std::chrono::seconds(15);    // --flow-idle-timeout
    bool doctor = false;        // --doctor: print the diagnosis and exit
    bool output_json = false;   // --output=json (with --doctor)
};

// "IF=RATE[,IF=RATE]": RATE in bits/s with a decimal unit (100M, 2.5G, 10Gbit, 400000k),
// at least 1 Mbit/s -> Mb/s by interface name; error text otherwise.
[[nodiscard]] std::expected<std::map<std::string, std::uint32_t>, std::string> parseLinkSpeeds(const std::string& s);

// "HOST:PORT" or "[V6]:PORT" -> address and port (1-65535); error text otherwise.
[[nodiscard]] std::expected<std::pair<std::string, std::uint16_t>, std::string> parseHostPort(const std::string& s);

struct ParseOutcome {
    bool run = false;      // false: print output and exit with exit_code
    int exit_code = 0;
    std::string output;    // help/version text (stdout) or one-line error (stderr)
    AgentOptions options;
};

// argv as given to main; network_interface_env is getenv("NETWORK_INTERFACE")
// (used when --interface-filter is absent).
[[nodiscard]] ParseOutcome parseOptions(int argc, const char* const* argv, const char* network_interface_env);

}  // namespace netprobe::agent
