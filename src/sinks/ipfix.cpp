#include "netprobe/sinks/ipfix.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace netprobe::sinks::ipfix {

namespace {

constexpr std::uint16_t kTemplateSetId = 2;
constexpr std::uint16_t kOptionsTemplateSetId = 3;
constexpr std::uint16_t kVarLen = 65535;

// Standard information elements (IANA IPFIX registry).
enum Ie : std::uint16_t {
    octetDeltaCount = 1,
    packetDeltaCount = 2,
    protocolIdentifier = 4,
    tcpControlBits = 6,
    sourceTransportPort = 7,
    sourceIPv4Address = 8,
    ingressInterface = 10,
    destinationTransportPort = 11,
    destinationIPv4Address = 12,
    egressInterface = 14,
    sourceIPv6Address = 27,
    destinationIPv6Address = 28,
    exportedOctetTotalCount = 40,
    exportedMessageTotalCount = 41,
    exportedFlowRecordTotalCount = 42,
    flowDirection = 61,
    interfaceName = 82,
    flowEndReason = 136,
    flowId = 148,
    observationDomainId = 149,
    flowStartMilliseconds = 152,
    flowEndMilliseconds = 153,
    systemInitTimeMilliseconds = 160,
    notSentFlowTotalCount = 166,
    biflowDirection = 239,
    layer2OctetDeltaCount = 352,
};

struct Field {
    std::uint16_t id;
    std::uint16_t length;
    std::uint32_t pen;  // 0: IANA
};

void put8(std::vector<std::uint8_t>& m, std::uint8_t v) { m.push_back(v); }
void put16(std::vector<std::uint8_t>& m, std::uint16_t v) {
    m.push_back(static_cast<std::uint8_t>(v >> 8));
    m.push_back(static_cast<std::uint8_t>(v));
}
void put32(std::vector<std::uint8_t>& m, std::uint32_t v) {
    put16(m, static_cast<std::uint16_t>(v >> 16));
    put16(m, static_cast<std::uint16_t>(v));
}
void put64(std::vector<std::uint8_t>& m, std::uint64_t v) {
    put32(m, static_cast<std::uint32_t>(v >> 32));
    put32(m, static_cast<std::uint32_t>(v));
}
void set16(std::vector<std::uint8_t>& m, std::size_t at, std::uint16_t v) {
    m[at] = static_cast<std::uint8_t>(v >> 8);
    m[at + 1] = static_cast<std::uint8_t>(v);
}
// RFC 7011 7: one length byte below 255, else 255 and two bytes. Strings are names
// (Kubernetes names are at most 253 bytes) and ids: longer ones are cut at 1024 bytes.
void putString(std::vector<std::uint8_t>& m, std::string_view s) {
    s = s.substr(0, 1024);
    if (s.size() < 255) {
        put8(m, static_cast<std::uint8_t>(s.size()));
    } else {
        put8(m, 255);
        put16(m, static_cast<std::uint16_t>(s.size()));
    }
    m.insert(m.end(), s.begin(), s.end());
}

// The data templates: the fields in the order the records carry them.
std::vector<Field> dataFields(bool v6, bool biflow, std::uint32_t pen) {
    std::vector<Field> f = {
        {v6 ? sourceIPv6Address : sourceIPv4Address, static_cast<std::uint16_t>(v6 ? 16 : 4), 0},
        {v6 ? destinationIPv6Address : destinationIPv4Address, static_cast<std::uint16_t>(v6 ? 16 : 4), 0},
        {sourceTransportPort, 2, 0},
        {destinationTransportPort, 2, 0},
        {protocolIdentifier, 1, 0},
        {tcpControlBits, 2, 0},
        {octetDeltaCount, 8, 0},
        {packetDeltaCount, 8, 0},
        {layer2OctetDeltaCount, 8, 0},
        {flowStartMilliseconds, 8, 0},
        {flowEndMilliseconds, 8, 0},
        {ingressInterface, 4, 0},
        {egressInterface, 4, 0},
        {flowDirection, 1, 0},
        {flowEndReason, 1, 0},
        {flowId, 8, 0},
    };
    if (biflow) {
        f.push_back({biflowDirection, 1, 0});
        f.push_back({octetDeltaCount, 8, kReversePen});
        f.push_back({packetDeltaCount, 8, kReversePen});
        f.push_back({layer2OctetDeltaCount, 8, kReversePen});
        f.push_back({tcpControlBits, 2, kReversePen});
    }
    f.push_back({interfaceName, kVarLen, 0});
    for (auto e : {NetprobeIe::SourcePodNamespace, NetprobeIe::SourcePodName, NetprobeIe::SourceWorkload,
                   NetprobeIe::DestinationPodNamespace, NetprobeIe::DestinationPodName, NetprobeIe::DestinationWorkload,
                   NetprobeIe::DestinationServiceName, NetprobeIe::SourceContainerId, NetprobeIe::DestinationContainerId,
                   NetprobeIe::NodeName, NetprobeIe::L7Protocol})
        f.push_back({static_cast<std::uint16_t>(e), kVarLen, pen});
    f.push_back({static_cast<std::uint16_t>(NetprobeIe::L7Side), 1, pen});
    for (auto e : {NetprobeIe::L7RequestDeltaCount, NetprobeIe::L7ErrorDeltaCount, NetprobeIe::L7ClientErrorDeltaCount,
                   NetprobeIe::L7LatencySumMicroseconds})
        f.push_back({static_cast<std::uint16_t>(e), 8, pen});
    f.push_back({static_cast<std::uint16_t>(NetprobeIe::L7LatencyMaxMicroseconds), 4, pen});
    f.push_back({static_cast<std::uint16_t>(NetprobeIe::NetworkPolicyVerdict), 1, pen});
    return f;
}

void putTemplate(std::vector<std::uint8_t>& m, std::uint16_t id, const std::vector<Field>& fields, int scope_count) {
    put16(m, id);
    put16(m, static_cast<std::uint16_t>(fields.size()));
    if (scope_count >= 0) put16(m, static_cast<std::uint16_t>(scope_count));
    for (const auto& f : fields) {
        put16(m, static_cast<std::uint16_t>(f.id | (f.pen ? 0x8000 : 0)));
        put16(m, f.length);
        if (f.pen) put32(m, f.pen);
    }
}

std::vector<Field> statsFields() {
    return {
        {observationDomainId, 4, 0},  // scope
        {exportedMessageTotalCount, 8, 0},
        {exportedOctetTotalCount, 8, 0},
        {exportedFlowRecordTotalCount, 8, 0},
        {notSentFlowTotalCount, 8, 0},
        {systemInitTimeMilliseconds, 8, 0},
    };
}

// One direction of a record as an IPFIX data record (a unidirectional template, or the
// forward part of a biflow one).
struct Side {
    const np_addr* src;
    const np_addr* dst;
    std::uint16_t sport, dport;
    std::uint64_t packets, bytes, l2bytes;
    std::uint8_t flags;
    std::uint8_t direction;  // np_direction: 0 ingress, 1 egress
    const std::string *src_ns, *src_pod, *src_wl, *dst_ns, *dst_pod, *dst_wl, *dst_svc, *src_ctr, *dst_ctr;
    bool l7 = true;  // carries the record's L7 figures (without biflows: one of the two records)
};

void putRecord(std::vector<std::uint8_t>& m, const analysis::FlowExportRecord& r, const Side& s, bool v6,
               const analysis::FlowExportRecord* biflow, const std::string& node) {
    if (v6) {
        m.insert(m.end(), s.src->v6, s.src->v6 + 16);
        m.insert(m.end(), s.dst->v6, s.dst->v6 + 16);
    } else {
        const auto* a = reinterpret_cast<const std::uint8_t*>(&s.src->v4m.v4);
        const auto* b = reinterpret_cast<const std::uint8_t*>(&s.dst->v4m.v4);
        m.insert(m.end(), a, a + 4);  // network byte order already
        m.insert(m.end(), b, b + 4);
    }
    put16(m, s.sport);
    put16(m, s.dport);
    put8(m, r.key.proto);
    put16(m, s.flags);
    put64(m, s.bytes);
    put64(m, s.packets);
    put64(m, s.l2bytes);
    put64(m, static_cast<std::uint64_t>(r.start_ms));
    put64(m, static_cast<std::uint64_t>(r.end_ms));
    const bool ingress = s.direction == 0;
    put32(m, ingress ? r.key.ifindex : 0);
    put32(m, ingress ? 0 : r.key.ifindex);
    put8(m, ingress ? 0 : 1);
    put8(m, static_cast<std::uint8_t>(r.reason));
    put64(m, r.flow_id);
    if (biflow) {
        put8(m, biflow->initiator_known ? 1 : 0);  // 1 initiator: the source opened it; 0 arbitrary
        put64(m, biflow->revIpBytes());
        put64(m, biflow->rev_packets);
        put64(m, biflow->rev_bytes);
        put16(m, biflow->rev_tcp_flags);
    }
    putString(m, r.interface);
    for (const std::string* str : {s.src_ns, s.src_pod, s.src_wl, s.dst_ns, s.dst_pod, s.dst_wl, s.dst_svc, s.src_ctr, s.dst_ctr})
        putString(m, *str);
    putString(m, node);
    static const analysis::FlowL7Summary kNone;
    const auto& l7 = s.l7 ? r.l7 : kNone;
    putString(m, l7.protocol);
    put8(m, static_cast<std::uint8_t>(l7.side));
    put64(m, l7.requests);
    put64(m, l7.errors);
    put64(m, l7.client_errors);
    put64(m, l7.latency_sum_us);
    put32(m, static_cast<std::uint32_t>(std::min<std::uint64_t>(l7.latency_max_us, 0xffffffffu)));
    put8(m, static_cast<std::uint8_t>(r.policy));
}

}  // namespace

Encoder::Encoder(EncoderOptions options) : options_(std::move(options)) {
    options_.max_message = std::clamp<std::size_t>(options_.max_message, 512, 65535);
}

void Encoder::header(std::vector<std::uint8_t>& m, std::uint32_t export_time) const {
    put16(m, kVersion);
    put16(m, 0);  // length, set at the end
    put32(m, export_time);
    put32(m, sequence_);
    put32(m, options_.observation_domain);
}

Message Encoder::templates(std::uint32_t export_time) {
    Message msg;
    auto& m = msg.bytes;
    header(m, export_time);
    std::size_t set = m.size();
    put16(m, kTemplateSetId);
    put16(m, 0);
    if (options_.biflow) {
        putTemplate(m, kTemplateV4Biflow, dataFields(false, true, options_.enterprise), -1);
        putTemplate(m, kTemplateV6Biflow, dataFields(true, true, options_.enterprise), -1);
    } else {
        putTemplate(m, kTemplateV4, dataFields(false, false, options_.enterprise), -1);
        putTemplate(m, kTemplateV6, dataFields(true, false, options_.enterprise), -1);
    }
    set16(m, set + 2, static_cast<std::uint16_t>(m.size() - set));
    set = m.size();
    put16(m, kOptionsTemplateSetId);
    put16(m, 0);
    putTemplate(m, kTemplateStats, statsFields(), 1);
    set16(m, set + 2, static_cast<std::uint16_t>(m.size() - set));
    set16(m, 2, static_cast<std::uint16_t>(m.size()));
    return msg;
}

Message Encoder::stats(const ExporterStats& s, std::uint32_t export_time) {
    Message msg;
    auto& m = msg.bytes;
    header(m, export_time);
    put16(m, kTemplateStats);
    put16(m, 4 + 4 + 5 * 8);
    put32(m, options_.observation_domain);
    put64(m, s.messages);
    put64(m, s.octets);
    put64(m, s.records);
    put64(m, s.not_sent);
    put64(m, static_cast<std::uint64_t>(s.init_ms));
    set16(m, 2, static_cast<std::uint16_t>(m.size()));
    msg.data_records = 1;
    ++sequence_;
    return msg;
}

std::vector<Message> Encoder::data(std::span<const analysis::FlowExportRecord> records, std::uint32_t export_time) {
    std::vector<Message> out;
    static const std::string kEmpty;
    Message cur;
    std::uint16_t cur_set = 0;
    std::size_t set_at = 0;
    std::vector<std::uint8_t> rec;
    auto close = [&] {
        if (cur.bytes.empty()) return;
        set16(cur.bytes, set_at + 2, static_cast<std::uint16_t>(cur.bytes.size() - set_at));
        set16(cur.bytes, 2, static_cast<std::uint16_t>(cur.bytes.size()));
        sequence_ += cur.data_records;
        out.push_back(std::move(cur));
        cur = Message{};
        cur_set = 0;
    };
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        const bool v6 = r.key.family == 6;
        const auto& l = r.labels;
        // The encoded data records of this input record (one, or two without biflows).
        std::vector<std::vector<std::uint8_t>> parts;
        Side fwd{&r.key.src_ip, &r.key.dst_ip, r.key.src_port, r.key.dst_port, r.packets, r.ipBytes(), r.bytes,
                 r.tcp_flags, r.key.direction, &l.src_namespace, &l.src_pod, &l.src_workload, &l.dst_namespace,
                 &l.dst_pod, &l.dst_workload, &l.dst_service, &r.src_container, &r.dst_container};
        if (options_.biflow) {
            rec.clear();
            putRecord(rec, r, fwd, v6, &r, options_.node);
            parts.push_back(rec);
        } else {
            // The connection's L7 figures go with the first of the two records (a record
            // of requests alone, without packets, is the forward one).
            const bool forward = r.packets > 0 || r.rev_packets == 0;
            if (forward) {
                rec.clear();
                putRecord(rec, r, fwd, v6, nullptr, options_.node);
                parts.push_back(rec);
            }
            if (r.rev_packets > 0) {
                Side rev{&r.key.dst_ip, &r.key.src_ip, r.key.dst_port, r.key.src_port, r.rev_packets, r.revIpBytes(),
                         r.rev_bytes, r.rev_tcp_flags, static_cast<std::uint8_t>(r.key.direction == 0 ? 1 : 0),
                         &l.dst_namespace, &l.dst_pod, &l.dst_workload, &l.src_namespace, &l.src_pod,
                         &l.src_workload, &kEmpty, &r.dst_container, &r.src_container, !forward};
                rec.clear();
                putRecord(rec, r, rev, v6, nullptr, options_.node);
                parts.push_back(rec);
            }
        }
        const std::uint16_t set_id = options_.biflow ? (v6 ? kTemplateV6Biflow : kTemplateV4Biflow)
                                                     : (v6 ? kTemplateV6 : kTemplateV4);
        std::size_t need = 0;
        for (const auto& p : parts) need += p.size();
        if (!cur.bytes.empty() && (cur_set != set_id || cur.bytes.size() + need > options_.max_message)) close();
        if (cur.bytes.empty()) {
            header(cur.bytes, export_time);
            cur.first = i;
        }
        if (cur_set != set_id) {
            set_at = cur.bytes.size();
            put16(cur.bytes, set_id);
            put16(cur.bytes, 0);
            cur_set = set_id;
        }
        for (const auto& p : parts) {
            cur.bytes.insert(cur.bytes.end(), p.begin(), p.end());
            ++cur.data_records;
        }
        ++cur.count;
    }
    close();
    return out;
}

}  // namespace netprobe::sinks::ipfix
