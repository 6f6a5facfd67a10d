#include "netprobe/collector/trace.hpp"

#include <net/if.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>

namespace netprobe::collector {

namespace {
std::uint64_t monotonicNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

std::string traceDropStage(std::uint8_t raw_stage, std::string_view reason) {
    if (reason == "TC_INGRESS") return "tc_ingress";
    if (reason == "TC_EGRESS") return "tc_egress";
    for (std::string_view p : {"SOCKET_", "TCP_", "UDP_", "ICMP_", "IP_NOPROTO", "NO_SOCKET", "PROTO_MEM", "XFRM_POLICY"})
        if (reason.starts_with(p)) {
            // a transport/socket reason after prerouting/input: the local delivery
            if (raw_stage == NP_TRACE_INPUT || raw_stage == NP_TRACE_PREROUTING || raw_stage == NP_TRACE_STAGE_BEFORE_NF_RX)
                return "socket";
            break;
        }
    if (raw_stage == NP_TRACE_STAGE_BEFORE_NF_RX) return "tc_ingress";
    if (raw_stage == NP_TRACE_STAGE_BEFORE_NF_TX) return "socket";
    return ebpf::traceStageName(raw_stage);
}

const char* traceStateName(TraceResult::State s) {
    switch (s) {
        case TraceResult::State::Running: return "running";
        case TraceResult::State::Finished: return "finished";
        case TraceResult::State::Failed: return "failed";
    }
    return "unknown";
}

std::expected<std::uint64_t, std::string> TraceQueue::submit(const Request& r) {
    std::lock_guard lock(mu_);
    if (busy_ >= max_busy_)
        return std::unexpected("every trace slot is taken (" + std::to_string(max_busy_) +
                               " traces queued or running); retry when one finishes");
    ++busy_;
    const std::uint64_t id = next_id_++;
    queued_.emplace_back(id, r);
    return id;
}

std::vector<std::pair<std::uint64_t, TraceQueue::Request>> TraceQueue::take() {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::uint64_t, Request>> out(queued_.begin(), queued_.end());
    queued_.clear();
    return out;
}

void TraceQueue::release(std::uint64_t) {
    std::lock_guard lock(mu_);
    if (busy_) --busy_;
}

bool TraceQueue::pending(std::uint64_t id) const {
    std::lock_guard lock(mu_);
    return std::ranges::any_of(queued_, [&](const auto& q) { return q.first == id; });
}

std::uint64_t TraceQueue::lastId() const {
    std::lock_guard lock(mu_);
    return next_id_ - 1;
}

TraceSource::TraceSource(std::shared_ptr<ebpf::PacketTracer> tracer, std::shared_ptr<TraceQueue> queue,
                         std::vector<std::string> drop_reasons, std::function<std::size_t()> hook_links)
    : tracer_(std::move(tracer)),
      queue_(std::move(queue)),
      drop_reasons_(std::move(drop_reasons)),
      hook_links_(std::move(hook_links)) {}

// The slots of running traces stay written: the maps and the hooks' links go with their
// owners (the datapath, the stack monitor), which may already be gone.
TraceSource::~TraceSource() = default;

std::string TraceSource::ifName(std::uint32_t ifindex) {
    if (auto it = if_names_.find(ifindex); it != if_names_.end() && !it->second.empty()) return it->second;
    char buf[IF_NAMESIZE] = {};
    std::string n = ::if_indextoname(ifindex, buf) ? std::string(buf) : std::string();
    if (if_names_.size() > 4096) if_names_.clear();
    if_names_[ifindex] = n;
    return n;
}

Result<void> TraceSource::fill(Active& a) {
    auto c = tracer_->read(a.slot);
    if (!c) return std::unexpected(c.error());
    auto& r = a.result;
    r.stages = c->stages;
    r.drops.clear();
    for (const auto& d : c->drops) {
        TraceDrop x;
        x.dir = d.dir;
        x.reason_code = d.value;
        x.reason = d.value < drop_reasons_.size() && !drop_reasons_[d.value].empty() ? drop_reasons_[d.value]
                                                                                     : "REASON_" + std::to_string(d.value);
        x.stage = traceDropStage(d.stage, x.reason);
        x.packets = d.packets;
        // the same (dir, stage, reason) from two raw stages: one line
        auto same = std::ranges::find_if(r.drops, [&](const TraceDrop& y) {
            return y.dir == x.dir && y.stage == x.stage && y.reason_code == x.reason_code;
        });
        if (same != r.drops.end()) same->packets += x.packets;
        else r.drops.push_back(std::move(x));
    }
    r.devices.clear();
    for (const auto& d : c->devices) {
        r.devices.push_back({d.dir, ebpf::traceStageName(d.stage), d.value, ifName(d.value), d.packets});
    }
    std::ranges::sort(r.devices, [](const TraceDevice& x, const TraceDevice& y) {
        return std::tie(x.dir, x.stage, x.ifindex) < std::tie(y.dir, y.stage, y.ifindex);
    });
    std::ranges::sort(r.drops, [](const TraceDrop& x, const TraceDrop& y) { return x.packets > y.packets; });
    r.processes = std::move(c->processes);
    std::ranges::sort(r.processes, [](const auto& x, const auto& y) { return x.calls > y.calls; });
    return {};
}

Result<void> TraceSource::collect(SnapshotBuilder& b) {
    auto sample = std::make_shared<TraceSample>();
    const std::uint64_t now = monotonicNs();
    const auto wall = std::chrono::system_clock::now();
    const bool had_active = !active_.empty();
    // the running traces: read; the ended ones read a last time (the kernel stopped
    // matching at their expiry), then their slots freed
    for (auto it = active_.begin(); it != active_.end();) {
        if (auto r = fill(*it); !r) sample->last_error = r.error().what();
        if (now < it->expires_ns) {
            ++it;
            continue;
        }
        it->result.state = TraceResult::State::Finished;
        if (auto r = tracer_->disarm(it->slot); !r) {
            spdlog::warn("packet trace {}: {}", it->result.id, r.error().what());
            sample->last_error = r.error().what();
        }
        queue_->release(it->result.id);
        finished_.push_front(std::move(it->result));
        it = active_.erase(it);
    }
    // the queued ones: armed in a free slot
    for (auto& [id, req] : queue_->take()) {
        Active a;
        a.result.id = id;
        a.result.spec = req.spec;
        a.result.seconds = static_cast<std::uint32_t>(req.duration.count());
        a.result.started = wall;
        a.result.ends = wall + req.duration;
        std::uint32_t slot = 0;
        while (slot < NP_TRACE_MAX &&
               std::ranges::any_of(active_, [&](const Active& x) { return x.slot == slot; }))
            ++slot;
        Result<void> armed = slot < NP_TRACE_MAX ? Result<void>{} : std::unexpected(makeError("no free trace slot"));
        if (armed) {
            a.slot = slot;
            a.expires_ns = now + static_cast<std::uint64_t>(std::chrono::nanoseconds(req.duration).count());
            armed = tracer_->arm(slot, req.spec, a.expires_ns);
        }
        if (!armed) {
            spdlog::warn("packet trace {} failed: {}", id, armed.error().what());
            a.result.state = TraceResult::State::Failed;
            a.result.error = armed.error().what();
            ++failed_total_;
            queue_->release(id);
            finished_.push_front(std::move(a.result));
            continue;
        }
        ++started_total_;
        active_.push_back(std::move(a));
    }
    while (finished_.size() > kKeepFinished) finished_.pop_back();

    for (const auto& a : active_) sample->traces.push_back(a.result);
    sample->traces.insert(sample->traces.end(), finished_.begin(), finished_.end());
    sample->started_total = started_total_;
    sample->failed_total = failed_total_;
    sample->active = active_.size();
    sample->hook_links = hook_links_ ? hook_links_() : 0;
    // the kernel's lost-record counters move only while a trace runs: no map read without one
    if (had_active || !active_.empty()) {
        if (auto e = tracer_->errors()) lost_ = *e;
        else sample->last_error = e.error().what();
    }
    sample->lost = lost_;
    b.snapshot().trace = std::move(sample);
    return {};
}

}  // namespace netprobe::collector
