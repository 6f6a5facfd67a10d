// The `netprobe` command line: argument parsing to API requests, tables, top lists.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli.hpp"

namespace {

using namespace netprobe::cli;

ParseResult parse(std::vector<const char*> args, std::map<std::string, std::string> env = {}, bool tty = false) {
    args.insert(args.begin(), "netprobe");
    return netprobe::cli::parse(static_cast<int>(args.size()), args.data(), env, tty);
}

TEST(NetprobeCli, FlowsFiltersBecomeApiParameters) {
    auto r = parse({"flows", "--ip", "10.0.0.1", "--port", "443", "--protocol", "tcp", "--namespace", "shop",
                    "--limit", "5", "--sort", "bytes"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.kind, Invocation::Kind::Flows);
    EXPECT_EQ(r.inv.path, "/api/v1/flows");
    EXPECT_EQ(r.inv.query, (std::map<std::string, std::string>{{"ip", "10.0.0.1"}, {"port", "443"},
                                                               {"protocol", "tcp"}, {"namespace", "shop"},
                                                               {"sort", "bytes"}, {"limit", "5"}}));
    EXPECT_EQ(r.inv.limit, 5u);
    EXPECT_EQ(r.inv.conn.server, "http://127.0.0.1:8081");
    EXPECT_EQ(r.inv.output, Output::Table);
}

TEST(NetprobeCli, ServerCredentialsAndOutputFromFlagsAndEnvironment) {
    auto r = parse({"-o", "json", "connections", "--state", "open"},
                   {{"NETPROBE_SERVER", "https://node-1:8081/"}, {"NETPROBE_USER", "ops"}, {"NETPROBE_PASSWORD", "pw"}});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.conn.server, "https://node-1:8081");
    EXPECT_EQ(r.inv.conn.user, "ops");
    EXPECT_EQ(r.inv.conn.password, "pw");
    EXPECT_EQ(r.inv.output, Output::Json);
    EXPECT_EQ(r.inv.query.at("state"), "open");
    r = parse({"--server", "http://10.1.1.1:9000", "--color", "always", "events", "--since", "10m"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.conn.server, "http://10.1.1.1:9000");
    EXPECT_TRUE(r.inv.color);
    EXPECT_EQ(r.inv.since, std::chrono::minutes(10));
    EXPECT_TRUE(parse({"interfaces"}, {}, true).inv.color);                       // auto on a terminal
    EXPECT_FALSE(parse({"interfaces"}, {{"NO_COLOR", "1"}}, true).inv.color);    // no-color.org
    EXPECT_FALSE(parse({"interfaces"}, {}, false).inv.color);
}

TEST(NetprobeCli, BadArgumentsAreOneLineAndExitTwo) {
    for (std::vector<const char*> bad :
         {std::vector<const char*>{}, {"nosuch"}, {"flows", "--port", "70000"}, {"flows", "--sort", "size"},
          {"-o", "xml", "flows"}, {"--server", "node:8081", "flows"}, {"top"}, {"top", "bananas"},
          {"flows", "--since", "yesterday"}, {"connections", "--state", "half"}, {"--timeout", "0s", "flows"},
          {"flows", "--limit", "0"}, {"completion", "fish"}, {"events", "--since", "last week"}}) {
        auto r = parse(bad);
        EXPECT_FALSE(r.run);
        EXPECT_EQ(r.exit_code, kExitUsage);
        EXPECT_TRUE(r.output.starts_with("netprobe: ")) << r.output;
        EXPECT_EQ(r.output.find('\n'), std::string::npos) << r.output;
    }
    auto h = parse({"flows", "--help"});
    EXPECT_FALSE(h.run);
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_NE(h.output.find("--follow"), std::string::npos);
}

TEST(NetprobeCli, TablesAlignColumns) {
    Table t;
    t.header = {"NAME", "BYTES"};
    t.right = {false, true};
    t.rows = {{"a", "1KiB"}, {"longer-name", "12MiB"}};
    EXPECT_EQ(t.render(false), "NAME         BYTES\na             1KiB\nlonger-name  12MiB\n");
    EXPECT_NE(t.render(true).find("\033[1m"), std::string::npos);
    EXPECT_EQ(humanBytes(512), "512B");
    EXPECT_EQ(humanBytes(1536), "1.5KiB");
    EXPECT_EQ(humanCount(1234567), "1.2M");
    EXPECT_EQ(endpoint("fd6e:7072::1", 443), "[fd6e:7072::1]:443");
    EXPECT_EQ(endpoint("10.0.0.1", 0), "10.0.0.1");
}

const nlohmann::json kFlows = nlohmann::json::parse(R"({"flows":[
 {"src_ip":"10.0.0.2","src_port":40000,"dst_ip":"10.0.0.1","dst_port":443,"protocol":"tcp","interface":"eth0",
  "direction":"ingress","packets":10,"bytes":5000,"bytes_rate":1000,"last_seen":"2026-12-03T17:18:42.145Z",
  "tcp_flags":["SYN","ACK"],"src_namespace":"shop","src_pod":"web-1","encap":"vxlan"},
 {"src_ip":"10.0.0.3","src_port":40001,"dst_ip":"10.0.0.1","dst_port":443,"protocol":"tcp","interface":"eth0",
  "direction":"ingress","packets":20,"bytes":9000,"bytes_rate":3000,"last_seen":"2026-12-03T17:18:43.000Z"},
 {"src_ip":"10.0.0.1","src_port":53,"dst_ip":"10.0.0.2","dst_port":51000,"protocol":"udp","interface":"eth0",
  "direction":"egress","packets":1,"bytes":90,"bytes_rate":0,"last_seen":"2026-12-03T17:18:40.000Z"}]})");

TEST(NetprobeCli, FlowsTable) {
    auto t = flowsTable(kFlows, true);
    ASSERT_EQ(t.rows.size(), 3u);
    EXPECT_EQ(t.rows[0][0], "10.0.0.2:40000");
    EXPECT_EQ(t.rows[0][4], "in");
    EXPECT_EQ(t.rows[0][7], "1000B/s");
    EXPECT_EQ(t.rows[0][8], "17:18:42");
    EXPECT_EQ(t.rows[0][9], "shop/web-1");
    EXPECT_EQ(t.rows[0][12], "SYN,ACK");
    EXPECT_EQ(t.rows[0][13], "vxlan");
    EXPECT_EQ(t.rows[1][13], "");
    EXPECT_EQ(flowsTable(kFlows, false).header.size(), 9u);
}

TEST(NetprobeCli, TopologyCommandAndTable) {
    auto r = parse({"topology", "--window", "1m", "--group-by", "segment", "--protocol", "grpc"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.kind, Invocation::Kind::Topology);
    EXPECT_EQ(r.inv.path, "/api/v1/topology");
    EXPECT_EQ(r.inv.query, (std::map<std::string, std::string>{
                               {"window", "1m"}, {"group_by", "segment"}, {"protocol", "grpc"}, {"limit", "50"}}));
    EXPECT_FALSE(parse({"topology", "--window", "soon"}).run);
    const auto doc = nlohmann::json::parse(R"({"nodes": [{"id": "10.0.0.1", "name": "web"}, {"id": "10.0.0.2", "name": "10.0.0.2"}],
        "edges": [{"source": "10.0.0.1", "target": "10.0.0.2", "port": 5432, "transport": "tcp", "protocol": "postgres",
                   "bytes_per_second": 2048, "connections_opened": 3, "requests_per_second": 12.5, "error_rate": 0.1,
                   "p99_seconds": 0.004, "rtt_ms": 0.25, "bytes_out": 100, "bytes_in": 200, "connections_failed": 1,
                   "retransmits": 0, "boundary": true, "requests": 125}]})");
    auto t = topologyTable(doc, true);
    ASSERT_EQ(t.rows.size(), 1u);
    EXPECT_EQ(t.rows[0][0], "web");
    EXPECT_EQ(t.rows[0][2], "5432");
    EXPECT_EQ(t.rows[0][3], "postgres");
    EXPECT_EQ(t.rows[0][6], "12.50");
    EXPECT_EQ(t.rows[0][7], "10.0%");
    EXPECT_EQ(t.rows[0][9], "0.25ms");
    EXPECT_EQ(t.rows[0].back(), "yes");
    // the L7 protocols the agent knows pass through
    for (const char* p : {"http2", "grpc", "redis", "postgres", "mysql", "kafka", "amqp"})
        EXPECT_TRUE(parse({"requests", "--protocol", p}).run) << p;
    EXPECT_FALSE(parse({"requests", "--protocol", "mqtt"}).run);
}

TEST(NetprobeCli, QosCommandAndTables) {
    auto r = parse({"qos", "--window", "1m", "--group-by", "service", "--namespace", "shop"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.kind, Invocation::Kind::Qos);
    EXPECT_EQ(r.inv.path, "/api/v1/qos");
    EXPECT_EQ(r.inv.query, (std::map<std::string, std::string>{
                               {"window", "1m"}, {"group_by", "service"}, {"namespace", "shop"}, {"limit", "50"}}));
    EXPECT_FALSE(parse({"qos", "--window", "1h"}).run);         // beyond the stage's 15 minutes
    EXPECT_FALSE(parse({"qos", "--window", "soon"}).run);
    EXPECT_FALSE(parse({"qos", "--group-by", "segment"}).run);  // the agent's 400, said at once
    EXPECT_EQ(parse({"qos"}).inv.query.count("group_by"), 0u);  // the agent's default
    const auto doc = nlohmann::json::parse(R"({"enabled": true, "window_seconds": 60,
        "edges": [{"client": "shop/web", "server": "shop/db", "port": 5432, "connections_opened": 12,
                   "connections_failed": 1, "rtt_ms": {"p50": 0.25, "p99": 1.5}, "jitter_ms": 0.125,
                   "loss_ratio": {"total": 0.0125}, "retransmits_client": 3, "retransmits_server": 2,
                   "drops": {"client_to_server": 4, "server_to_client": 0, "by_reason": {"NETFILTER_DROP": 4}},
                   "bytes_out": 1024, "bytes_in": 1024, "srtt_ms": 0.5,
                   "l7": {"protocol": "postgres", "requests": 1500, "error_rate": 0.02, "p99_seconds": 0.004}},
                  {"client": "10.0.0.9", "server": "shop/db", "port": 5432, "connections_opened": 0,
                   "connections_failed": 0, "loss_ratio": {"total": 0}, "bytes_out": 10, "bytes_in": 0}],
        "services": [{"server": "shop/db", "port": 5432, "connections_opened": 12, "rtt_ms": {"p50": 0.25, "p99": 1.5},
                      "bytes_out": 1034, "bytes_in": 1024}]})");
    auto t = qosTable(doc, false, false);
    ASSERT_EQ(t.rows.size(), 2u);
    EXPECT_EQ(t.header[0], "CLIENT");
    EXPECT_EQ(t.rows[0], (std::vector<std::string>{"shop/web", "shop/db", "5432", "12", "1", "0.25ms", "1.50ms",
                                                   "0.12ms", "1.25%", "5", "4", "2.0KiB"}));
    EXPECT_EQ(t.rows[1][5], "");  // no handshake in the window: no RTT, not 0
    EXPECT_EQ(t.rows[1][7], "");
    auto w = qosTable(doc, true, false);
    EXPECT_EQ(w.rows[0].back(), "NETFILTER_DROP 4");
    EXPECT_EQ(w.rows[0][12], "0.50ms");
    EXPECT_EQ(w.rows[0][15], "postgres");
    EXPECT_EQ(w.rows[0][17], "2.0%");
    EXPECT_EQ(w.rows[1][15], "");
    EXPECT_EQ(w.header.size(), w.right.size());
    auto s = qosTable(doc, false, true);
    ASSERT_EQ(s.rows.size(), 1u);
    EXPECT_EQ(s.header[0], "SERVER");
    EXPECT_EQ(s.rows[0][0], "shop/db");
    EXPECT_EQ(s.rows[0][2], "12");
}

TEST(NetprobeCli, CostCommandAndTable) {
    auto r = parse({"cost", "--limit", "5"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.kind, Invocation::Kind::Cost);
    EXPECT_EQ(r.inv.path, "/api/v1/cost");
    EXPECT_EQ(r.inv.query, (std::map<std::string, std::string>{{"limit", "5"}}));
    EXPECT_FALSE(parse({"cost", "--limit", "0"}).run);
    const auto doc = nlohmann::json::parse(R"({"enabled": true, "window_seconds": 300, "currency": "USD",
        "zone": "zone-a", "zone_source": "kubernetes",
        "price_per_gb": {"same_node": 0, "same_zone": 0, "cross_zone": 0.01, "private": 0.01, "internet": 0.09},
        "entities": [{"entity": "shop/web", "bytes_sent": {"same_node": 0, "same_zone": 2048, "cross_zone": 1073741824,
                      "private": 0, "internet": 5}, "bytes_received": {"same_zone": 100, "internet": 28},
                      "cost": 0.01, "cost_per_hour": 0.12}],
        "total_cost": 0.01, "total_cost_per_hour": 0.12})");
    auto t = costTable(doc, false);
    ASSERT_EQ(t.rows.size(), 1u);
    EXPECT_EQ(t.rows[0], (std::vector<std::string>{"shop/web", "0B", "2.0KiB", "1.0GiB", "0B", "5B", "0.01 USD",
                                                   "0.12 USD"}));
    EXPECT_EQ(t.header[3], "SENT CROSS ZONE");
    auto w = costTable(doc, true);
    EXPECT_EQ(w.rows[0][6], "128B");
    EXPECT_EQ(w.header.size(), w.right.size());
    const auto sum = costSummary(doc);
    EXPECT_NE(sum.find("zone zone-a (from kubernetes), window 300 s"), std::string::npos) << sum;
    EXPECT_NE(sum.find("internet 0.09"), std::string::npos) << sum;
    EXPECT_NE(sum.find("total 0.01 USD over the window, 0.12 USD per hour"), std::string::npos) << sum;
}

TEST(NetprobeCli, IntelCommandAndTable) {
    auto r = parse({"intel", "-o", "wide"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.kind, Invocation::Kind::Intel);
    EXPECT_EQ(r.inv.path, "/api/v1/intel");
    const auto doc = nlohmann::json::parse(R"({"enabled": true, "feeds": [
        {"name": "drop", "type": "spamhaus", "action": "block", "status": "ok", "ips": 1520, "domains": 0,
         "malformed_lines": 2, "last_load": "2026-12-04T20:00:00.000Z", "source": "/var/lib/drop.txt",
         "matched": {"from": {"packets": 7, "bytes": 700}, "to": {"packets": 3, "bytes": 300},
                     "dropped": {"packets": 10, "bytes": 1000}}},
        {"name": "gone", "type": "plain", "action": "alert", "status": "error", "ips": 0, "domains": 0,
         "malformed_lines": 0, "last_load": null, "source": "/nope", "error": "cannot read /nope",
         "matched": {"from": {"packets": 0}, "to": {"packets": 0}, "dropped": {"packets": 0}}}]})");
    auto t = intelTable(doc, true);
    ASSERT_EQ(t.rows.size(), 2u);
    EXPECT_EQ(t.header[7], "FROM PKTS");
    EXPECT_EQ(t.rows[0][0], "drop");
    EXPECT_EQ(t.rows[0][2], "block");
    EXPECT_EQ(t.rows[0][7], "7");
    EXPECT_EQ(t.rows[0][8], "3");
    EXPECT_EQ(t.rows[0][9], "10");
    EXPECT_EQ(t.rows[1][3], "error");
    EXPECT_EQ(t.rows[1][10], "");  // never loaded
    EXPECT_EQ(t.rows[1].back(), "cannot read /nope");
}

TEST(NetprobeCli, TopListsAggregateByRate) {
    auto talkers = topTable(kFlows, TopBy::Talkers, 10);
    ASSERT_EQ(talkers.rows.size(), 3u);
    EXPECT_EQ(talkers.rows[0][0], "10.0.0.3 -> 10.0.0.1");
    auto ports = topTable(kFlows, TopBy::Ports, 10);
    ASSERT_EQ(ports.rows.size(), 2u);
    EXPECT_EQ(ports.rows[0][0], "tcp/443");
    EXPECT_EQ(ports.rows[0][4], "2");
    EXPECT_EQ(ports.rows[1][0], "udp/53");
    auto eps = topTable(kFlows, TopBy::Endpoints, 1);
    ASSERT_EQ(eps.rows.size(), 1u);
    EXPECT_EQ(eps.rows[0][0], "10.0.0.1");  // in every flow
    EXPECT_EQ(eps.rows[0][4], "3");
}

TEST(NetprobeCli, DropsFromTwoScrapes) {
    const std::string a = "# HELP netprobe_packet_drops_total x\nnetprobe_packet_drops_total{reason=\"NO_SOCKET\"} 10\n"
                          "netprobe_packet_drops_total{reason=\"NETFILTER_DROP\"} 5\n";
    const std::string b = "netprobe_packet_drops_total{reason=\"NO_SOCKET\"} 30\n"
                          "netprobe_packet_drops_total{reason=\"NETFILTER_DROP\"} 105\n"
                          "netprobe_packet_drops_total_other 7\n";
    auto t = dropsTable(a, b, 2.0, 10);
    ASSERT_EQ(t.rows.size(), 2u);
    EXPECT_EQ(t.rows[0][0], "NETFILTER_DROP");
    EXPECT_EQ(t.rows[0][1], "50.0/s");
    EXPECT_EQ(t.rows[1][1], "10.0/s");
    EXPECT_EQ(metricSamples(b, "netprobe_packet_drops_total").size(), 2u);
}

TEST(NetprobeCli, CompletionScripts) {
    EXPECT_NE(completionScript("bash").find("complete -F _netprobe netprobe"), std::string::npos);
    EXPECT_NE(completionScript("zsh").find("#compdef netprobe"), std::string::npos);
}

}  // namespace

// ---- the diagnosis stage and its netstat input ----
#include <netprobe/analysis/bottlenecks.hpp>
#include <netprobe/analysis/diagnosis.hpp>
#include <netprobe/analysis/forecast/stage.hpp>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/collector/sources.hpp>
#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/util/ip.hpp>
#include <algorithm>

namespace {

TEST(Netstat, ParsesHeaderAndValueLinesPerGroup) {
    std::map<std::string, std::uint64_t> m;
    netprobe::collector::parseNetstat(
        "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 266 270\n"
        "IpExt: InNoRoutes\nIpExt: 3\nTcp: RtoAlgorithm MaxConn RetransSegs\nTcp: 1 -1 42\nBroken: a b\nOther: 1 2\n",
        m);
    EXPECT_EQ(m.at("TcpExt.ListenOverflows"), 266u);
    EXPECT_EQ(m.at("TcpExt.ListenDrops"), 270u);
    EXPECT_EQ(m.at("IpExt.InNoRoutes"), 3u);
    EXPECT_EQ(m.at("Tcp.RetransSegs"), 42u);
    EXPECT_EQ(m.count("Tcp.MaxConn"), 0u);  // -1: not a counter
    EXPECT_EQ(m.count("Broken.a"), 0u);
}

netprobe::collector::Snapshot diagSnap(double t, std::uint64_t listen, std::uint64_t fw_drops, std::uint64_t closed_drops) {
    netprobe::collector::Snapshot s;
    s.mono = netprobe::collector::MonoTime(std::chrono::milliseconds(static_cast<long>(t * 1000)));
    s.taken_at = netprobe::collector::WallTime(std::chrono::seconds(1'800'000'000)) +
                 std::chrono::milliseconds(static_cast<long>(t * 1000));
    s.netstat = std::make_shared<std::map<std::string, std::uint64_t>>(
        std::map<std::string, std::uint64_t>{{"TcpExt.ListenOverflows", listen}, {"TcpExt.ListenDrops", listen}});
    auto st = std::make_shared<netprobe::ebpf::StackStats>();
    st->drops = {{0, "NETFILTER_DROP", fw_drops}, {0, "SOCKET_CLOSE", closed_drops}};
    s.stack = st;
    return s;
}

TEST(Diagnosis, FindingsComeFromTheWindowsDeltasAndBenignReasonsAreQuiet) {
    netprobe::analysis::DiagnosisOptions o;
    o.window = std::chrono::seconds(10);
    netprobe::analysis::Diagnosis d(o);
    netprobe::analysis::Views v;
    // Counters already high when the agent starts: not a finding (no delta yet).
    d.run(diagSnap(0, 1000, 5000, 5000), v);
    EXPECT_TRUE(v.diagnosis->findings.empty());
    d.run(diagSnap(1, 1003, 5010, 9000), v);  // below the thresholds; socket-close drops are benign
    EXPECT_TRUE(v.diagnosis->findings.empty());
    d.run(diagSnap(2, 1010, 5030, 9999), v);
    ASSERT_EQ(v.diagnosis->findings.size(), 2u);
    EXPECT_EQ(v.diagnosis->findings[0].rule, "listen_overflow");  // critical first
    EXPECT_EQ(v.diagnosis->findings[0].evidence[0].value, 10);
    EXPECT_EQ(v.diagnosis->findings[1].subject, "NETFILTER_DROP");
    EXPECT_EQ(v.diagnosis->findings[1].evidence[0].value, 30);
    const auto since = v.diagnosis->findings[0].since;
    d.run(diagSnap(3, 1010, 5030, 9999), v);
    EXPECT_EQ(v.diagnosis->findings[0].since, since);  // kept while it holds
    // The window moves on: quiet again.
    d.run(diagSnap(14, 1010, 5030, 9999), v);
    EXPECT_TRUE(v.diagnosis->findings.empty());
    EXPECT_TRUE(netprobe::analysis::dropAdvice("OTHERHOST").benign);
    EXPECT_EQ(netprobe::analysis::dropAdvice("PKT_TOO_BIG").severity, "critical");
    EXPECT_NE(netprobe::analysis::dropAdvice("SOME_NEW_REASON").cause.find("SKB_DROP_REASON_SOME_NEW_REASON"),
              std::string::npos);
}

}  // namespace

namespace {

TEST(Diagnosis, RetransmitRatioAndFailedConnectionsByDestination) {
    netprobe::analysis::Diagnosis d({});
    netprobe::analysis::Views v;
    auto snap = [](double t, std::uint64_t retrans, std::uint64_t tcp_out, std::uint64_t failed, int refused_to_a) {
        netprobe::collector::Snapshot s;
        s.mono = netprobe::collector::MonoTime(std::chrono::milliseconds(static_cast<long>(t * 1000)));
        s.taken_at = netprobe::collector::WallTime(std::chrono::seconds(1'800'000'000)) +
                     std::chrono::milliseconds(static_cast<long>(t * 1000));
        s.protocols[NP_DIR_EGRESS][NP_PROTO_TCP].packets = tcp_out;
        auto st = std::make_shared<netprobe::ebpf::StackStats>();
        st->retransmits = retrans;
        st->failed = failed;
        st->resets_received = failed;
        for (int i = 0; i < refused_to_a + 1; ++i) {
            netprobe::ebpf::Connection c;
            c.dst_ip = *netprobe::util::parseAddr(i < refused_to_a ? "198.18.0.9" : "198.18.0.7");
            c.dst_port = i < refused_to_a ? 5432 : 80;
            c.open = false;
            c.failed = true;
            c.origin = NP_CONN_ACTIVE;
            c.end = s.taken_at;
            st->connections.push_back(c);
        }
        s.stack = st;
        return s;
    };
    d.run(snap(0, 0, 0, 0, 0), v);
    d.run(snap(1, 150, 10000, 8, 7), v);  // 1.5% retransmitted: below 2%
    ASSERT_EQ(v.diagnosis->findings.size(), 1u);
    const auto& f = v.diagnosis->findings[0];
    EXPECT_EQ(f.rule, "connection_failures");
    EXPECT_EQ(f.subject, "198.18.0.9:5432");
    EXPECT_EQ(f.evidence[0].value, 8);
    EXPECT_EQ(f.evidence[2].name, "failed_to 198.18.0.9:5432");
    EXPECT_EQ(f.evidence[2].value, 7);
    EXPECT_NE(f.cause.find("RST"), std::string::npos);
    d.run(snap(2, 1650, 20000, 8, 0), v);  // window: 1650 of 20000 = 8.25%
    auto it = std::find_if(v.diagnosis->findings.begin(), v.diagnosis->findings.end(),
                           [](const auto& x) { return x.rule == "tcp_retransmits"; });
    ASSERT_NE(it, v.diagnosis->findings.end());
    EXPECT_EQ(it->severity, "warning");
    EXPECT_NEAR(it->evidence[2].value, 0.0825, 1e-9);
}

}  // namespace

namespace {

TEST(Diagnosis, FragmentationNeededIsAPathMtuFinding) {
    netprobe::analysis::Diagnosis d({});
    netprobe::analysis::Views v;
    auto snap = [](double t, std::uint64_t v4, std::uint64_t v6, std::uint64_t other) {
        netprobe::collector::Snapshot s;
        s.mono = netprobe::collector::MonoTime(std::chrono::milliseconds(static_cast<long>(t * 1000)));
        netprobe::ebpf::IcmpCount a, b, c;
        a.key = {NP_DIR_EGRESS, 4, 3, 4};
        a.counter.packets = v4;
        b.key = {NP_DIR_INGRESS, 6, 2, 0};
        b.counter.packets = v6;
        c.key = {NP_DIR_EGRESS, 4, 3, 3};  // port unreachable: not about the MTU
        c.counter.packets = other;
        s.icmp = {a, b, c};
        return s;
    };
    d.run(snap(0, 0, 0, 0), v);
    d.run(snap(1, 1, 1, 50), v);
    EXPECT_TRUE(v.diagnosis->findings.empty());
    d.run(snap(2, 2, 2, 90), v);
    ASSERT_EQ(v.diagnosis->findings.size(), 1u);
    EXPECT_EQ(v.diagnosis->findings[0].rule, "path_mtu");
    EXPECT_EQ(v.diagnosis->findings[0].evidence[0].value, 4);
    EXPECT_EQ(v.diagnosis->findings[0].severity, "warning");
}

}  // namespace

namespace {

TEST(Diagnosis, ApplicationLayerRulesFromTheL7Endpoints) {
    netprobe::analysis::Diagnosis d({});
    netprobe::analysis::Views v;
    auto l7 = std::make_shared<netprobe::analysis::l7::L7View>();
    auto ep = [](std::string proto, std::string side, std::string svc, std::string route, std::uint64_t n,
                 std::uint64_t err, std::uint64_t cerr) {
        netprobe::analysis::l7::EndpointSummary e;
        e.protocol = std::move(proto);
        e.side = std::move(side);
        e.service = std::move(svc);
        e.method = "A";
        e.route = std::move(route);
        e.requests = n;
        e.errors = err;
        e.client_errors = cerr;
        return e;
    };
    // DNS server: its clients saw 6 SERVFAIL of 10 (the server side's own view is not double-counted).
    l7->endpoints.push_back(ep("dns", "client", "10.0.0.10:53", "db.internal", 8, 6, 0));
    l7->endpoints.push_back(ep("dns", "client", "10.0.0.10:53", "a.example", 2, 0, 0));
    l7->endpoints.push_back(ep("dns", "server", "10.0.0.10:53", "db.internal", 8, 6, 0));
    // Another: 30 NXDOMAIN of 40.
    l7->endpoints.push_back(ep("dns", "client", "10.0.0.11:53", "api.svc.cluster.local", 40, 0, 30));
    // HTTP: 4 of 200 5xx (below 5%), another 20 of 100.
    l7->endpoints.push_back(ep("http", "server", "10.0.0.5:80", "/ok", 200, 4, 0));
    l7->endpoints.push_back(ep("http", "server", "10.0.0.6:8080", "/pay/{id}", 100, 20, 3));
    v.l7 = l7;
    d.run(diagSnap(0, 0, 0, 0), v);
    std::map<std::string, const netprobe::analysis::Finding*> f;
    for (const auto& x : v.diagnosis->findings) f[x.rule + " " + x.subject] = &x;
    ASSERT_TRUE(f.contains("dns_failures 10.0.0.10:53")) << v.diagnosis->findings.size();
    EXPECT_EQ(f["dns_failures 10.0.0.10:53"]->severity, "critical");
    EXPECT_EQ(f["dns_failures 10.0.0.10:53"]->evidence[0].value, 10);  // client side only
    EXPECT_EQ(f["dns_failures 10.0.0.10:53"]->evidence[3].name, "failed_name db.internal");
    ASSERT_TRUE(f.contains("dns_nxdomain 10.0.0.11:53"));
    EXPECT_NE(f["dns_nxdomain 10.0.0.11:53"]->cause.find("ndots"), std::string::npos);
    EXPECT_FALSE(f.contains("http_errors 10.0.0.5:80"));
    ASSERT_TRUE(f.contains("http_errors 10.0.0.6:8080"));
    EXPECT_EQ(f["http_errors 10.0.0.6:8080"]->severity, "warning");
    EXPECT_EQ(f.size(), 3u);
}

}  // namespace

namespace {

// The bottleneck stage's faults and the forecasts' findings become diagnosis findings
// under their own names; the informational top talkers and the duplicate listen overflow
// do not.
TEST(Diagnosis, BottleneckFaultsAndForecastsAreFindings) {
    netprobe::analysis::Diagnosis d({});
    netprobe::analysis::Views v;
    auto b = std::make_shared<netprobe::analysis::BottleneckView>();
    auto bf = [](netprobe::analysis::BottleneckKind k, std::string subject, std::string severity) {
        netprobe::analysis::BottleneckFinding f;
        f.kind = k;
        f.subject = std::move(subject);
        f.severity = std::move(severity);
        f.title = "t";
        f.evidence = {{"usage", 0.93, "ratio"}};
        f.explanation = "why";
        f.fix = {"sysctl -w net.netfilter.nf_conntrack_max=524288"};
        f.query = "q";
        return f;
    };
    using K = netprobe::analysis::BottleneckKind;
    b->findings = {bf(K::ConntrackUsage, "conntrack", "critical"), bf(K::RttHotspot, "a -> b:80", "warning"),
                   bf(K::TopTalker, "a -> b:80", "info"), bf(K::ListenOverflow, "tcp", "critical")};
    v.bottlenecks = b;
    auto fc = std::make_shared<netprobe::analysis::forecast::ForecastView>();
    netprobe::analysis::forecast::ForecastFinding ff;
    ff.kind = "capacity";
    ff.subject = "iface/eth0/rx_bytes_rate";
    ff.severity = "warning";
    ff.lead_seconds = 9 * 86400;
    ff.message = "eth0 receive reaches 80% of 10 Gbit/s in 9 days at the current trend";
    fc->findings = {ff};
    v.forecast = fc;
    d.run(diagSnap(0, 0, 0, 0), v);
    const auto& f = v.diagnosis->findings;
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(f[0].rule, "conntrack_usage");  // critical first
    EXPECT_EQ(f[0].fix[0], "sysctl -w net.netfilter.nf_conntrack_max=524288");
    EXPECT_EQ(f[0].evidence[0].value, 0.93);
    EXPECT_EQ(f[1].rule, "capacity_forecast");
    EXPECT_EQ(f[1].subject, "capacity:iface/eth0/rx_bytes_rate");
    EXPECT_EQ(f[1].evidence[0].value, 9 * 24);
    EXPECT_EQ(f[1].title, ff.message);
    EXPECT_EQ(f[2].rule, "rtt_hotspot");
    EXPECT_EQ(f[2].subject, "a -> b:80");
}

}  // namespace
