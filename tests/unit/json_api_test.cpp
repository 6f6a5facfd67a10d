#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <map>
#include <string_view>
#include <vector>

#include "metrics/json_api.hpp"
#include "test_flows.hpp"

using netprobe::metrics::FlowQuery;
using netprobe::metrics::flowsJson;
using netprobe::metrics::parseFlowQuery;
using netprobe::testing::makeKey;

namespace {

netprobe::http::QueryParams P(std::initializer_list<std::pair<std::string, std::string>> l) { return {l}; }

netprobe::testing::TestState snapshotWithFlows() {
    netprobe::testing::TestState t;
    t.snap.interval_seconds = 2.0;
    t.ifnames = {{3, "veth0"}, {4, "veth1"}};
    auto add = [&](flow_key k, std::uint64_t pkts, std::uint64_t bytes, std::uint8_t flags) {
        t.flows.push_back(netprobe::testing::makeRecord(k, pkts, bytes, pkts, bytes, flags));
    };
    add(makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6, 3, NP_DIR_EGRESS), 10, 5000, 0x12);
    add(makeKey("198.18.0.2", "198.18.0.1", 53, 41000, 17, 3, NP_DIR_INGRESS), 4, 400, 0);
    add(makeKey("fd6e:7072::2", "fd6e:7072::1", 0, 0, 58, 4, NP_DIR_INGRESS), 1, 90, 0);
    return t;
}

}  // namespace

TEST(FlowQuery, DefaultsAndValidValues) {
    auto q = parseFlowQuery({}, 100, 10000);
    ASSERT_TRUE(q);
    EXPECT_EQ(q->limit, 100u);
    q = parseFlowQuery(P({{"protocol", "udp"}, {"direction", "egress"}, {"limit", "5"}, {"port", "53"},
                          {"src_ip", "fd6e:7072::1"}, {"sort", "packets"}}),
                       100, 10000);
    ASSERT_TRUE(q) << q.error();
    EXPECT_EQ(q->protocol, 17);
    EXPECT_EQ(q->direction, NP_DIR_EGRESS);
    EXPECT_EQ(q->limit, 5u);
    EXPECT_EQ(q->port, 53);
    EXPECT_EQ(q->sort, FlowQuery::Sort::Packets);
}

TEST(FlowQuery, RejectsBadValuesNamingTheParameter) {
    struct Case {
        const char* k;
        const char* v;
    } cases[] = {{"limit", "0"},      {"limit", "abc"},     {"limit", "10001"}, {"limit", "-1"},
                 {"protocol", "x"},   {"direction", "up"},  {"src_ip", "1.2.3"}, {"port", "65536"},
                 {"sort", "name"},    {"dst_port", ""},     {"bogus", "1"},     {"encap", "vxlan4"}};
    for (const auto& c : cases) {
        auto q = parseFlowQuery(P({{c.k, c.v}}), 100, 10000);
        ASSERT_FALSE(q) << c.k << "=" << c.v;
        EXPECT_NE(q.error().find(c.k), std::string::npos) << q.error();
    }
}

TEST(FlowsJson, FiltersLimitsAndShapesFlows) {
    const auto s = snapshotWithFlows().views();
    auto all = nlohmann::json::parse(flowsJson(s, *parseFlowQuery({}, 100, 10000)));
    EXPECT_EQ(all["total"], 3);
    ASSERT_EQ(all["flows"].size(), 3u);
    const auto& f = all["flows"][0];
    for (const char* field : {"src_ip", "dst_ip", "src_port", "dst_port", "protocol", "packets", "bytes", "interface",
                              "direction", "first_seen", "last_seen", "tcp_flags"})
        EXPECT_TRUE(f.contains(field)) << field;
    EXPECT_EQ(f["protocol"], "tcp");
    EXPECT_EQ(f["src_ip"], "198.18.0.1");
    EXPECT_EQ(f["direction"], "egress");
    EXPECT_EQ(f["tcp_flags"], nlohmann::json({"SYN", "ACK"}));
    EXPECT_DOUBLE_EQ(f["bytes_rate"].get<double>(), 2500.0);

    auto udp = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"protocol", "udp"}}), 100, 10000)));
    ASSERT_EQ(udp["flows"].size(), 1u);
    EXPECT_EQ(udp["flows"][0]["src_port"], 53);

    auto v6 = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"ip", "fd6e:7072::1"}}), 100, 10000)));
    ASSERT_EQ(v6["flows"].size(), 1u);
    EXPECT_EQ(v6["flows"][0]["protocol"], "icmpv6");

    auto lim = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"limit", "1"}}), 100, 10000)));
    EXPECT_EQ(lim["total"], 3);
    EXPECT_EQ(lim["returned"], 1);

    auto ifc = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"interface", "veth1"}}), 100, 10000)));
    EXPECT_EQ(ifc["total"], 1);
}

// encap: how a flow was carried (the inner flow of a tunnel packet), and encap= selects by it.
TEST(FlowsJson, EncapFieldAndFilter) {
    auto t = snapshotWithFlows();
    flow_key inner = makeKey("198.19.1.10", "198.19.2.20", 33000, 80, 6, 3, NP_DIR_EGRESS);
    inner.encap = NP_ENCAP_VXLAN;
    t.flows.push_back(netprobe::testing::makeRecord(inner, 5, 700, 5, 700, 0x12));
    flow_key gre = makeKey("198.19.1.10", "198.19.2.20", 0, 0, 1, 3, NP_DIR_EGRESS);
    gre.encap = NP_ENCAP_GRE;
    t.flows.push_back(netprobe::testing::makeRecord(gre, 1, 84, 1, 84, 0));
    const auto s = t.views();
    auto all = nlohmann::json::parse(flowsJson(s, *parseFlowQuery({}, 100, 10000)));
    ASSERT_EQ(all["total"], 5);
    std::map<std::string, int> by;
    for (const auto& f : all["flows"]) by[f["encap"].get<std::string>()]++;
    EXPECT_EQ(by, (std::map<std::string, int>{{"none", 3}, {"vxlan", 1}, {"gre", 1}}));
    auto vx = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"encap", "vxlan"}}), 100, 10000)));
    ASSERT_EQ(vx["total"], 1);
    EXPECT_EQ(vx["flows"][0]["dst_port"], 80);
    EXPECT_EQ(vx["flows"][0]["bytes"], 700);
    auto none = nlohmann::json::parse(flowsJson(s, *parseFlowQuery(P({{"encap", "none"}}), 100, 10000)));
    EXPECT_EQ(none["total"], 3);
    for (const char* name : {"none", "vxlan", "geneve", "ipip", "ip6ip6", "6in4", "4in6", "gre"}) {
        auto q = parseFlowQuery(P({{"encap", name}}), 100, 10000);
        ASSERT_TRUE(q) << name;
        EXPECT_STREQ(netprobe::ebpf::encapName(*q->encap), name);
    }
}

TEST(Json, Rfc3339IsUtcWithMilliseconds) {
    auto t = netprobe::collector::WallTime{} + std::chrono::milliseconds(1'700'000'000'123LL);
    EXPECT_EQ(netprobe::metrics::rfc3339(t), "2023-11-14T22:13:20.123Z");
}

TEST(FlowsJson, OddInterfaceNamesStayValidJson) {
    auto t = snapshotWithFlows();
    t.ifnames[0].second = std::string("we\"ird\\\n\xff\x01");
    auto doc = nlohmann::json::parse(flowsJson(t.views(), *parseFlowQuery(P({{"limit", "1"}}), 100, 10000)));
    EXPECT_EQ(doc["flows"][0]["interface"], "we\"ird\\\n\u00ff\u0001");
}

TEST(FlowsJson, EmptySnapshot) {
    auto doc = nlohmann::json::parse(flowsJson(netprobe::testing::TestState{}.views(), *parseFlowQuery({}, 100, 10000)));
    EXPECT_EQ(doc["total"], 0);
    EXPECT_TRUE(doc["flows"].empty());
}

// ---- the streamed document, byte for byte ----

namespace {

// Labels with every character class the writer escapes.
class OddLabels final : public netprobe::analysis::Attribution {
public:
    netprobe::analysis::FlowLabels flow(const flow_key& k) const override {
        netprobe::analysis::FlowLabels l;
        if (k.src_port == 40000) {
            l.src_namespace = "ns\"q";
            l.src_pod = "pod\\1\t";
            l.src_workload = "w\xc3\xa9";
            l.dst_namespace = "default";
        }
        if (k.dst_port == 53) {
            l.dst_namespace = "kube-system";
            l.dst_service = "kube-dns";
        }
        return l;
    }
    std::vector<netprobe::analysis::LocalPod> localPods() const override { return {}; }
    bool synced() const override { return true; }
};

// Four flows (IPv6 with every TCP flag, IPv4 TCP, UDP on an interface whose name needs
// escaping, ICMPv6 on an interface without a name and without times) in a snapshot
// whose clocks convert the kernel times.
netprobe::testing::TestState documentState() {
    netprobe::testing::TestState t;
    t.snap.taken_at = netprobe::collector::WallTime{} + std::chrono::nanoseconds(1'764'763'942'123'456'789LL);
    t.snap.mono = netprobe::collector::MonoTime{} + std::chrono::nanoseconds(9'000'000'000'000LL);
    t.snap.interval_seconds = 3.0;
    t.ifnames = {{3, "veth0"}, {4, std::string("we\"ird\\\n\xff\x01")}};
    auto add = [&](flow_key k, std::uint64_t p, std::uint64_t b, std::uint64_t ip, std::uint64_t ib, std::uint8_t fl,
                   std::uint64_t first, std::uint64_t last) {
        t.flows.push_back(netprobe::testing::makeRecord(k, p, b, ip, ib, fl, first, last));
    };
    add(makeKey("2001:db8::1", "2001:db8::2", 443, 51000, 6, 3, NP_DIR_EGRESS), 100, 150000, 100, 150000, 0xff,
        8'950'000'000'000, 8'999'990'000'000);
    add(makeKey("198.18.0.1", "198.18.0.2", 40000, 80, 6, 3, NP_DIR_EGRESS), 10, 5000, 7, 3500, 0x12,
        8'999'000'000'000, 8'999'876'543'210);
    flow_key udp = makeKey("10.0.0.1", "198.18.0.1", 41000, 53, 17, 4, NP_DIR_INGRESS);
    udp.encap = NP_ENCAP_VXLAN;  // the inner flow of a VXLAN packet
    add(udp, 40, 4000, 1, 100, 0, 8'990'000'000'001, 8'999'999'999'999);
    add(makeKey("fd6e:7072::2", "fd6e:7072::1", 0, 0, 58, 9, NP_DIR_INGRESS), 1, 90, 0, 0, 0, 0, 0);
    return t;
}

FlowQuery Q(std::initializer_list<std::pair<std::string, std::string>> l) { return *parseFlowQuery(P(l), 100, 10000); }

// The document as nlohmann::json builds it from the same records, written
// independently of the streaming writer: name bytes as the code points U+0000..U+00FF
// (the writer's \u00XX escapes), times converted with the snapshot.
nlohmann::json referenceDocument(const netprobe::analysis::Views& v, const std::vector<std::size_t>& order,
                                 std::size_t total, const netprobe::analysis::Attribution* attribution) {
    auto text = [](std::string_view bytes) {
        std::string utf8;
        for (unsigned char c : bytes) {
            if (c < 0x80) {
                utf8 += static_cast<char>(c);
            } else {
                utf8 += static_cast<char>(0xc0 | (c >> 6));
                utf8 += static_cast<char>(0x80 | (c & 0x3f));
            }
        }
        return nlohmann::json(utf8);
    };
    const auto& s = *v.snapshot;
    auto flows = nlohmann::json::array();
    for (std::size_t i : order) {
        const auto& f = v.flows->records[i];
        auto flags = nlohmann::json::array();
        const char* names[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
        for (int b = 0; b < 8; ++b)
            if (f.tcp_flags & (1u << b)) flags.push_back(names[b]);
        nlohmann::json j = {
            {"src_ip", netprobe::util::formatAddr(std::bit_cast<netprobe::util::Addr16>(f.key.src_ip))},
            {"dst_ip", netprobe::util::formatAddr(std::bit_cast<netprobe::util::Addr16>(f.key.dst_ip))},
            {"src_port", f.key.src_port},
            {"dst_port", f.key.dst_port},
            {"protocol", netprobe::util::protocolName(f.key.proto)},
            {"ip_version", f.key.family},
            {"encap", netprobe::ebpf::encapName(f.key.encap)},
            {"packets", f.packets},
            {"bytes", f.bytes},
            {"packets_rate", static_cast<double>(f.interval_packets) / s.interval_seconds},
            {"bytes_rate", static_cast<double>(f.interval_bytes) / s.interval_seconds},
            {"interface", text(v.flows->interfaceName(f.key.ifindex))},
            {"ifindex", f.key.ifindex},
            {"direction", netprobe::ebpf::directionName(f.key.direction)},
            {"first_seen", netprobe::metrics::rfc3339(s.wallOf(f.first_seen_ns))},
            {"last_seen", netprobe::metrics::rfc3339(s.wallOf(f.last_seen_ns))},
            {"tcp_flags", flags},
        };
        if (attribution) {
            const auto l = attribution->flow(f.key);
            const std::pair<const char*, std::string> fields[] = {
                {"src_namespace", l.src_namespace}, {"src_pod", l.src_pod},         {"src_workload", l.src_workload},
                {"dst_namespace", l.dst_namespace}, {"dst_pod", l.dst_pod},         {"dst_workload", l.dst_workload},
                {"dst_service", l.dst_service}};
            for (const auto& [name, value] : fields)
                if (!value.empty()) j[name] = text(value);
        }
        flows.push_back(std::move(j));
    }
    return {{"collected_at", netprobe::metrics::rfc3339(s.taken_at)},
            {"total", total},
            {"returned", order.size()},
            {"flows", std::move(flows)}};
}

}  // namespace

// The document of fixed records, byte for byte (member order, number formats, escapes,
// times): what the agent has answered since the writer streams the document.
TEST(FlowsJson, DocumentIsByteForByteStable) {
    const auto v = documentState().views();
    OddLabels attr;
    const std::string golden[] = {
        R"json({"collected_at":"2025-12-03T12:12:22.123Z","total":4,"returned":4,"flows":[{"src_ip":"2001:db8::1","dst_ip":"2001:db8::2","src_port":443,"dst_port":51000,"protocol":"tcp","ip_version":6,"encap":"none","packets":100,"bytes":150000,"packets_rate":33.333333333333336,"bytes_rate":50000,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:11:32.123Z","last_seen":"2025-12-03T12:12:22.113Z","tcp_flags":["FIN","SYN","RST","PSH","ACK","URG","ECE","CWR"]},{"src_ip":"198.18.0.1","dst_ip":"198.18.0.2","src_port":40000,"dst_port":80,"protocol":"tcp","ip_version":4,"encap":"none","packets":10,"bytes":5000,"packets_rate":2.3333333333333335,"bytes_rate":1166.6666666666667,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:12:21.123Z","last_seen":"2025-12-03T12:12:21.999Z","tcp_flags":["SYN","ACK"]},{"src_ip":"10.0.0.1","dst_ip":"198.18.0.1","src_port":41000,"dst_port":53,"protocol":"udp","ip_version":4,"encap":"vxlan","packets":40,"bytes":4000,"packets_rate":0.3333333333333333,"bytes_rate":33.333333333333336,"interface":"we\"ird\\\u000a\u00ff\u0001","ifindex":4,"direction":"ingress","first_seen":"2025-12-03T12:12:12.123Z","last_seen":"2025-12-03T12:12:22.123Z","tcp_flags":[]},{"src_ip":"fd6e:7072::2","dst_ip":"fd6e:7072::1","src_port":0,"dst_port":0,"protocol":"icmpv6","ip_version":6,"encap":"none","packets":1,"bytes":90,"packets_rate":0,"bytes_rate":0,"interface":"9","ifindex":9,"direction":"ingress","first_seen":"1970-01-01T00:00:00.000Z","last_seen":"1970-01-01T00:00:00.000Z","tcp_flags":[]}]})json",
        R"json({"collected_at":"2025-12-03T12:12:22.123Z","total":4,"returned":4,"flows":[{"src_ip":"2001:db8::1","dst_ip":"2001:db8::2","src_port":443,"dst_port":51000,"protocol":"tcp","ip_version":6,"encap":"none","packets":100,"bytes":150000,"packets_rate":33.333333333333336,"bytes_rate":50000,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:11:32.123Z","last_seen":"2025-12-03T12:12:22.113Z","tcp_flags":["FIN","SYN","RST","PSH","ACK","URG","ECE","CWR"]},{"src_ip":"198.18.0.1","dst_ip":"198.18.0.2","src_port":40000,"dst_port":80,"protocol":"tcp","ip_version":4,"encap":"none","packets":10,"bytes":5000,"packets_rate":2.3333333333333335,"bytes_rate":1166.6666666666667,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:12:21.123Z","last_seen":"2025-12-03T12:12:21.999Z","tcp_flags":["SYN","ACK"],"src_namespace":"ns\"q","src_pod":"pod\\1\u0009","src_workload":"w\u00c3\u00a9","dst_namespace":"default"},{"src_ip":"10.0.0.1","dst_ip":"198.18.0.1","src_port":41000,"dst_port":53,"protocol":"udp","ip_version":4,"encap":"vxlan","packets":40,"bytes":4000,"packets_rate":0.3333333333333333,"bytes_rate":33.333333333333336,"interface":"we\"ird\\\u000a\u00ff\u0001","ifindex":4,"direction":"ingress","first_seen":"2025-12-03T12:12:12.123Z","last_seen":"2025-12-03T12:12:22.123Z","tcp_flags":[],"dst_namespace":"kube-system","dst_service":"kube-dns"},{"src_ip":"fd6e:7072::2","dst_ip":"fd6e:7072::1","src_port":0,"dst_port":0,"protocol":"icmpv6","ip_version":6,"encap":"none","packets":1,"bytes":90,"packets_rate":0,"bytes_rate":0,"interface":"9","ifindex":9,"direction":"ingress","first_seen":"1970-01-01T00:00:00.000Z","last_seen":"1970-01-01T00:00:00.000Z","tcp_flags":[]}]})json",
        R"json({"collected_at":"2025-12-03T12:12:22.123Z","total":4,"returned":3,"flows":[{"src_ip":"10.0.0.1","dst_ip":"198.18.0.1","src_port":41000,"dst_port":53,"protocol":"udp","ip_version":4,"encap":"vxlan","packets":40,"bytes":4000,"packets_rate":0.3333333333333333,"bytes_rate":33.333333333333336,"interface":"we\"ird\\\u000a\u00ff\u0001","ifindex":4,"direction":"ingress","first_seen":"2025-12-03T12:12:12.123Z","last_seen":"2025-12-03T12:12:22.123Z","tcp_flags":[]},{"src_ip":"2001:db8::1","dst_ip":"2001:db8::2","src_port":443,"dst_port":51000,"protocol":"tcp","ip_version":6,"encap":"none","packets":100,"bytes":150000,"packets_rate":33.333333333333336,"bytes_rate":50000,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:11:32.123Z","last_seen":"2025-12-03T12:12:22.113Z","tcp_flags":["FIN","SYN","RST","PSH","ACK","URG","ECE","CWR"]},{"src_ip":"198.18.0.1","dst_ip":"198.18.0.2","src_port":40000,"dst_port":80,"protocol":"tcp","ip_version":4,"encap":"none","packets":10,"bytes":5000,"packets_rate":2.3333333333333335,"bytes_rate":1166.6666666666667,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:12:21.123Z","last_seen":"2025-12-03T12:12:21.999Z","tcp_flags":["SYN","ACK"]}]})json",
        R"json({"collected_at":"2025-12-03T12:12:22.123Z","total":2,"returned":2,"flows":[{"src_ip":"2001:db8::1","dst_ip":"2001:db8::2","src_port":443,"dst_port":51000,"protocol":"tcp","ip_version":6,"encap":"none","packets":100,"bytes":150000,"packets_rate":33.333333333333336,"bytes_rate":50000,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:11:32.123Z","last_seen":"2025-12-03T12:12:22.113Z","tcp_flags":["FIN","SYN","RST","PSH","ACK","URG","ECE","CWR"]},{"src_ip":"198.18.0.1","dst_ip":"198.18.0.2","src_port":40000,"dst_port":80,"protocol":"tcp","ip_version":4,"encap":"none","packets":10,"bytes":5000,"packets_rate":2.3333333333333335,"bytes_rate":1166.6666666666667,"interface":"veth0","ifindex":3,"direction":"egress","first_seen":"2025-12-03T12:12:21.123Z","last_seen":"2025-12-03T12:12:21.999Z","tcp_flags":["SYN","ACK"],"src_namespace":"ns\"q","src_pod":"pod\\1\u0009","src_workload":"w\u00c3\u00a9","dst_namespace":"default"}]})json",
        R"json({"collected_at":"2025-12-03T12:12:22.123Z","total":1,"returned":1,"flows":[{"src_ip":"10.0.0.1","dst_ip":"198.18.0.1","src_port":41000,"dst_port":53,"protocol":"udp","ip_version":4,"encap":"vxlan","packets":40,"bytes":4000,"packets_rate":0.3333333333333333,"bytes_rate":33.333333333333336,"interface":"we\"ird\\\u000a\u00ff\u0001","ifindex":4,"direction":"ingress","first_seen":"2025-12-03T12:12:12.123Z","last_seen":"2025-12-03T12:12:22.123Z","tcp_flags":[]}]})json",
    };
    EXPECT_EQ(flowsJson(v, Q({})), golden[0]);
    EXPECT_EQ(flowsJson(v, Q({}), &attr), golden[1]);
    EXPECT_EQ(flowsJson(v, Q({{"sort", "last_seen"}, {"limit", "3"}})), golden[2]);
    EXPECT_EQ(flowsJson(v, Q({{"sort", "packets"}, {"protocol", "tcp"}}), &attr), golden[3]);
    EXPECT_EQ(flowsJson(v, Q({{"sort", "rate"}, {"interface", "we\"ird\\\n\xff\x01"}})), golden[4]);
}

// The streamed document equals the one nlohmann::json builds from the same view, for
// every sort order, filters and the attribution fields (strings that need escaping
// included).
TEST(FlowsJson, StreamedDocumentEqualsTheJsonLibrarys) {
    const auto v = documentState().views();
    OddLabels attr;
    auto parsed = [](const std::string& s) { return nlohmann::json::parse(s); };
    EXPECT_EQ(parsed(flowsJson(v, Q({}))), referenceDocument(v, {0, 1, 2, 3}, 4, nullptr));
    EXPECT_EQ(parsed(flowsJson(v, Q({}), &attr)), referenceDocument(v, {0, 1, 2, 3}, 4, &attr));
    EXPECT_EQ(parsed(flowsJson(v, Q({{"sort", "last_seen"}, {"limit", "3"}}), &attr)),
              referenceDocument(v, {2, 0, 1}, 4, &attr));
    EXPECT_EQ(parsed(flowsJson(v, Q({{"sort", "packets"}}))), referenceDocument(v, {0, 2, 1, 3}, 4, nullptr));
    EXPECT_EQ(parsed(flowsJson(v, Q({{"sort", "rate"}, {"protocol", "tcp"}}), &attr)),
              referenceDocument(v, {0, 1}, 2, &attr));
    EXPECT_EQ(parsed(flowsJson(v, Q({{"interface", "we\"ird\\\n\xff\x01"}}))), referenceDocument(v, {2}, 1, nullptr));
    EXPECT_EQ(parsed(flowsJson(v, Q({{"limit", "1"}}))), referenceDocument(v, {0}, 4, nullptr));
}
