#include <gtest/gtest.h>

#include "options.hpp"

using netprobe::agent::parseOptions;

namespace {

netprobe::agent::ParseOutcome parse(std::vector<const char*> args, const char* env = nullptr) {
    args.insert(args.begin(), "netprobe-agent");
    return parseOptions(static_cast<int>(args.size()), args.data(), env);
}

}  // namespace

TEST(Options, SpecCommandLine) {
    auto r = parse({"--metrics-port=8081", "--collect-interval=5s", "--interface-filter=eth0,wlan0"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.options.metrics_port, 8081);
    EXPECT_EQ(r.options.collect_interval, std::chrono::seconds(5));
    EXPECT_EQ(r.options.interfaces, (std::vector<std::string>{"eth0", "wlan0"}));
}

TEST(Options, Defaults) {
    auto r = parse({});
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.metrics_port, 8081);
    EXPECT_EQ(r.options.collect_interval, std::chrono::seconds(5));
    EXPECT_TRUE(r.options.interfaces.empty());
    EXPECT_EQ(r.options.xdp_mode, netprobe::ebpf::XdpMode::Auto);
    EXPECT_EQ(r.options.tc_mode, netprobe::ebpf::TcMode::Auto);
}

TEST(Options, EnvironmentSelectsInterfacesUnlessFlagGiven) {
    auto r = parse({}, "eth1, eth2");
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.interfaces, (std::vector<std::string>{"eth1", "eth2"}));
    r = parse({"--interface-filter", "veth0"}, "eth1");
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.interfaces, (std::vector<std::string>{"veth0"}));
}

TEST(Options, GoDurations) {
    EXPECT_EQ(parse({"--collect-interval=500ms"}).options.collect_interval, std::chrono::milliseconds(500));
    EXPECT_EQ(parse({"--collect-interval=1m"}).options.collect_interval, std::chrono::minutes(1));
    EXPECT_EQ(parse({"--flow-timeout=1h30m"}).options.flow_timeout, std::chrono::minutes(90));
}

TEST(Options, TopTalkers) {
    auto r = parse({});
    EXPECT_EQ(r.options.top_talkers, 20u);
    EXPECT_EQ(r.options.top_talkers_hold, std::chrono::minutes(5));
    r = parse({"--top-talkers=7", "--top-talkers-hold=90s"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.options.top_talkers, 7u);
    EXPECT_EQ(r.options.top_talkers_hold, std::chrono::seconds(90));
    EXPECT_EQ(parse({"--top-talkers-hold=0s"}).options.top_talkers_hold, std::chrono::seconds(0));
    // The old name still works (deploy files and scripts of earlier versions).
    r = parse({"--top-flows=5"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.options.top_talkers, 5u);
    struct Case {
        std::vector<const char*> args;
        const char* needle;
    } bad[] = {
        {{"--top-talkers=1001"}, "--top-talkers"},
        {{"--top-talkers=-1"}, "-1"},
        {{"--top-flows=2000"}, "--top-flows"},
        {{"--top-flows=5", "--top-talkers=5"}, "old name"},
        {{"--top-talkers-hold=5"}, "--top-talkers-hold"},
        {{"--top-talkers-hold=-1m"}, "--top-talkers-hold"},
        {{"--top-talkers-hold=25h"}, "--top-talkers-hold"},
    };
    for (const auto& c : bad) {
        r = parse(c.args);
        EXPECT_FALSE(r.run) << c.args[0];
        EXPECT_NE(r.exit_code, 0) << c.args[0];
        EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args[0] << " -> " << r.output;
    }
}

TEST(Options, HelpAndVersionExitZero) {
    auto h = parse({"--help"});
    EXPECT_FALSE(h.run);
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_NE(h.output.find("--collect-interval"), std::string::npos);
    auto v = parse({"--version"});
    EXPECT_FALSE(v.run);
    EXPECT_EQ(v.exit_code, 0);
}

TEST(Options, BadInputIsOneLineNamingTheProblem) {
    struct Case {
        std::vector<const char*> args;
        const char* needle;
    } cases[] = {
        {{"--bogus"}, "--bogus"},
        {{"--collect-interval=5x"}, "5x"},
        {{"--collect-interval=5"}, "missing unit"},
        {{"--collect-interval=10ms"}, "too short"},
        {{"--collect-interval=-5s"}, "-5s"},
        {{"--metrics-port=0"}, "--metrics-port"},
        {{"--metrics-port=70000"}, "--metrics-port"},
        {{"--metrics-port=abc"}, "metrics-port"},
        {{"--xdp-mode=fast"}, "--xdp-mode"},
        {{"--tc-mode=ebpf"}, "--tc-mode"},
        {{"--interface-filter="}, "--interface-filter"},
        {{"--interface-filter=a/b"}, "a/b"},
        {{"--interface-filter=averyveryverylongname0"}, "averyveryverylongname0"},
        {{"--log-level=loud"}, "--log-level"},
        {{"--top-flows=5000"}, "--top-flows"},
        {{"--flow-table-size=0"}, "--flow-table-size"},
        {{"--flow-table-size=-1"}, "-1"},
        {{"--max-flows=-1"}, "-1"},
        {{"--top-flows=-1"}, "-1"},
        {{"--max-flows=0"}, "--max-flows"},
        {{"--k8s=maybe"}, "--k8s"},
        {{"--kubeconfig="}, "--kubeconfig"},
        {{"--pod-metrics=yes"}, "--pod-metrics"},
        {{"--pod-metrics-limit=-1"}, "--pod-metrics-limit"},
        {{"--pod-metrics-limit=100001"}, "--pod-metrics-limit"},
        {{"--k8s-policies=yes"}, "--k8s-policies"},
        {{"--qos-udp-jitter=yes"}, "--qos-udp-jitter"},
    };
    for (const auto& c : cases) {
        auto r = parse(c.args);
        EXPECT_FALSE(r.run) << c.args[0];
        EXPECT_NE(r.exit_code, 0) << c.args[0];
        EXPECT_EQ(r.output.find('\n'), std::string::npos) << r.output;
        EXPECT_EQ(r.output.rfind("netprobe-agent: ", 0), 0u) << r.output;
        EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.args[0] << " -> " << r.output;
    }
}

TEST(Options, Kubernetes) {
    using Mode = netprobe::agent::AgentOptions::K8sMode;
    auto r = parse({});
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.k8s, Mode::Auto);
    EXPECT_EQ(r.options.kubeconfig, "");
    EXPECT_TRUE(r.options.pod_metrics);
    EXPECT_EQ(r.options.pod_metrics_limit, 200u);
    EXPECT_TRUE(r.options.k8s_policies);
    r = parse({"--k8s=on", "--kubeconfig=/etc/kube/config", "--pod-metrics=off", "--pod-metrics-limit=0",
               "--k8s-policies=off"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_FALSE(r.options.k8s_policies);
    EXPECT_EQ(r.options.k8s, Mode::On);
    EXPECT_EQ(r.options.kubeconfig, "/etc/kube/config");
    EXPECT_FALSE(r.options.pod_metrics);
    EXPECT_EQ(r.options.pod_metrics_limit, 0u);
    EXPECT_EQ(parse({"--k8s=off"}).options.k8s, Mode::Off);
}

TEST(Options, Security) {
    auto r = parse({});
    ASSERT_TRUE(r.run);
    EXPECT_TRUE(r.options.security);
    EXPECT_TRUE(r.options.mitigate.empty());  // the config file's mode, else off
    r = parse({"--security=off"});
    ASSERT_TRUE(r.run);
    EXPECT_FALSE(r.options.security);
    r = parse({"--mitigate=dry-run", "--security-config=/etc/np.yaml", "--events-log=/var/log/np.jsonl"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.options.mitigate, "dry-run");
    EXPECT_EQ(r.options.security_config, "/etc/np.yaml");
    EXPECT_EQ(r.options.events_log, "/var/log/np.jsonl");
    r = parse({"--security-set=scan.vertical_ports=50", "--security-set", "allow=[198.18.0.0/24]"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.options.security_set, (std::vector<std::string>{"scan.vertical_ports=50", "allow=[198.18.0.0/24]"}));
    struct Bad {
        std::vector<const char*> args;
        const char* want;
    } bad[] = {
        {{"--security=maybe"}, "invalid --security \"maybe\": expected on or off"},
        {{"--mitigate=drop"}, "invalid --mitigate \"drop\": expected off, dry-run or on"},
        {{"--security-config", ""}, "--security-config"},
        {{"--events-log", ""}, "--events-log"},
        {{"--security=off", "--mitigate=on"}, "--mitigate needs --security=on"},
        {{"--security-set=oops"}, "invalid --security-set \"oops\": expected KEY=VALUE"},
        {{"--security-set==3"}, "invalid --security-set"},
        {{"--security-set=Scan.X=3"}, "invalid --security-set"},
    };
    for (const auto& b : bad) {
        auto o = parse(b.args);
        EXPECT_FALSE(o.run);
        EXPECT_EQ(o.exit_code, 2);
        EXPECT_NE(o.output.find(b.want), std::string::npos) << o.output;
    }
}

TEST(Options, HttpServer) {
    auto r = parse({});
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.api, netprobe::agent::AgentOptions::ApiMode::Same);
    EXPECT_EQ(r.options.http_max_connections, 512u);
    EXPECT_EQ(r.options.http_header_timeout, std::chrono::seconds(10));
    r = parse({"--api-address=[::1]:8082", "--web-config-file=/etc/netprobe/web.yml", "--http-max-connections=64",
               "--http-header-timeout=2s", "--http-idle-timeout=30s", "--http-write-timeout=1m"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.options.api, netprobe::agent::AgentOptions::ApiMode::Separate);
    EXPECT_EQ(r.options.api_address, "::1");
    EXPECT_EQ(r.options.api_port, 8082);
    EXPECT_EQ(r.options.web_config_file, "/etc/netprobe/web.yml");
    EXPECT_EQ(r.options.http_max_connections, 64u);
    EXPECT_EQ(r.options.http_header_timeout, std::chrono::seconds(2));
    EXPECT_EQ(r.options.http_idle_timeout, std::chrono::seconds(30));
    EXPECT_EQ(r.options.http_write_timeout, std::chrono::minutes(1));
    r = parse({"--api-address=off"});
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.api, netprobe::agent::AgentOptions::ApiMode::Off);
    r = parse({"--api-address=127.0.0.1:9000"});
    ASSERT_TRUE(r.run);
    EXPECT_EQ(r.options.api_address, "127.0.0.1");
    for (const char* bad : {"--api-address=nohost", "--api-address=127.0.0.1:0", "--api-address=:80",
                            "--api-address=[::1", "--api-address=::1:80", "--http-max-connections=0",
                            "--http-header-timeout=10", "--http-idle-timeout=1ms", "--web-config-file="}) {
        auto b = parse({bad});
        EXPECT_FALSE(b.run) << bad;
        EXPECT_EQ(b.exit_code, 2) << bad;
        EXPECT_EQ(b.output.find('\n'), std::string::npos) << b.output;
    }
}

TEST(Options, FlowExport) {
    auto r = parse({"--ipfix-collector=198.18.0.1:4739", "--ipfix-collector=[fd6e:7072::1]:4739,transport=tcp",
                    "--flow-log=/tmp/flows.jsonl", "--flow-log-max-size=64MiB", "--flow-log-max-files=2",
                    "--flow-active-timeout=30s", "--flow-idle-timeout=5s"});
    ASSERT_TRUE(r.run) << r.output;
    ASSERT_EQ(r.options.ipfix_collectors.size(), 2u);
    EXPECT_TRUE(r.options.ipfix_collectors[1].tcp);
    EXPECT_EQ(r.options.flow_log_max_bytes, 64ull << 20);
    EXPECT_EQ(r.options.flow_log_max_files, 2u);
    EXPECT_EQ(r.options.flow_active_timeout, std::chrono::seconds(30));
    EXPECT_EQ(r.options.flow_idle_timeout, std::chrono::seconds(5));
    for (auto bad : {"--ipfix-collector=nohost", "--ipfix-collector=h:1,transport=quic", "--flow-log-max-size=1KiB",
                     "--flow-log-max-size=10XB", "--flow-log-max-files=-1", "--flow-active-timeout=0s",
                     "--flow-idle-timeout=banana", "--flow-log="}) {
        auto b = parse({bad});
        EXPECT_FALSE(b.run) << bad;
        EXPECT_EQ(b.exit_code, 2) << bad;
        EXPECT_NE(b.output.find("netprobe-agent: "), std::string::npos) << b.output;
    }
}

TEST(Options, L7) {
    auto r = parse({});
    ASSERT_TRUE(r.run);
    EXPECT_FALSE(r.options.l7);
    EXPECT_TRUE(r.options.l7_tls);
    EXPECT_FALSE(r.options.l7_tls_exported);
    EXPECT_FALSE(parse({"--l7-tls=off"}).options.l7_tls);
    r = parse({"--l7-tls=exported"});
    EXPECT_TRUE(r.options.l7_tls);
    EXPECT_TRUE(r.options.l7_tls_exported);
    r = parse({"--l7=on", "--l7-ring-size=16MiB", "--l7-max-connections=1000"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_TRUE(r.options.l7);
    EXPECT_EQ(r.options.l7_ring_bytes, 16u << 20);
    EXPECT_EQ(r.options.l7_max_connections, 1000u);
    for (const char* bad : {"--l7=yes", "--l7-tls=maybe", "--l7-ring-size=3MiB", "--l7-ring-size=1KiB", "--l7-ring-size=x",
                            "--l7-max-connections=0"}) {
        auto b = parse({bad});
        EXPECT_FALSE(b.run) << bad;
        EXPECT_NE(b.exit_code, 0) << bad;
        EXPECT_NE(b.output.find(std::string(bad).substr(0, std::string(bad).find('='))), std::string::npos) << b.output;
    }
}

TEST(Options, Decap) {
    auto r = parse({});
    ASSERT_TRUE(r.run);
    EXPECT_TRUE(r.options.decap);
    r = parse({"--decap=off"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_FALSE(r.options.decap);
    auto b = parse({"--decap=vxlan"});
    EXPECT_FALSE(b.run);
    EXPECT_EQ(b.exit_code, 2);
    EXPECT_NE(b.output.find("--decap"), std::string::npos) << b.output;
}

TEST(Options, LinkSpeeds) {
    auto r = parse({"--link-speed=eth0=10G, veth1=100M,tun0=2.5Gbit,ens5=400000k,lo9=1000000bps"});
    ASSERT_TRUE(r.run) << r.output;
    const std::map<std::string, std::uint32_t> want{
        {"eth0", 10000}, {"veth1", 100}, {"tun0", 2500}, {"ens5", 400}, {"lo9", 1}};
    EXPECT_EQ(r.options.link_speeds, want);
    EXPECT_TRUE(parse({}).options.link_speeds.empty());
    EXPECT_FALSE(parse({}).options.qos_udp_jitter);  // opt-in: a map lookup per UDP packet
    EXPECT_TRUE(parse({"--qos-udp-jitter=on"}).options.qos_udp_jitter);
    for (const char* bad : {"--link-speed=", "--link-speed=eth0", "--link-speed=eth0=", "--link-speed==10G",
                            "--link-speed=eth0=fast", "--link-speed=eth0=10X", "--link-speed=eth0=500k",
                            "--link-speed=eth0=1G,eth0=2G", "--link-speed=a/b=1G", "--link-speed=eth0=1.2.3G",
                            "--link-speed=averyveryverylongname0=1G", "--link-speed=eth0=-1G"}) {
        auto b = parse({bad});
        EXPECT_FALSE(b.run) << bad;
        EXPECT_NE(b.exit_code, 0) << bad;
        EXPECT_EQ(b.output.find('\n'), std::string::npos) << b.output;
        EXPECT_NE(b.output.find("--link-speed"), std::string::npos) << bad << " -> " << b.output;
    }
}
