// netprobe::sinks - where flow export records go: the IPFIX exporter (ipfix.hpp) and
// the JSON-lines flow log (flow_log.hpp). A sink is fed by the main pipeline's
// FlowExportView (every record once, in order) through offer(), which only copies the
// records into the sink's bounded queue: the network or disk I/O runs on the sink's
// own thread, so a slow or unreachable destination never delays a collection. A full
// queue drops its oldest records, counted.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include <netprobe/analysis/flow_export.hpp>

namespace netprobe::sinks {

using analysis::FlowExportRecord;

struct SinkStatus {
    std::string kind;    // "ipfix", "flow_log"
    std::string target;  // "198.18.0.1:4739/udp", a file path
    bool up = false;     // connected (TCP), last send accepted (UDP), file open
    std::uint64_t records_sent = 0;          // handed to the transport (IPFIX) / written (log)
    std::uint64_t records_dropped_queue = 0; // the queue was full: the oldest went
    std::uint64_t records_dropped_send = 0;  // in a message the transport refused (UDP) / a failed write
    std::uint64_t records_resent = 0;        // TCP: not acknowledged before the connection failed, sent again
    std::uint64_t records_dropped_spool = 0; // ClickHouse: the spool was full, its oldest batches went
    std::uint64_t spool_bytes = 0;           // ClickHouse: batches waiting on disk
    std::uint64_t spool_batches = 0;
    std::uint64_t partitions_dropped = 0;    // ClickHouse: retention without TTL
    std::uint64_t series_points_sent = 0;    // ClickHouse: history points inserted (netprobe.series)
    std::uint64_t series_points_dropped = 0; // ClickHouse: points lost (queue or spool full, unreadable spool file)
    bool series = false;                     // ClickHouse: history series are sent
    std::uint64_t messages_sent = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t errors_total = 0;          // connect, send, write errors
    std::uint64_t connects_total = 0;        // connections (TCP) or sockets (UDP) opened; rotations (log)
    std::uint64_t queued = 0;                // records waiting
    std::uint64_t queue_capacity = 0;
    std::string last_error;
};

class FlowSink {
public:
    virtual ~FlowSink() = default;
    // Copies the view's records into the queue; never blocks on I/O.
    virtual void offer(const analysis::FlowExportView& view) = 0;
    // Sends what is queued (for at most `timeout`), then stops the sink's thread.
    virtual void drain(std::chrono::milliseconds timeout) = 0;
    [[nodiscard]] virtual SinkStatus status() const = 0;
};

// A bounded FIFO of records shared by a producer (offer) and the sink's thread.
class RecordQueue {
public:
    explicit RecordQueue(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}
    // Appends; when full, the oldest records are dropped (counted).
    void push(const std::vector<FlowExportRecord>& records);
    // Puts records back at the front (a send that failed), oldest first; beyond the
    // capacity the oldest are dropped (counted).
    void requeue(std::vector<FlowExportRecord> records);
    // Up to max records, waiting until there is one, stop() or the deadline.
    [[nodiscard]] std::vector<FlowExportRecord> take(std::size_t max, std::chrono::steady_clock::time_point deadline);
    void stop();
    [[nodiscard]] bool stopping() const;
    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] std::size_t capacity() const { return capacity_; }
    [[nodiscard]] std::uint64_t dropped() const;

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<FlowExportRecord> q_;
    std::size_t capacity_;
    std::uint64_t dropped_ = 0;
    bool stopping_ = false;
};

}  // namespace netprobe::sinks
