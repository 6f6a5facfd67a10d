// netprobe::collector::TraceQueue and TraceSource - packet path tracing on the
// collection cadence. A request (the API's GET /api/v1/trace?src=...) only queues: it
// gets an id at once and never touches a map. The trace source, on the collector's
// thread, arms queued traces into a free kernel slot (ebpf::PacketTracer), reads the
// running ones, ends those whose time is up (reading them a last time, then freeing the
// slot; with no trace left the trace hooks are detached) and publishes them in the
// snapshot (Snapshot::trace), where the API reads them.
//
//   auto queue = std::make_shared<TraceQueue>();
//   collector.addSource(std::make_shared<TraceSource>(tracer, queue));
//   auto id = queue->submit({spec, std::chrono::seconds(10)});   // from any thread
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <cstdint>
#include <deque>
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <netprobe/collector/source.hpp>
#include <netprobe/ebpf/trace.hpp>

namespace netprobe::collector {

class TraceQueue {
public:
    struct Request {
        ebpf::TraceSpec spec;
        std::chrono::seconds duration{10};
    };
    // At most max_busy traces queued or running at once (the kernel's slots).
    explicit TraceQueue(std::size_t max_busy = NP_TRACE_MAX) : max_busy_(max_busy) {}

    // The new trace's id, or why not (every slot is taken).
    [[nodiscard]] std::expected<std::uint64_t, std::string> submit(const Request& r);
    // The requests queued since the previous call, in order (the trace source's).
    [[nodiscard]] std::vector<std::pair<std::uint64_t, Request>> take();
    // A trace that took a place ended (finished or failed): its place is free.
    void release(std::uint64_t id);
    [[nodiscard]] bool pending(std::uint64_t id) const;  // queued, not yet taken
    [[nodiscard]] std::uint64_t lastId() const;

private:
    mutable std::mutex mu_;
    std::size_t max_busy_;
    std::size_t busy_ = 0;  // queued or running
    std::uint64_t next_id_ = 1;
    std::deque<std::pair<std::uint64_t, Request>> queued_;
};

class TraceSource final : public Source {
public:
    // drop_reasons: the kernel's skb_drop_reason names (index = value).
    TraceSource(std::shared_ptr<ebpf::PacketTracer> tracer, std::shared_ptr<TraceQueue> queue,
                std::vector<std::string> drop_reasons, std::function<std::size_t()> hook_links = {});
    ~TraceSource() override;
    [[nodiscard]] std::string_view name() const override { return "trace"; }
    Result<void> collect(SnapshotBuilder& b) override;

    static constexpr std::size_t kKeepFinished = 16;

private:
    struct Active {
        std::uint32_t slot = 0;
        std::uint64_t expires_ns = 0;
        TraceResult result;
    };
    Result<void> fill(Active& a);
    std::string ifName(std::uint32_t ifindex);

    std::shared_ptr<ebpf::PacketTracer> tracer_;
    std::shared_ptr<TraceQueue> queue_;
    std::vector<std::string> drop_reasons_;
    std::function<std::size_t()> hook_links_;
    std::vector<Active> active_;
    std::deque<TraceResult> finished_;  // newest first
    std::map<std::uint32_t, std::string> if_names_;
    std::uint64_t started_total_ = 0, failed_total_ = 0;
    std::array<std::uint64_t, NP_TRACE_ERR_MAX> lost_{};
};

}  // namespace netprobe::collector
