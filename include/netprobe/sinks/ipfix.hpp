// IPFIX (RFC 7011) encoding of flow export records, and the exporter that sends them
// to a collector over UDP or TCP.
//
// Templates (docs/ipfix.md lists every field):
//   256 IPv4 biflow, 257 IPv6 biflow: forward counters, RFC 5103 reverse counters
//       (enterprise 29305) and biflowDirection;
//   258 IPv4, 259 IPv6 unidirectional: biflow=off splits a biflow into two records, for
//       collectors that ignore reverse elements (nfdump, pmacct);
//   300 options template: the exporting process's statistics (RFC 7011 4.3), scoped
//       by observationDomainId.
// Kubernetes and container fields are enterprise-specific elements under the configured
// enterprise number (default 32473, RFC 5612's number for documentation: NetProbe has
// no registered PEN), as variable-length strings; so are the L7 summary (protocol, side,
// requests, errors, latency) and the NetworkPolicy verdict, as strings and unsigned
// integers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <netprobe/analysis/flow_export.hpp>
#include <netprobe/sinks/sink.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/fd.hpp>

namespace netprobe::sinks::ipfix {

inline constexpr std::uint16_t kVersion = 10;
inline constexpr std::uint32_t kReversePen = 29305;       // RFC 5103
inline constexpr std::uint32_t kDefaultPen = 32473;       // RFC 5612 (documentation)
inline constexpr std::uint16_t kTemplateV4Biflow = 256;
inline constexpr std::uint16_t kTemplateV6Biflow = 257;
inline constexpr std::uint16_t kTemplateV4 = 258;
inline constexpr std::uint16_t kTemplateV6 = 259;
inline constexpr std::uint16_t kTemplateStats = 300;

// NetProbe's enterprise-specific information elements (docs/ipfix.md): 1-11 strings
// (variable length), then unsigned integers of the lengths given.
enum class NetprobeIe : std::uint16_t {
    SourcePodNamespace = 1,
    SourcePodName = 2,
    SourceWorkload = 3,
    DestinationPodNamespace = 4,
    DestinationPodName = 5,
    DestinationWorkload = 6,
    DestinationServiceName = 7,
    SourceContainerId = 8,
    DestinationContainerId = 9,
    NodeName = 10,
    L7Protocol = 11,                // string: "http", "grpc", ... ("" none)
    L7Side = 12,                    // unsigned8: 0 none, 1 server, 2 client
    L7RequestDeltaCount = 13,       // unsigned64
    L7ErrorDeltaCount = 14,         // unsigned64 (server and client errors)
    L7ClientErrorDeltaCount = 15,   // unsigned64
    L7LatencySumMicroseconds = 16,  // unsigned64
    L7LatencyMaxMicroseconds = 17,  // unsigned32 (saturates)
    NetworkPolicyVerdict = 18,      // unsigned8: 0 none, 1 allowed, 2 denied
};

struct EncoderOptions {
    std::uint32_t observation_domain = 1;
    std::uint32_t enterprise = kDefaultPen;
    bool biflow = true;
    std::size_t max_message = 1400;  // bytes per message (UDP: below the path MTU)
    std::string node;                // nodeName in every record
};

// Exporting process statistics (the options record).
struct ExporterStats {
    std::uint64_t messages = 0;
    std::uint64_t octets = 0;
    std::uint64_t records = 0;
    std::uint64_t not_sent = 0;
    std::int64_t init_ms = 0;  // systemInitTimeMilliseconds: the exporter's start
};

// One encoded message and the records it carries (indices into the input span).
struct Message {
    std::vector<std::uint8_t> bytes;
    std::size_t first = 0;    // first input record
    std::size_t count = 0;    // input records (a biflow split in two is one input record)
    std::uint32_t data_records = 0;  // IPFIX data records in the message
};

class Encoder {
public:
    explicit Encoder(EncoderOptions options);

    // The template set (data templates) and options template set, one message.
    [[nodiscard]] Message templates(std::uint32_t export_time);
    // The statistics data record, one message.
    [[nodiscard]] Message stats(const ExporterStats& s, std::uint32_t export_time);
    // Data messages for the records, each at most max_message bytes (or one record, if
    // a record alone is larger: strings are cut at 1024 bytes, so a record is < 13 KiB).
    [[nodiscard]] std::vector<Message> data(std::span<const analysis::FlowExportRecord> records,
                                            std::uint32_t export_time);
    // Sequence number of the next message: data records sent so far, modulo 2^32.
    [[nodiscard]] std::uint32_t sequence() const { return sequence_; }
    // A new transport session (TCP reconnect): sequence numbers start again at 0.
    void resetSession() { sequence_ = 0; }
    [[nodiscard]] const EncoderOptions& options() const { return options_; }

private:
    void header(std::vector<std::uint8_t>& m, std::uint32_t export_time) const;
    EncoderOptions options_;
    std::uint32_t sequence_ = 0;
};

// --ipfix-collector=HOST:PORT[,transport=udp|tcp][,biflow=on|off][,domain=N]
//                   [,enterprise=N][,mtu=BYTES][,template-refresh=DURATION][,queue=RECORDS]
struct CollectorConfig {
    std::string host;  // IPv4, IPv6 (in [] with a port) or a name (resolved at each connect)
    std::uint16_t port = 4739;
    bool tcp = false;
    EncoderOptions encoder;
    std::chrono::seconds template_refresh{60};  // UDP: templates and statistics resent this often
    std::size_t queue = 100000;                  // records waiting at most

    [[nodiscard]] std::string target() const;  // "host:port/udp"
};
[[nodiscard]] Result<CollectorConfig> parseCollector(std::string_view spec);

// Sends the records to one collector from its own thread.
// UDP: a connected socket; templates and statistics every template_refresh. When the
//   collector's host answers with ICMP port unreachable (collector down) the send fails
//   with ECONNREFUSED: the records of that batch are kept and sent once it is back (the
//   message that provoked the ICMP error is lost: UDP gives no more).
// TCP: templates (and statistics) on every connection; messages are written whole; the
//   records of messages the collector's host has not acknowledged (SIOCOUTQ) when the
//   connection fails are sent again after the reconnect (backoff 1 s doubling to 30 s).
class IpfixExporter final : public FlowSink {
public:
    [[nodiscard]] static std::unique_ptr<IpfixExporter> start(CollectorConfig config);
    ~IpfixExporter() override;
    void offer(const analysis::FlowExportView& view) override;
    void drain(std::chrono::milliseconds timeout) override;
    [[nodiscard]] SinkStatus status() const override;

private:
    explicit IpfixExporter(CollectorConfig config);
    void loop();
    Result<void> connect();
    void disconnect(const std::string& why);
    Result<void> sendMessage(const Message& m);
    Result<void> sendControl();  // templates + statistics
    void trimAcknowledged();
    void fail(const std::string& what);

    CollectorConfig config_;
    Encoder encoder_;
    RecordQueue queue_;
    std::thread thread_;
    std::atomic<std::int64_t> drain_deadline_ns_{0};  // steady clock; 0: not draining

    // Owned by the exporter's thread.
    util::UniqueFd fd_;
    std::chrono::steady_clock::time_point next_connect_{}, next_templates_{};
    std::chrono::seconds backoff_{1};
    struct InFlight {
        std::size_t bytes;
        std::vector<FlowExportRecord> records;
    };
    std::deque<InFlight> inflight_;  // TCP: written, maybe not acknowledged yet
    std::size_t inflight_bytes_ = 0;
    std::int64_t init_ms_ = 0;

    mutable std::mutex status_mu_;
    SinkStatus status_;
};

}  // namespace netprobe::sinks::ipfix
