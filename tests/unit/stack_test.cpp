// Stack monitor pieces that need no BPF: drop-reason names from the running
// kernel's BTF, log2 histogram bucketing (the same function the BPF programs use),
// the /api/v1/connections document and the stack metrics' exposition.
#include <gtest/gtest.h>

#include <set>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include <netprobe/ebpf/stack_monitor.hpp>
#include <netprobe/metrics/server.hpp>
#include <netprobe/util/ip.hpp>

#include "metrics_text.hpp"
#include "promtool_check.hpp"
#include "metrics/json_api.hpp"
#include "options.hpp"

namespace {

using netprobe::ebpf::Connection;
using netprobe::ebpf::StackStats;

TEST(DropReasons, NamesComeFromTheKernelBtf) {
    if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0) GTEST_SKIP() << "kernel without BTF";
    auto names = netprobe::ebpf::dropReasonNamesFromKernelBtf();
    ASSERT_TRUE(names) << names.error().what();
    ASSERT_GT(names->size(), 10u);
    auto at = [&](std::string_view n) {
        return std::find(names->begin(), names->end(), n) - names->begin();
    };
    // The names the kernel documents; their numbers are whatever this kernel says.
    for (const char* n : {"NOT_SPECIFIED", "NO_SOCKET", "NETFILTER_DROP", "TCP_CSUM", "PKT_TOO_SMALL"})
        EXPECT_LT(static_cast<std::size_t>(at(n)), names->size()) << n;
    EXPECT_EQ(at("NOT_SPECIFIED"), 2);  // stable since 5.17: 0 = NOT_DROPPED_YET, 1 = CONSUMED
    for (const auto& n : *names) {
        EXPECT_FALSE(n.starts_with("SKB_DROP_REASON_")) << n;
        EXPECT_NE(n, "MAX");
    }
}

TEST(Histogram, Log2BucketBoundaries) {
    EXPECT_EQ(np_log2_bucket(0), 0u);
    EXPECT_EQ(np_log2_bucket(1), 0u);
    EXPECT_EQ(np_log2_bucket(2), 1u);
    EXPECT_EQ(np_log2_bucket(3), 2u);
    EXPECT_EQ(np_log2_bucket(4), 2u);
    EXPECT_EQ(np_log2_bucket(5), 3u);
    for (unsigned b = 1; b < NP_HIST_BUCKETS; ++b) {
        const std::uint64_t p = std::uint64_t{1} << b;
        EXPECT_EQ(np_log2_bucket(p), b) << p;  // v <= 2^b: bucket b (the bound is inclusive)
        EXPECT_EQ(np_log2_bucket(p - 1), b == 1 ? 0u : b) << p - 1;
        if (b + 1 < NP_HIST_BUCKETS) {
            EXPECT_EQ(np_log2_bucket(p + 1), b + 1) << p + 1;
        }
        EXPECT_LE(p, netprobe::ebpf::Log2Histogram::upperBound(np_log2_bucket(p)));
    }
    EXPECT_EQ(np_log2_bucket(std::uint64_t{1} << 40), NP_HIST_BUCKETS - 1u);
    EXPECT_EQ(np_log2_bucket(std::numeric_limits<std::uint64_t>::max()), NP_HIST_BUCKETS - 1u);
}

Connection makeConn(bool open, std::uint8_t origin, const char* src, std::uint16_t sport, const char* dst,
                    std::uint16_t dport, std::uint32_t pid) {
    Connection c;
    c.src_ip = *netprobe::util::parseAddr(src);
    c.dst_ip = *netprobe::util::parseAddr(dst);
    c.src_port = sport;
    c.dst_port = dport;
    c.family = netprobe::util::isV4Mapped(c.src_ip) ? 4 : 6;
    c.origin = origin;
    c.open = open;
    c.tcp_state = open ? 1 : 7;
    c.pid = pid;
    c.comm = pid ? "curl\xff" : "";  // a non-UTF-8 byte must not break the document
    c.cgroup_id = 77;
    c.bytes_sent = 1234;
    c.bytes_received = 99;
    c.retransmits = 3;
    c.srtt_us = 250;
    c.start = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
    c.established = c.start + std::chrono::milliseconds(2);
    if (!open) c.end = c.start + std::chrono::seconds(3);
    return c;
}

netprobe::analysis::Views viewsOf(const netprobe::collector::Snapshot& s) {
    netprobe::analysis::Views v;
    v.snapshot = std::make_shared<const netprobe::collector::Snapshot>(s);
    return v;
}

netprobe::collector::Snapshot stackSnapshot() {
    netprobe::collector::Snapshot s;
    s.sequence = 1;
    s.taken_at = std::chrono::system_clock::now();
    auto st = std::make_shared<StackStats>();
    st->features = {true, true, true, true, true, true};
    st->features.netfilter_hooks = (1u << NP_NF_HOOK_MAX) - 1;  // --netfilter-hooks=all
    st->opened_active = 5;
    st->opened_passive = 4;
    st->closed = 8;
    st->failed = 2;
    st->retransmits = 11;
    st->resets_sent = 1;
    st->tracked_open = 1;
    st->srtt_us.buckets[np_log2_bucket(250)] = 3;  // 250 us -> le 256 us
    st->srtt_us.buckets[np_log2_bucket(1000)] = 1; // 1 ms -> le 1024 us
    st->srtt_us.sum = 1750;
    st->cwnd.buckets[np_log2_bucket(10)] = 4;
    st->cwnd.sum = 40;
    st->drops = {{3, "NO_SOCKET", 6}, {12, "NETFILTER_DROP", 2}};
    st->drop_locations = {{"NO_SOCKET", "__udp4_lib_rcv+0x5c1", 6}, {"NETFILTER_DROP", "nf_hook_slow+0x9a", 2}};
    st->missed_events = {{"netprobe_sk_state", 358}};
    st->records_reconciled = 3;
    st->reconcile_runs = 9;
    st->netfilter[2][NP_NF_IPV4][NP_NF_PROTO_ICMP] = {40, 3360};
    st->connections = {makeConn(true, NP_CONN_ACTIVE, "198.18.0.1", 40000, "198.18.0.2", 80, 42),
                       makeConn(false, NP_CONN_PASSIVE, "fd6e:7072::2", 443, "fd6e:7072::1", 50000, 0)};
    s.stack = std::move(st);
    return s;
}

using netprobe::testing::samples;

TEST(StackRender, CountersHistogramsDropsHooks) {
    auto text = netprobe::metrics::renderMetrics(viewsOf(stackSnapshot()));
    auto m = samples(text);
    EXPECT_EQ(m[R"(netprobe_tcp_connections_opened_total{direction="active"})"], "5");
    EXPECT_EQ(m[R"(netprobe_tcp_connections_opened_total{direction="passive"})"], "4");
    EXPECT_EQ(m["netprobe_tcp_connections_closed_total"], "8");
    EXPECT_EQ(m["netprobe_tcp_connections_failed_total"], "2");
    EXPECT_EQ(m["netprobe_tcp_connections_active"], "1");
    EXPECT_EQ(m["netprobe_tcp_retransmits_total"], "11");
    EXPECT_EQ(m[R"(netprobe_tcp_resets_total{direction="sent"})"], "1");
    // cumulative buckets in seconds
    EXPECT_EQ(m[R"(netprobe_tcp_rtt_seconds_bucket{le="0.000128"})"], "0");
    EXPECT_EQ(m[R"(netprobe_tcp_rtt_seconds_bucket{le="0.000256"})"], "3");
    EXPECT_EQ(m[R"(netprobe_tcp_rtt_seconds_bucket{le="0.000512"})"], "3");
    EXPECT_EQ(m[R"(netprobe_tcp_rtt_seconds_bucket{le="0.001024"})"], "4");
    EXPECT_EQ(m[R"(netprobe_tcp_rtt_seconds_bucket{le="+Inf"})"], "4");
    EXPECT_EQ(m["netprobe_tcp_rtt_seconds_count"], "4");
    EXPECT_EQ(m["netprobe_tcp_rtt_seconds_sum"], "0.00175");
    EXPECT_EQ(m[R"(netprobe_tcp_cwnd_segments_bucket{le="8"})"], "0");
    EXPECT_EQ(m[R"(netprobe_tcp_cwnd_segments_bucket{le="16"})"], "4");
    EXPECT_EQ(m[R"(netprobe_packet_drops_total{reason="NO_SOCKET"})"], "6");
    EXPECT_EQ(m[R"(netprobe_packet_drops_total{reason="NETFILTER_DROP"})"], "2");
    EXPECT_EQ(m[R"(netprobe_netfilter_packets_total{hook="forward",family="ipv4",protocol="icmp"})"], "40");
    EXPECT_EQ(m[R"(netprobe_netfilter_bytes_total{hook="forward",family="ipv4",protocol="icmp"})"], "3360");
    EXPECT_EQ(m[R"(netprobe_ringbuf_reserve_failures_total{ring="conn_events"})"], "0");
    EXPECT_EQ(m[R"(netprobe_packet_drop_locations_total{reason="NO_SOCKET",location="__udp4_lib_rcv+0x5c1"})"], "6");
    EXPECT_EQ(m[R"(netprobe_bpf_missed_events_total{program="netprobe_sk_state"})"], "358");
    EXPECT_EQ(m[R"(netprobe_map_update_errors_total{map="conn_table"})"], "0");
    EXPECT_EQ(m["netprobe_tcp_connection_records_reconciled_total"], "3");
    EXPECT_EQ(m["netprobe_tcp_connection_reconcile_runs_total"], "9");
    EXPECT_EQ(m["netprobe_tcp_connection_reconcile_failures_total"], "0");
    std::size_t nf = 0;
    for (const auto& [k, v] : m)
        if (k.starts_with("netprobe_netfilter_packets_total{")) ++nf;
    EXPECT_EQ(nf, std::size_t{NP_NF_HOOK_MAX} * NP_NF_FAMILY_MAX * NP_NF_PROTO_MAX);  // bounded
}

TEST(StackRender, OnlyCountedNetfilterHooksHaveSeries) {
    auto s = stackSnapshot();
    auto st = std::make_shared<StackStats>(*s.stack);
    st->features.netfilter_hooks = (1u << 1) | (1u << 2) | (1u << 3);  // the default: input, forward, output
    s.stack = st;
    auto m = samples(netprobe::metrics::renderMetrics(viewsOf(s)));
    std::set<std::string> hooks;
    for (const auto& [k, v] : m)
        if (k.starts_with("netprobe_netfilter_packets_total{")) hooks.insert(k.substr(k.find("hook=\"") + 6, k.find("\",") - k.find("hook=\"") - 6));
    EXPECT_EQ(hooks, (std::set<std::string>{"input", "forward", "output"}));
    EXPECT_EQ(m[R"(netprobe_netfilter_packets_total{hook="forward",family="ipv4",protocol="icmp"})"], "40");
}

TEST(StackRender, PassesPromtool) {
    auto r = netprobe::testing::promtoolCheckMetrics(netprobe::metrics::renderMetrics(viewsOf(stackSnapshot())));
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "") << r.output;
}

TEST(ConnectionsJson, FieldsFiltersAndErrors) {
    using netprobe::metrics::parseConnectionQuery;
    auto connectionsJson = [](const auto&... a) { return nlohmann::json::parse(netprobe::metrics::connectionsJson(a...)); };
    const auto snap = stackSnapshot();
    auto all = connectionsJson(snap, *parseConnectionQuery({}, 100, 1000));
    ASSERT_TRUE(all["enabled"].get<bool>());
    ASSERT_EQ(all["total"], 2);
    const auto& a = all["connections"][0];
    EXPECT_EQ(a["src_ip"], "198.18.0.1");
    EXPECT_EQ(a["dst_port"], 80);
    EXPECT_EQ(a["direction"], "active");
    EXPECT_EQ(a["state"], "ESTABLISHED");
    EXPECT_EQ(a["pid"], 42);
    EXPECT_EQ(a["cgroup_id"], 77);
    EXPECT_EQ(a["bytes_sent"], 1234);
    EXPECT_EQ(a["retransmits"], 3);
    EXPECT_DOUBLE_EQ(a["rtt_seconds"].get<double>(), 250e-6);
    EXPECT_TRUE(a["end"].is_null());
    EXPECT_EQ(a["start"], "2023-11-14T22:13:20.000Z");
    const auto& p = all["connections"][1];
    EXPECT_EQ(p["src_ip"], "fd6e:7072::2");
    EXPECT_EQ(p["direction"], "passive");
    EXPECT_TRUE(p["pid"].is_null());
    EXPECT_TRUE(p["comm"].is_null());
    EXPECT_EQ(p["state"], "CLOSE");
    EXPECT_EQ(p["end"], "2023-11-14T22:13:23.000Z");
    // serializable despite the non-UTF-8 comm
    EXPECT_NO_THROW((void)all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));

    auto q = [&](netprobe::http::QueryParams params) {
        auto pq = parseConnectionQuery(params, 100, 1000);
        EXPECT_TRUE(pq) << (pq ? "" : pq.error());
        return connectionsJson(snap, *pq);
    };
    EXPECT_EQ(q({{"state", "open"}})["total"], 1);
    EXPECT_EQ(q({{"state", "closed"}})["connections"][0]["src_port"], 443);
    EXPECT_EQ(q({{"family", "6"}})["total"], 1);
    EXPECT_EQ(q({{"port", "80"}})["total"], 1);
    EXPECT_EQ(q({{"ip", "fd6e:7072::1"}})["total"], 1);
    EXPECT_EQ(q({{"pid", "42"}})["total"], 1);
    auto lim = q({{"limit", "1"}});
    EXPECT_EQ(lim["total"], 2);
    EXPECT_EQ(lim["returned"], 1);

    for (auto [k, v] : std::initializer_list<std::pair<const char*, const char*>>{
             {"state", "half"}, {"limit", "0"}, {"limit", "1001"}, {"port", "65536"}, {"ip", "x"}, {"nope", "1"},
             {"family", "5"}, {"pid", "-1"}}) {
        auto r = parseConnectionQuery({{k, v}}, 100, 1000);
        EXPECT_FALSE(r) << k << "=" << v;
        if (!r) {
            EXPECT_NE(r.error().find(k), std::string::npos) << r.error();
        }
    }

    netprobe::collector::Snapshot off;
    auto d = connectionsJson(off, *parseConnectionQuery({}, 100, 1000));
    EXPECT_FALSE(d["enabled"].get<bool>());
    EXPECT_EQ(d["connections"].size(), 0u);
}

TEST(StackOptions, SocketMonitorAndNamespace) {
    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "netprobe-agent");
        return netprobe::agent::parseOptions(static_cast<int>(args.size()), args.data(), nullptr);
    };
    auto d = parse({});
    ASSERT_TRUE(d.run);
    EXPECT_TRUE(d.options.socket_monitor);
    EXPECT_EQ(d.options.socket_netns, "");  // every namespace
    auto off = parse({"--socket-monitor=off", "--socket-netns=own"});
    ASSERT_TRUE(off.run) << off.output;
    EXPECT_FALSE(off.options.socket_monitor);
    EXPECT_EQ(off.options.socket_netns, "/proc/self/ns/net");
    auto path = parse({"--socket-netns", "/run/netns/blue"});
    ASSERT_TRUE(path.run) << path.output;
    EXPECT_EQ(path.options.socket_netns, "/run/netns/blue");
    for (const char* bad : {"--socket-monitor=maybe", "--socket-netns=blue"}) {
        auto r = parse({bad});
        EXPECT_FALSE(r.run) << bad;
        EXPECT_EQ(r.exit_code, 2) << bad;
        EXPECT_NE(r.output.find(std::string(bad).substr(0, std::string(bad).find('='))), std::string::npos) << r.output;
    }
}

}  // namespace
