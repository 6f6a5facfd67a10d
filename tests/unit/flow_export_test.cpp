// FlowExport (records per flow and interval) and the IPFIX encoder.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <thread>

#include <netprobe/analysis/flow_export.hpp>
#include <netprobe/sinks/clickhouse.hpp>
#include <netprobe/sinks/flow_log.hpp>
#include <netprobe/sinks/ipfix.hpp>

#include <nlohmann/json.hpp>

#include "test_flows.hpp"

namespace netprobe {
namespace {

using analysis::FlowEndReason;
using analysis::FlowExport;
using analysis::FlowExportOptions;
using analysis::FlowExportRecord;
using testing::makeKey;
using testing::makeSample;

constexpr std::uint8_t kSyn = 0x02, kAck = 0x10, kFin = 0x01;

// Snapshots at t seconds on a monotonic clock starting at 1000 s.
class Stage {
public:
    explicit Stage(FlowExportOptions o = {}) : stage_(nullptr, withDefaults(o)) {}
    std::vector<FlowExportRecord> at(double t, std::vector<collector::FlowSample> samples, bool layer3 = false) {
        collector::Snapshot s = snap(t, layer3);
        s.flows = std::move(samples);
        analysis::Views v;
        stage_.run(s, v);
        health = v.exports->health;
        return v.exports->records;
    }
    std::vector<FlowExportRecord> finish(double t) {
        collector::Snapshot s = snap(t, false);
        analysis::Views v;
        stage_.finish(s, v);
        health = v.exports->health;
        return v.exports->records;
    }
    static std::uint64_t ns(double t) { return static_cast<std::uint64_t>((1000.0 + t) * 1e9); }
    analysis::FlowExportHealth health;

private:
    static FlowExportOptions withDefaults(FlowExportOptions o) { return o; }
    static collector::Snapshot snap(double t, bool layer3) {
        collector::Snapshot s;
        s.mono = collector::MonoTime(std::chrono::nanoseconds(ns(t)));
        s.taken_at = collector::WallTime(std::chrono::seconds(1'700'000'000)) +
                     std::chrono::duration_cast<collector::WallTime::duration>(std::chrono::duration<double>(t));
        collector::InterfaceStats i;
        i.name = "eth0";
        i.index = 2;
        i.layer3 = layer3;
        s.interfaces.push_back(i);
        return s;
    }
    FlowExport stage_;
};

const flow_key kClient = makeKey("198.18.0.2", "198.18.0.1", 40000, 80, 6, 2, NP_DIR_INGRESS);
const flow_key kServer = makeKey("198.18.0.1", "198.18.0.2", 80, 40000, 6, 2, NP_DIR_EGRESS);

TEST(FlowExport, BothDirectionsOfATupleAreOneBiflowForwardBeingTheOneSeenFirst) {
    Stage st;
    // The server's answer is listed first but was seen later.
    auto r = st.at(1, {makeSample(kServer, 3, 300, Stage::ns(0.2), Stage::ns(0.5), kSyn | kAck),
                       makeSample(kClient, 4, 400, Stage::ns(0.1), Stage::ns(0.6), kSyn | kAck)});
    EXPECT_TRUE(r.empty());
    r = st.at(3, {});  // quiet for 2.5 s: within the default idle timeout (15 s)
    EXPECT_TRUE(r.empty());
    r = st.finish(4);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, 40000);
    EXPECT_EQ(r[0].key.direction, NP_DIR_INGRESS);
    EXPECT_EQ(r[0].packets, 4u);
    EXPECT_EQ(r[0].bytes, 400u);
    EXPECT_EQ(r[0].rev_packets, 3u);
    EXPECT_EQ(r[0].rev_bytes, 300u);
    EXPECT_TRUE(r[0].reverse_seen);
    EXPECT_TRUE(r[0].initiator_known);
    EXPECT_EQ(r[0].reason, FlowEndReason::ForcedEnd);
    EXPECT_EQ(r[0].start_ms, 1'700'000'000'100);
    EXPECT_EQ(r[0].end_ms, 1'700'000'000'600);
}


TEST(FlowExport, SameFirstPacketTimeTakesTheDirectionTowardsTheLowerPortAsForward) {
    Stage st;
    auto r = st.at(1, {makeSample(kServer, 1, 60, Stage::ns(0.1), Stage::ns(0.1)),
                       makeSample(kClient, 1, 60, Stage::ns(0.1), Stage::ns(0.1))});
    r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.dst_port, 80);
    EXPECT_FALSE(r[0].initiator_known);
}

// A kernel aggregate of attempts (source port 0) and its refusals (destination port 0),
// created in the same tick: the attempts are the forward direction, whichever sample
// comes first (the lower port would have made port 0's end the responder).
TEST(FlowExport, KernelAggregatesOfAttemptsAreForwardOverTheirRefusals) {
    Stage st;
    const flow_key syns = makeKey("198.18.0.1", "198.18.0.2", 0, 80, 6);
    const flow_key rsts = makeKey("198.18.0.2", "198.18.0.1", 80, 0, 6, 2, NP_DIR_EGRESS);
    auto r = st.at(1, {makeSample(rsts, 100, 5400, Stage::ns(0.1), Stage::ns(0.2)),
                       makeSample(syns, 100, 6000, Stage::ns(0.1), Stage::ns(0.2))});
    r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].key.src_port, 0);
    EXPECT_EQ(r[0].key.dst_port, 80);
    EXPECT_TRUE(std::memcmp(&r[0].key.src_ip, &syns.src_ip, 16) == 0);
}

TEST(FlowExport, IdleTimeoutEndsAFlowAndItsRecordsSumToTheSamples) {
    FlowExportOptions o;
    o.idle_timeout = std::chrono::seconds(2);
    Stage st(o);
    const flow_key udp = makeKey("198.18.0.2", "198.18.0.1", 5000, 53, 17);
    std::uint64_t sent = 0;
    std::vector<FlowExportRecord> all;
    for (int t = 1; t <= 5; ++t) {
        auto r = st.at(t, {makeSample(udp, t, 100 * t, Stage::ns(t - 0.9), Stage::ns(t - 0.1))});
        sent += t;
        all.insert(all.end(), r.begin(), r.end());
    }
    EXPECT_TRUE(all.empty());
    for (int t = 6; t <= 9; ++t) {
        auto r = st.at(t, {});
        all.insert(all.end(), r.begin(), r.end());
    }
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].reason, FlowEndReason::IdleTimeout);
    EXPECT_EQ(all[0].packets, sent);
    EXPECT_EQ(all[0].bytes, 100 * sent);
    EXPECT_FALSE(all[0].reverse_seen);
    EXPECT_EQ(st.health.cached, 0u);
    EXPECT_EQ(st.health.records_total[static_cast<int>(FlowEndReason::IdleTimeout)], 1u);
}

TEST(FlowExport, ActiveTimeoutReportsLongFlowsPeriodicallyWithDeltas) {
    FlowExportOptions o;
    o.active_timeout = std::chrono::seconds(10);
    Stage st(o);
    std::vector<FlowExportRecord> all;
    std::uint64_t fwd = 0, rev = 0;
    for (int t = 1; t <= 35; ++t) {
        auto r = st.at(t, {makeSample(kClient, 2, 200, Stage::ns(t - 0.9), Stage::ns(t - 0.5), kAck),
                           makeSample(kServer, 3, 900, Stage::ns(t - 0.8), Stage::ns(t - 0.4), kAck)});
        fwd += 2;
        rev += 3;
        all.insert(all.end(), r.begin(), r.end());
    }
    ASSERT_EQ(all.size(), 3u);  // at 11, 21, 31 s
    for (const auto& r : all) {
        EXPECT_EQ(r.reason, FlowEndReason::ActiveTimeout);
        EXPECT_FALSE(r.final);
        EXPECT_EQ(r.flow_id, all[0].flow_id);
    }
    EXPECT_LE(all[0].end_ms, all[1].start_ms);  // records of one flow do not overlap
    auto last = st.finish(36);
    ASSERT_EQ(last.size(), 1u);
    all.push_back(last[0]);
    std::uint64_t p = 0, rp = 0, b = 0;
    for (const auto& r : all) p += r.packets, rp += r.rev_packets, b += r.rev_bytes;
    EXPECT_EQ(p, fwd);
    EXPECT_EQ(rp, rev);
    EXPECT_EQ(b, rev * 300);
}

TEST(FlowExport, TcpFlowEndsOneQuietCollectionAfterFinOrRst) {
    Stage st;
    auto r = st.at(1, {makeSample(kClient, 5, 500, Stage::ns(0.1), Stage::ns(0.9), kSyn | kAck | kFin),
                       makeSample(kServer, 4, 400, Stage::ns(0.2), Stage::ns(0.9), kSyn | kAck | kFin)});
    EXPECT_TRUE(r.empty());  // the last ACK may still come
    r = st.at(2, {makeSample(kClient, 1, 60, Stage::ns(1.1), Stage::ns(1.1), kSyn | kAck | kFin)});
    EXPECT_TRUE(r.empty());
    r = st.at(3, {});
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].reason, FlowEndReason::EndOfFlow);
    EXPECT_EQ(r[0].packets, 6u);
    EXPECT_EQ(r[0].rev_packets, 4u);
    EXPECT_EQ(r[0].tcp_flags, kSyn | kAck | kFin);
}

TEST(FlowExport, BeyondCapacityTheLeastRecentlySeenAreReportedAndForgotten) {
    FlowExportOptions o;
    o.max_flows = 2;
    Stage st(o);
    const auto a = makeKey("198.18.0.2", "198.18.0.1", 1, 53, 17), b = makeKey("198.18.0.3", "198.18.0.1", 1, 53, 17),
               c = makeKey("198.18.0.4", "198.18.0.1", 1, 53, 17);
    auto r = st.at(1, {makeSample(a, 1, 10, Stage::ns(0.1), Stage::ns(0.3)),
                       makeSample(b, 1, 10, Stage::ns(0.1), Stage::ns(0.1)),
                       makeSample(c, 1, 10, Stage::ns(0.1), Stage::ns(0.2))});
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].reason, FlowEndReason::LackOfResources);
    EXPECT_EQ(r[0].key.src_ip.v4m.v4, b.src_ip.v4m.v4);
    EXPECT_EQ(st.health.cached, 2u);
    EXPECT_EQ(st.finish(2).size(), 2u);
}

TEST(FlowExport, IpBytesLeaveOutTheLinkLayerHeaderOnlyWhereThereIsOne) {
    Stage st;
    const auto udp = makeKey("198.18.0.2", "198.18.0.1", 5000, 53, 17);
    st.at(1, {makeSample(udp, 10, 10 * (14 + 128), Stage::ns(0.1), Stage::ns(0.2))});
    auto r = st.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].ipBytes(), 10u * 128);
    Stage l3;
    l3.at(1, {makeSample(udp, 10, 10 * 128, Stage::ns(0.1), Stage::ns(0.2))}, true);
    r = l3.finish(2);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].link_header_bytes, 0);
    EXPECT_EQ(r[0].ipBytes(), 10u * 128);
}

// ---- IPFIX encoding ----

std::uint16_t be16(const std::vector<std::uint8_t>& m, std::size_t at) {
    return static_cast<std::uint16_t>(m[at] << 8 | m[at + 1]);
}
std::uint32_t be32(const std::vector<std::uint8_t>& m, std::size_t at) {
    return static_cast<std::uint32_t>(be16(m, at)) << 16 | be16(m, at + 2);
}

struct FieldSpec {
    std::uint16_t id;
    std::uint16_t length;
    std::uint32_t pen;
};

// Parses the templates message: template id -> fields (and checks the framing).
std::map<std::uint16_t, std::vector<FieldSpec>> parseTemplates(const std::vector<std::uint8_t>& m) {
    std::map<std::uint16_t, std::vector<FieldSpec>> out;
    EXPECT_EQ(be16(m, 0), 10);
    EXPECT_EQ(be16(m, 2), m.size());
    std::size_t off = 16;
    while (off < m.size()) {
        const auto set = be16(m, off), len = be16(m, off + 2);
        EXPECT_TRUE(set == 2 || set == 3);
        std::size_t p = off + 4;
        while (p < off + len) {
            const auto id = be16(m, p), count = be16(m, p + 2);
            p += 4;
            if (set == 3) p += 2;  // scope field count
            for (int i = 0; i < count; ++i) {
                FieldSpec f{static_cast<std::uint16_t>(be16(m, p) & 0x7fff), be16(m, p + 2), 0};
                const bool ent = be16(m, p) & 0x8000;
                p += 4;
                if (ent) f.pen = be32(m, p), p += 4;
                out[id].push_back(f);
            }
        }
        EXPECT_EQ(p, off + len);
        off += len;
    }
    EXPECT_EQ(off, m.size());
    return out;
}

// Decodes the data records of a message with the templates: per record, field (pen, id)
// -> bytes (all occurrences in order).
using Decoded = std::vector<std::multimap<std::pair<std::uint32_t, std::uint16_t>, std::vector<std::uint8_t>>>;
Decoded decodeData(const std::vector<std::uint8_t>& m, const std::map<std::uint16_t, std::vector<FieldSpec>>& t) {
    Decoded out;
    EXPECT_EQ(be16(m, 2), m.size());
    std::size_t off = 16;
    while (off < m.size()) {
        const auto set = be16(m, off), len = be16(m, off + 2);
        const auto& fields = t.at(set);
        std::size_t p = off + 4;
        while (p < off + len) {
            auto& rec = out.emplace_back();
            for (const auto& f : fields) {
                std::size_t n = f.length;
                if (n == 65535) {
                    n = m[p++];
                    if (n == 255) n = be16(m, p), p += 2;
                }
                rec.emplace(std::pair{f.pen, f.id}, std::vector<std::uint8_t>(m.begin() + p, m.begin() + p + n));
                p += n;
            }
        }
        EXPECT_EQ(p, off + len);
        off += len;
    }
    return out;
}

std::uint64_t num(const std::vector<std::uint8_t>& b) {
    std::uint64_t v = 0;
    for (auto x : b) v = v << 8 | x;
    return v;
}

FlowExportRecord biflowRecord(std::uint64_t id) {
    FlowExportRecord r;
    r.key = kClient;
    r.flow_id = id;
    r.start_ms = 1'700'000'000'100;
    r.end_ms = 1'700'000'000'600;
    r.packets = 4;
    r.bytes = 4 * 114;
    r.rev_packets = 3;
    r.rev_bytes = 3 * 214;
    r.tcp_flags = kSyn | kAck;
    r.rev_tcp_flags = kSyn | kAck | kFin;
    r.reverse_seen = true;
    r.initiator_known = true;
    r.reason = FlowEndReason::EndOfFlow;
    r.interface = "veth0";
    r.labels.src_namespace = "shop";
    r.labels.src_pod = "web-1";
    r.labels.dst_service = std::string(300, 's');  // a long string: 3-byte length
    r.src_container = "abc123";
    return r;
}

TEST(Ipfix, TemplatesDescribeBiflowsWithReverseElementsAndEnterpriseStrings) {
    sinks::ipfix::Encoder enc({});
    auto t = parseTemplates(enc.templates(1).bytes);
    ASSERT_TRUE(t.count(256) && t.count(257) && t.count(300));
    auto has = [&](std::uint16_t tid, std::uint32_t pen, std::uint16_t id) {
        for (const auto& f : t[tid])
            if (f.pen == pen && f.id == id) return true;
        return false;
    };
    EXPECT_TRUE(has(256, 0, 8) && has(257, 0, 27));
    EXPECT_TRUE(has(256, 29305, 1) && has(256, 29305, 2));  // reverse octets and packets
    EXPECT_TRUE(has(256, 32473, 1) && has(256, 32473, 10));  // pod namespace ... node name
    sinks::ipfix::EncoderOptions uni;
    uni.biflow = false;
    sinks::ipfix::Encoder e2(uni);
    auto t2 = parseTemplates(e2.templates(1).bytes);
    ASSERT_TRUE(t2.count(258) && t2.count(259));
    for (const auto& f : t2[258]) EXPECT_NE(f.pen, 29305u);
}

TEST(Ipfix, BiflowRecordsRoundTripThroughTheTemplates) {
    sinks::ipfix::EncoderOptions o;
    o.node = "node-1";
    sinks::ipfix::Encoder enc(o);
    const auto t = parseTemplates(enc.templates(1).bytes);
    std::vector<FlowExportRecord> recs{biflowRecord(7)};
    auto msgs = enc.data(recs, 1);
    ASSERT_EQ(msgs.size(), 1u);
    auto d = decodeData(msgs[0].bytes, t);
    ASSERT_EQ(d.size(), 1u);
    auto get = [&](std::uint32_t pen, std::uint16_t id) { return d[0].find({pen, id})->second; };
    EXPECT_EQ(num(get(0, 7)), 40000u);
    EXPECT_EQ(num(get(0, 11)), 80u);
    EXPECT_EQ(num(get(0, 2)), 4u);
    EXPECT_EQ(num(get(0, 1)), 4u * 100);  // IP octets
    EXPECT_EQ(num(get(0, 352)), 4u * 114);
    EXPECT_EQ(num(get(29305, 2)), 3u);
    EXPECT_EQ(num(get(29305, 1)), 3u * 200);
    EXPECT_EQ(num(get(0, 136)), 3u);  // end of flow
    EXPECT_EQ(num(get(0, 148)), 7u);
    EXPECT_EQ(num(get(0, 152)), 1'700'000'000'100u);
    EXPECT_EQ(num(get(0, 10)), 2u);  // ingress interface
    auto str = [](const std::vector<std::uint8_t>& b) { return std::string(b.begin(), b.end()); };
    EXPECT_EQ(str(get(0, 82)), "veth0");
    EXPECT_EQ(str(get(32473, 1)), "shop");
    EXPECT_EQ(str(get(32473, 7)), std::string(300, 's'));
    EXPECT_EQ(str(get(32473, 8)), "abc123");
    EXPECT_EQ(str(get(32473, 10)), "node-1");
    EXPECT_EQ(enc.sequence(), 1u);
}

TEST(Ipfix, WithoutBiflowsEachDirectionIsItsOwnRecordSwapped) {
    sinks::ipfix::EncoderOptions o;
    o.biflow = false;
    sinks::ipfix::Encoder enc(o);
    const auto t = parseTemplates(enc.templates(1).bytes);
    std::vector<FlowExportRecord> recs{biflowRecord(1)};
    auto msgs = enc.data(recs, 1);
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].count, 1u);
    EXPECT_EQ(msgs[0].data_records, 2u);
    auto d = decodeData(msgs[0].bytes, t);
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(num(d[1].find({0, 7})->second), 80u);  // the reverse: from the server
    EXPECT_EQ(num(d[1].find({0, 2})->second), 3u);
    EXPECT_EQ(num(d[1].find({0, 1})->second), 600u);
    EXPECT_EQ(num(d[1].find({0, 61})->second), 1u);  // egress, the other way
    EXPECT_EQ(num(d[1].find({0, 14})->second), 2u);
    EXPECT_EQ(enc.sequence(), 2u);
}

TEST(Ipfix, MessagesStayWithinTheSizeAndSequenceNumbersCountDataRecords) {
    sinks::ipfix::EncoderOptions o;
    o.max_message = 1400;
    sinks::ipfix::Encoder enc(o);
    const auto t = parseTemplates(enc.templates(1).bytes);
    std::vector<FlowExportRecord> recs;
    for (int i = 0; i < 100; ++i) {
        auto r = biflowRecord(i);
        r.labels = {};
        if (i % 3 == 0) r.key = makeKey("fd6e:7072::2", "fd6e:7072::1", 1000 + i, 443, 6);
        recs.push_back(r);
    }
    auto msgs = enc.data(recs, 1);
    std::uint32_t seq = 0;
    std::size_t covered = 0, decoded = 0;
    for (const auto& m : msgs) {
        EXPECT_LE(m.bytes.size(), 1400u);
        EXPECT_EQ(be32(m.bytes, 8), seq);
        EXPECT_EQ(m.first, covered);
        seq += m.data_records;
        covered += m.count;
        decoded += decodeData(m.bytes, t).size();
    }
    EXPECT_EQ(covered, 100u);
    EXPECT_EQ(decoded, 100u);
    EXPECT_EQ(enc.sequence(), seq);
    auto stats = enc.stats({5, 6, 7, 8, 9}, 1);
    auto sd = decodeData(stats.bytes, t);
    ASSERT_EQ(sd.size(), 1u);
    EXPECT_EQ(num(sd[0].find({0, 42})->second), 7u);
}

TEST(Ipfix, CollectorSpecs) {
    auto c = sinks::ipfix::parseCollector("198.18.0.1:4739");
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->tcp);
    EXPECT_TRUE(c->encoder.biflow);
    EXPECT_EQ(c->encoder.max_message, 1400u);
    c = sinks::ipfix::parseCollector("[fd6e:7072::1]:2055,transport=tcp,biflow=off,domain=7,template-refresh=30s");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->host, "fd6e:7072::1");
    EXPECT_TRUE(c->tcp);
    EXPECT_FALSE(c->encoder.biflow);
    EXPECT_EQ(c->encoder.observation_domain, 7u);
    EXPECT_EQ(c->template_refresh, std::chrono::seconds(30));
    EXPECT_EQ(c->target(), "[fd6e:7072::1]:2055/tcp");
    for (const char* bad : {"", "host", "host:0", "host:70000", ":4739", "fd6e::1:4739", "h:1,transport=sctp",
                            "h:1,biflow=yes", "h:1,mtu=100", "h:1,bogus=1", "h:1,domain", "[::1]4739"}) {
        auto r = sinks::ipfix::parseCollector(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_NE(r.error().what().find("--ipfix-collector"), std::string::npos);
        }
    }
    // A URL is not taken for an IPv6 address without brackets
    auto url = sinks::ipfix::parseCollector("udp://198.18.0.1:4739");
    ASSERT_FALSE(url);
    EXPECT_NE(url.error().what().find("no URL scheme"), std::string::npos) << url.error().what();
}

// The inner flow of tunnel packets (encap) is a flow of its own, not one direction of the
// plain flow of the same tuple on the same interface, and its bytes are IP datagrams.
TEST(FlowExport, InnerFlowsOfTunnelPacketsAreTheirOwnRecordsOfIpBytes) {
    Stage st;
    flow_key inner = kClient;
    inner.encap = NP_ENCAP_VXLAN;
    flow_key inner_reply = kServer;
    inner_reply.encap = NP_ENCAP_VXLAN;
    auto r = st.at(1, {makeSample(kClient, 2, 200, Stage::ns(0.1), Stage::ns(0.2)),
                       makeSample(inner, 3, 180, Stage::ns(0.1), Stage::ns(0.3)),
                       makeSample(inner_reply, 1, 40, Stage::ns(0.2), Stage::ns(0.2))});
    r = st.finish(2);
    ASSERT_EQ(r.size(), 2u);
    std::sort(r.begin(), r.end(), [](const auto& a, const auto& b) { return a.key.encap < b.key.encap; });
    EXPECT_EQ(r[0].key.encap, NP_ENCAP_NONE);
    EXPECT_EQ(r[0].packets, 2u);
    EXPECT_FALSE(r[0].reverse_seen);
    EXPECT_EQ(r[0].ipBytes(), 200u - 2 * 14);
    EXPECT_EQ(r[1].key.encap, NP_ENCAP_VXLAN);
    EXPECT_EQ(r[1].packets, 3u);
    EXPECT_EQ(r[1].rev_packets, 1u);
    EXPECT_EQ(r[1].link_header_bytes, 0);
    EXPECT_EQ(r[1].ipBytes(), 180u);
    EXPECT_EQ(r[1].revIpBytes(), 40u);
    auto j = nlohmann::json::parse(sinks::flowRecordJson(r[1], "node-1"));
    EXPECT_EQ(j["encap"], "vxlan");
    EXPECT_EQ(j["ip_bytes"], 180);
    EXPECT_EQ(nlohmann::json::parse(sinks::flowRecordJson(r[0], "node-1"))["encap"], "none");
}

TEST(FlowLog, OneJsonObjectPerRecordWithIpBytesAndLabels) {
    auto j = nlohmann::json::parse(sinks::flowRecordJson(biflowRecord(3), "node-1"));
    EXPECT_EQ(j["flow_id"], 3);
    EXPECT_EQ(j["src_ip"], "198.18.0.2");
    EXPECT_EQ(j["dst_port"], 80);
    EXPECT_EQ(j["protocol"], "tcp");
    EXPECT_EQ(j["ip_bytes"], 400);
    EXPECT_EQ(j["rev_ip_bytes"], 600);
    EXPECT_EQ(j["end_reason"], "end_of_flow");
    EXPECT_EQ(j["start"], "2023-11-14T22:13:20.100Z");
    EXPECT_EQ(j["src_namespace"], "shop");
    EXPECT_EQ(j["rev_tcp_flags"], nlohmann::json({"FIN", "SYN", "ACK"}));
    EXPECT_FALSE(j.contains("dst_pod"));
}

TEST(ClickHouse, Specs) {
    auto c = sinks::parseClickHouse("http://clickhouse.netprobe.svc:8123");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->database, "netprobe");
    EXPECT_EQ(c->batch, 50000u);
    c = sinks::parseClickHouse(
        "https://ch:8443,database=flows_db,batch=1000,flush=2s,retention=3d,retention-1m=14d,retention-1h=2000h,"
        "spool-max=64MiB,queue=5000");
    ASSERT_TRUE(c) << c.error().what();
    EXPECT_EQ(c->url, "https://ch:8443");
    EXPECT_EQ(c->database, "flows_db");
    EXPECT_EQ(c->batch, 1000u);
    EXPECT_EQ(c->flush, std::chrono::seconds(2));
    EXPECT_EQ(c->retention, std::chrono::hours(72));
    EXPECT_EQ(c->retention_1m, std::chrono::hours(24 * 14));
    EXPECT_EQ(c->spool_max_bytes, 64ull << 20);
    for (const char* bad : {"", "ch:8123", "ftp://ch", "http://", "http://ch:8123/netprobe", "http://u:p@ch:8123",
                            "http://ch,database=a-b", "http://ch,database=", "http://ch,batch=0", "http://ch,flush=1ms",
                            "http://ch,retention=1h", "http://ch,retention-1h=24h", "http://ch,spool-max=10k",
                            "http://ch,nope=1", "http://ch,batch"}) {
        auto r = sinks::parseClickHouse(bad);
        EXPECT_FALSE(r) << bad;
    }
}

TEST(ClickHouse, VersionDecidesTheSchema) {
    auto v18 = sinks::parseClickHouseVersion("18.16.1\n");
    ASSERT_TRUE(v18);
    EXPECT_EQ(v18->major, 18);
    EXPECT_EQ(v18->minor, 16);
    EXPECT_FALSE(sinks::parseClickHouseVersion("Code: 516"));
    auto v24 = sinks::parseClickHouseVersion("24.8.4.13");
    ASSERT_TRUE(v24);
    sinks::ClickHouseConfig c;
    auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += x + ";\n";
        return s;
    };
    const std::string old = join(sinks::clickHouseSchema(c, *v18)), now = join(sinks::clickHouseSchema(c, *v24));
    EXPECT_EQ(old.find("LowCardinality"), std::string::npos);
    EXPECT_EQ(old.find("TTL"), std::string::npos);
    EXPECT_EQ(old.find("CODEC"), std::string::npos);
    EXPECT_NE(old.find("ReplacingMergeTree"), std::string::npos);
    EXPECT_NE(old.find("ORDER BY (time_received, node, batch_id, seq)"), std::string::npos);
    EXPECT_NE(old.find("CREATE MATERIALIZED VIEW IF NOT EXISTS netprobe.flows_1m_mv TO netprobe.flows_1m"),
              std::string::npos);
    EXPECT_NE(now.find("LowCardinality(String)"), std::string::npos);
    EXPECT_NE(now.find("TTL time_received + INTERVAL 7 DAY"), std::string::npos);
    EXPECT_NE(now.find("TTL t + INTERVAL 365 DAY"), std::string::npos);
    EXPECT_NE(now.find("CODEC("), std::string::npos);
}

TEST(ClickHouse, SeriesTablesAndRows) {
    auto c = sinks::parseClickHouse("http://ch:8123,series=off");
    ASSERT_TRUE(c);
    EXPECT_FALSE(c->series);
    EXPECT_TRUE(sinks::parseClickHouse("http://ch:8123")->series);
    EXPECT_FALSE(sinks::parseClickHouse("http://ch:8123,series=yes"));
    std::string ddl;
    for (const auto& x : sinks::clickHouseSchema(*c, *sinks::parseClickHouseVersion("18.16.1"))) ddl += x + ";\n";
    EXPECT_NE(ddl.find("CREATE TABLE IF NOT EXISTS netprobe.series (\n  t DateTime,"), std::string::npos) << ddl;
    EXPECT_NE(ddl.find("ORDER BY (series, t, node, batch_id, seq)"), std::string::npos);
    EXPECT_NE(ddl.find("v_min AggregateFunction(min, Float64)"), std::string::npos);
    EXPECT_NE(ddl.find("CREATE MATERIALIZED VIEW IF NOT EXISTS netprobe.series_1h_mv TO netprobe.series_1h"),
              std::string::npos);
    EXPECT_EQ(ddl.find("TTL"), std::string::npos);
    std::string ddl24;
    for (const auto& x : sinks::clickHouseSchema(*c, *sinks::parseClickHouseVersion("24.8"))) ddl24 += x + ";\n";
    EXPECT_NE(ddl24.find("series LowCardinality(String)"), std::string::npos);
    EXPECT_NE(ddl24.find("TTL t + INTERVAL 30 DAY"), std::string::npos);  // minutes: retention-1m

    // the minute floored; values as the shortest text that reads back exactly
    history::Point p{"iface/veth\"0/rx_bytes_rate", 1'800'000'119, 1234.5678, 2, 0.1, 1e300};
    auto j = nlohmann::json::parse(sinks::clickHouseSeriesRow(p, "node-1", 42, 3));
    EXPECT_EQ(j["t"], 1'800'000'060);
    EXPECT_EQ(j["series"], "iface/veth\"0/rx_bytes_rate");
    EXPECT_EQ(j["node"], "node-1");
    EXPECT_EQ(j["batch_id"], 42);
    EXPECT_EQ(j["seq"], 3);
    EXPECT_EQ(j["v_sum"].get<double>(), 1234.5678);
    EXPECT_EQ(j["v_count"].get<double>(), 2.0);
    EXPECT_EQ(j["v_min"].get<double>(), 0.1);
    EXPECT_EQ(j["v_max"].get<double>(), 1e300);
}

TEST(ClickHouse, RowCarriesBatchAndIpAndFrameBytes) {
    auto j = nlohmann::json::parse(sinks::clickHouseRow(biflowRecord(9), "node-1", 0xabc00000001ull, 7, 1'800'000'000));
    EXPECT_EQ(j["time_received"], 1'800'000'000);
    EXPECT_EQ(j["batch_id"], 0xabc00000001ull);
    EXPECT_EQ(j["seq"], 7);
    EXPECT_EQ(j["bytes"], 400);
    EXPECT_EQ(j["l2_bytes"], 456);
    EXPECT_EQ(j["rev_bytes"], 600);
    EXPECT_EQ(j["protocol"], 6);
    EXPECT_EQ(j["src_addr"], "198.18.0.2");
    EXPECT_EQ(j["dst_service"], std::string(300, 's'));
    EXPECT_EQ(j["end_reason"], "end_of_flow");
}

std::string tempDir(const char* name) {
    auto d = std::filesystem::temp_directory_path() / (std::string("np-unit-") + name + "-" + std::to_string(getpid()));
    std::filesystem::remove_all(d);
    std::filesystem::create_directories(d);
    return d.string();
}

std::size_t lines(const std::string& path) {
    std::ifstream f(path);
    std::size_t n = 0;
    for (std::string l; std::getline(f, l);) ++n;
    return n;
}

TEST(FlowLog, RotatesBySizeKeepingMaxFilesAndLosingNothingBetweenThem) {
    const auto dir = tempDir("flowlog");
    const std::string path = dir + "/flows.jsonl";
    auto log = sinks::FlowLog::start({path, 4096, 3, 1000}, "node-1");
    ASSERT_TRUE(log) << log.error().what();
    analysis::FlowExportView v;
    for (int i = 0; i < 10; ++i) v.records.push_back(biflowRecord(i));  // ~560 bytes each
    (*log)->offer(v);
    (*log)->drain(std::chrono::seconds(5));
    auto st = (*log)->status();
    EXPECT_EQ(st.records_sent, 10u);
    EXPECT_GE(st.connects_total, 1u);  // rotations: ten ~800-byte lines do not fit 4096 bytes
    std::size_t total = 0;
    for (const auto& f : {path, path + ".1", path + ".2", path + ".3"}) {
        total += lines(f);
        if (std::filesystem::exists(f)) {
            EXPECT_LE(std::filesystem::file_size(f), 4096u) << f;
        }
    }
    EXPECT_EQ(total, 10u);
    // Many more: at most 3 rotated files, the oldest gone.
    auto log2 = sinks::FlowLog::start({path, 4096, 3, 1000}, "node-1");
    ASSERT_TRUE(log2);
    for (int k = 0; k < 5; ++k) (*log2)->offer(v);
    (*log2)->drain(std::chrono::seconds(5));
    EXPECT_TRUE(std::filesystem::exists(path + ".3"));
    EXPECT_FALSE(std::filesystem::exists(path + ".4"));
    EXPECT_EQ((*log2)->status().records_dropped_queue, 0u);
    std::filesystem::remove_all(dir);
}

TEST(FlowLog, AnUnwritablePathIsAnErrorAtStart) {
    auto log = sinks::FlowLog::start({"/proc/np-no-such-dir/flows.jsonl", 1 << 20, 1, 10}, "n");
    ASSERT_FALSE(log);
    EXPECT_NE(log.error().what().find("--flow-log"), std::string::npos);
}

// A TCP port on loopback that refuses connections (bound, never listening).
struct ClosedPort {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    std::uint16_t port = 0;
    ClosedPort() {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~ClosedPort() { ::close(fd); }
};

TEST(ClickHouse, ServerAwayTheSpoolFillsToItsBoundDroppingOldestAndSurvivesARestart) {
    ClosedPort closed;
    const auto dir = tempDir("chspool");
    auto cfg = sinks::parseClickHouse("http://127.0.0.1:" + std::to_string(closed.port) +
                                      ",batch=500,flush=100ms,spool-max=1MiB");
    ASSERT_TRUE(cfg);
    cfg->spool_dir = dir;
    auto sink = sinks::ClickHouseSink::start(*cfg);
    ASSERT_TRUE(sink) << sink.error().what();
    analysis::FlowExportView v;
    for (int i = 0; i < 500; ++i) v.records.push_back(biflowRecord(i));  // ~700 bytes per row
    for (int k = 0; k < 8; ++k) {  // 4000 records, ~2.8 MB of rows: beyond 1 MiB
        (*sink)->offer(v);
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    (*sink)->drain(std::chrono::milliseconds(500));
    auto st = (*sink)->status();
    EXPECT_FALSE(st.up);
    EXPECT_GE(st.errors_total, 1u);
    EXPECT_LE(st.spool_bytes, 1u << 20);
    EXPECT_GT(st.records_dropped_spool, 0u);
    EXPECT_EQ(st.records_dropped_spool % 500, 0u);  // whole batches, the oldest
    EXPECT_EQ(st.records_dropped_spool + st.spool_batches * 500, 4000u);
    EXPECT_EQ(st.records_sent, 0u);
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.path().extension() == ".jsonl";
    EXPECT_EQ(files, st.spool_batches);
    // The next run finds them.
    auto again = sinks::ClickHouseSink::start(*cfg);
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)->status().spool_batches, st.spool_batches);
    (*again)->drain(std::chrono::milliseconds(0));
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace netprobe
