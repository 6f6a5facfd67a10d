#include "netprobe/ebpf/map_io.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

namespace netprobe::ebpf {

int possibleCpus() {
    static const int n = [] {
        int v = libbpf_num_possible_cpus();
        return v > 0 ? v : 1;
    }();
    return n;
}

Error loadError(int err, std::string_view what) {
    const int e = err < 0 ? -err : err;
    std::string ctx = std::string(what) + ": load BPF programs";
    if (e == EPERM || e == EACCES) ctx += " (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, or root)";
    return errnoError(e, ctx);
}

namespace {

// One batch walk (lookup or lookup-and-delete) over a map; fn(key, value) per entry.
Result<std::size_t> batchWalk(int fd, std::size_t key_size, std::size_t value_size, std::size_t chunk, bool take,
                              const std::function<void(const void*, const void*)>& fn) {
    std::vector<std::byte> keys, vals;
    // The batch token: a bucket index for hash maps, a key for arrays.
    std::vector<std::byte> in_tok(std::max<std::size_t>(key_size, 8)), out_tok(in_tok.size());
    bool first = true;
    std::size_t total = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
        keys.resize(chunk * key_size);
        vals.resize(chunk * value_size);
        __u32 count = static_cast<__u32>(chunk);
        void* in = first ? nullptr : in_tok.data();
        int err = take ? bpf_map_lookup_and_delete_batch(fd, in, out_tok.data(), keys.data(), vals.data(), &count, &opts)
                       : bpf_map_lookup_batch(fd, in, out_tok.data(), keys.data(), vals.data(), &count, &opts);
        const int e = err ? errno : 0;
        if (err && e == ENOSPC && count == 0) {  // one bucket holds more entries than the buffer
            chunk *= 2;
            continue;
        }
        if (err && e != ENOENT) return std::unexpected(errnoError(e, take ? "batch read-and-delete map" : "batch read map"));
        for (__u32 i = 0; i < count; ++i) fn(&keys[i * key_size], &vals[i * value_size]);
        total += count;
        if (err) break;  // ENOENT: the walk is complete
        std::swap(in_tok, out_tok);
        first = false;
    }
    return total;
}

}  // namespace

Result<std::size_t> forEachHashEntry(int fd, std::size_t key_size, std::size_t value_size,
                                     const std::function<void(const void*, const void*)>& fn, bool take) {
    return batchWalk(fd, key_size, value_size, 4096, take, fn);
}

Result<void> forEachArraySlot(int fd, std::uint32_t n, std::size_t value_size,
                              const std::function<void(std::uint32_t, const void*)>& fn) {
    std::uint32_t seen = 0;
    auto r = batchWalk(fd, sizeof(std::uint32_t), value_size, std::min<std::uint32_t>(std::max<std::uint32_t>(n, 1), 1024),
                       false, [&](const void* k, const void* v) {
                           std::uint32_t idx;
                           std::memcpy(&idx, k, sizeof idx);
                           if (idx < n) {
                               fn(idx, v);
                               ++seen;
                           }
                       });
    if (!r) return std::unexpected(r.error());
    return {};
}

Result<void> lookupElem(int fd, const void* key, void* value, std::string_view what) {
    if (bpf_map_lookup_elem(fd, key, value) != 0) return std::unexpected(errnoError(errno, "look up " + std::string(what)));
    return {};
}

Result<MappedMap> MappedMap::map(int fd, std::size_t bytes, std::string_view what) {
    const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t n = (bytes + page - 1) / page * page;
    void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return std::unexpected(errnoError(errno, "map the memory of " + std::string(what)));
    MappedMap m;
    m.p_ = p;
    m.n_ = n;
    return m;
}

MappedMap& MappedMap::operator=(MappedMap&& o) noexcept {
    if (this != &o) {
        if (p_) munmap(p_, n_);
        p_ = std::exchange(o.p_, nullptr);
        n_ = std::exchange(o.n_, 0);
    }
    return *this;
}

MappedMap::~MappedMap() {
    if (p_) munmap(p_, n_);
}

Counter sumCounters(std::span<const np_counter> per_cpu) {
    Counter c;
    for (const auto& v : per_cpu) {
        c.packets += v.packets;
        c.bytes += v.bytes;
    }
    return c;
}

std::uint64_t sumValues(std::span<const std::uint64_t> per_cpu) {
    std::uint64_t t = 0;
    for (auto v : per_cpu) t += v;
    return t;
}

np_flow_stats mergeFlowStats(std::span<const np_flow_stats> per_cpu) {
    np_flow_stats m{};
    for (const auto& s : per_cpu) {
        if (s.packets == 0) continue;
        m.packets += s.packets;
        m.bytes += s.bytes;
        if (m.first_seen_ns == 0 || (s.first_seen_ns != 0 && s.first_seen_ns < m.first_seen_ns))
            m.first_seen_ns = s.first_seen_ns;
        m.last_seen_ns = std::max<__u64>(m.last_seen_ns, s.last_seen_ns);
        m.tcp_flags |= s.tcp_flags;
    }
    return m;
}

Result<std::size_t> forEachFlow(int map_fd, const std::function<void(const FlowEntry&)>& fn, bool take) {
    return readPerCpuHash<flow_key, np_flow_stats>(
        map_fd,
        [&](const flow_key& k, std::span<const np_flow_stats> v) {
            FlowEntry e{k, mergeFlowStats(v)};
            if (e.stats.packets) fn(e);
        },
        take);
}

Result<std::size_t> readFlowMap(int map_fd, std::vector<FlowEntry>& out, bool take) {
    return forEachFlow(map_fd, [&](const FlowEntry& e) { out.push_back(e); }, take);
}

// ---- RingReader ----

struct RingReader::Impl {
    std::string name;
    Handler handler;
    Owned<ring_buffer, ring_buffer__free> ring;
    std::atomic<bool> stopping{false};
    std::thread thread;

    static int onRecord(void* ctx, void* data, size_t size) {
        auto* self = static_cast<Impl*>(ctx);
        self->handler(std::span<const std::byte>(static_cast<const std::byte*>(data), size));
        return 0;
    }
};

Result<std::unique_ptr<RingReader>> RingReader::start(int map_fd, std::string name, Handler on_record) {
    auto im = std::make_unique<Impl>();
    im->name = std::move(name);
    im->handler = std::move(on_record);
    im->ring.reset(ring_buffer__new(map_fd, &Impl::onRecord, im.get(), nullptr));
    if (!im->ring) return std::unexpected(errnoError(errno, im->name + ": ring buffer"));
    im->thread = std::thread([raw = im.get()] {
        // Named for top -H and perf: np-ring-l7, np-ring-security, ...
        const std::string tname = ("np-ring-" + raw->name).substr(0, 15);
        ::pthread_setname_np(::pthread_self(), tname.c_str());
        bool warned = false;
        while (!raw->stopping.load(std::memory_order_relaxed)) {
            // Producers may submit without a wakeup (batched, see bpf/lib/security.h):
            // a poll that times out still drains whatever is there, so a record waits
            // at most ~100 ms.
            int n = ring_buffer__poll(raw->ring.get(), 100);
            if (n == 0) n = ring_buffer__consume(raw->ring.get());
            if (n < 0 && n != -EINTR) {
                if (!warned) spdlog::warn("{}: ring buffer poll: {}", raw->name, std::strerror(-n));
                warned = true;
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        }
    });
    return std::unique_ptr<RingReader>(new RingReader(std::move(im)));
}

RingReader::RingReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

RingReader::~RingReader() {
    impl_->stopping = true;
    if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace netprobe::ebpf
