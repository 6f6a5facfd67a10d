#include "netprobe/sinks/flow_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <spdlog/spdlog.h>

#include "netprobe/ebpf/types.hpp"
#include "netprobe/util/ip.hpp"
#include "netprobe/util/json_text.hpp"

namespace netprobe::sinks {

namespace {

using Clock = std::chrono::steady_clock;

std::string isoMs(std::int64_t ms) {
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
}

void appendFlags(std::string& o, std::uint8_t f) {
    static constexpr const char* names[8] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
    o += '[';
    bool first = true;
    for (int i = 0; i < 8; ++i) {
        if (!(f & (1u << i))) continue;
        if (!first) o += ',';
        first = false;
        o += '"';
        o += names[i];
        o += '"';
    }
    o += ']';
}

}  // namespace

std::string flowRecordJson(const FlowExportRecord& r, const std::string& node) {
    using namespace util;
    std::string o;
    o.reserve(600);
    o += '{';
    auto u = [&](std::string_view k, std::uint64_t v) { appendJsonKey(o, k), appendJsonUint(o, v); };
    auto str = [&](std::string_view k, std::string_view v) { appendJsonKey(o, k), appendJsonString(o, v); };
    auto opt = [&](std::string_view k, const std::string& v) {
        if (!v.empty()) str(k, v);
    };
    u("flow_id", r.flow_id);
    str("start", isoMs(r.start_ms));
    str("end", isoMs(r.end_ms));
    str("end_reason", analysis::toString(r.reason));
    appendJsonKey(o, "final"), o += r.final ? "true" : "false";
    str("interface", r.interface);
    u("ifindex", r.key.ifindex);
    str("direction", ebpf::directionName(r.key.direction));
    u("ip_version", r.key.family);
    str("encap", ebpf::encapName(r.key.encap));
    str("protocol", protocolName(r.key.proto));
    str("src_ip", formatAddr(std::bit_cast<Addr16>(r.key.src_ip)));
    u("src_port", r.key.src_port);
    str("dst_ip", formatAddr(std::bit_cast<Addr16>(r.key.dst_ip)));
    u("dst_port", r.key.dst_port);
    u("packets", r.packets);
    u("bytes", r.bytes);
    u("ip_bytes", r.ipBytes());
    u("rev_packets", r.rev_packets);
    u("rev_bytes", r.rev_bytes);
    u("rev_ip_bytes", r.revIpBytes());
    if (r.key.proto == 6) {
        appendJsonKey(o, "tcp_flags"), appendFlags(o, r.tcp_flags);
        appendJsonKey(o, "rev_tcp_flags"), appendFlags(o, r.rev_tcp_flags);
    }
    appendJsonKey(o, "biflow"), o += r.reverse_seen ? "true" : "false";
    appendJsonKey(o, "initiator_known"), o += r.initiator_known ? "true" : "false";
    opt("node", node);
    opt("src_namespace", r.labels.src_namespace);
    opt("src_pod", r.labels.src_pod);
    opt("src_workload", r.labels.src_workload);
    opt("dst_namespace", r.labels.dst_namespace);
    opt("dst_pod", r.labels.dst_pod);
    opt("dst_workload", r.labels.dst_workload);
    opt("dst_service", r.labels.dst_service);
    opt("src_container", r.src_container);
    opt("dst_container", r.dst_container);
    if (r.l7.present()) {
        str("l7_protocol", r.l7.protocol);
        str("l7_side", analysis::toString(r.l7.side));
        u("l7_requests", r.l7.requests);
        u("l7_errors", r.l7.errors);
        u("l7_client_errors", r.l7.client_errors);
        u("l7_latency_sum_us", r.l7.latency_sum_us);
        u("l7_latency_max_us", r.l7.latency_max_us);
    }
    if (r.policy != analysis::FlowPolicyVerdict::None) str("policy_verdict", analysis::toString(r.policy));
    o += '}';
    return o;
}

FlowLog::FlowLog(FlowLogOptions options, std::string node)
    : options_(std::move(options)), node_(std::move(node)), queue_(options_.queue) {
    status_.kind = "flow_log";
    status_.target = options_.path;
    status_.queue_capacity = queue_.capacity();
}

Result<std::unique_ptr<FlowLog>> FlowLog::start(FlowLogOptions options, std::string node) {
    if (options.path.empty()) return std::unexpected(makeError("--flow-log: empty path"));
    if (options.max_bytes < 4096) return std::unexpected(makeError("--flow-log-max-size: at least 4096 bytes"));
    std::unique_ptr<FlowLog> log(new FlowLog(std::move(options), std::move(node)));
    if (auto r = log->open(); !r) return std::unexpected(r.error());
    log->status_.up = true;
    log->thread_ = std::thread([p = log.get()] { p->loop(); });
    return log;
}

FlowLog::~FlowLog() { drain(std::chrono::milliseconds(0)); }

Result<void> FlowLog::open() {
    int fd = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return std::unexpected(errnoError(errno, "--flow-log: open " + options_.path));
    std::FILE* f = ::fdopen(fd, "a");
    if (!f) {
        ::close(fd);
        return std::unexpected(errnoError(errno, "--flow-log: fdopen " + options_.path));
    }
    struct stat st {};
    size_ = ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    file_.reset(f);
    return {};
}

void FlowLog::rotate() {
    file_.reset();
    if (options_.max_files == 0) {
        (void)::truncate(options_.path.c_str(), 0);
    } else {
        for (unsigned i = options_.max_files; i >= 1; --i) {
            const std::string from = i == 1 ? options_.path : options_.path + "." + std::to_string(i - 1);
            const std::string to = options_.path + "." + std::to_string(i);
            (void)::rename(from.c_str(), to.c_str());  // a missing one is fine
        }
    }
    std::lock_guard lock(status_mu_);
    ++status_.connects_total;
}

void FlowLog::offer(const analysis::FlowExportView& view) { queue_.push(view.records); }

void FlowLog::drain(std::chrono::milliseconds timeout) {
    if (!thread_.joinable()) return;
    drain_deadline_ns_.store((Clock::now() + timeout).time_since_epoch().count());
    queue_.stop();
    thread_.join();
}

SinkStatus FlowLog::status() const {
    std::lock_guard lock(status_mu_);
    SinkStatus s = status_;
    s.queued = queue_.size();
    s.records_dropped_queue = queue_.dropped();
    return s;
}

void FlowLog::loop() {
    std::string buf;
    for (;;) {
        const std::int64_t drain_ns = drain_deadline_ns_.load();
        if (drain_ns != 0 && (queue_.size() == 0 || Clock::now().time_since_epoch().count() >= drain_ns)) break;
        auto batch = queue_.take(1000, Clock::now() + std::chrono::milliseconds(500));
        if (batch.empty()) continue;
        std::size_t written = 0;
        std::uint64_t bytes = 0;
        std::string error;
        for (const auto& r : batch) {
            buf = flowRecordJson(r, node_);
            buf += '\n';
            if (file_ && size_ > 0 && size_ + buf.size() > options_.max_bytes) rotate();
            if (!file_) {
                if (auto o = open(); !o) {
                    error = o.error().what();
                    break;
                }
            }
            if (std::fwrite(buf.data(), 1, buf.size(), file_.get()) != buf.size()) {
                error = std::string("write ") + options_.path + ": " + std::strerror(errno);
                file_.reset();  // reopened for the next record
                break;
            }
            size_ += buf.size();
            bytes += buf.size();
            ++written;
        }
        if (file_ && std::fflush(file_.get()) != 0 && error.empty())
            error = std::string("write ") + options_.path + ": " + std::strerror(errno);
        std::lock_guard lock(status_mu_);
        status_.records_sent += written;
        status_.messages_sent += written;
        status_.bytes_sent += bytes;
        if (!error.empty()) {
            status_.records_dropped_send += batch.size() - written;
            ++status_.errors_total;
            if (status_.last_error != error) spdlog::warn("flow log: {}", error);
            status_.last_error = error;
            status_.up = false;
        } else {
            status_.up = true;
            status_.last_error.clear();
        }
    }
}

}  // namespace netprobe::sinks
