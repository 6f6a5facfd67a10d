// The one module for user-space access to BPF objects: owners of libbpf objects and
// skeletons, batch readers of hash and array maps (per-CPU or not), and a ring-buffer
// reader with a thread of its own. Every source reads its maps through these.
//
// Hash maps are read with BPF_MAP_LOOKUP_BATCH, never with get_next_key walks: a
// get_next_key walk restarts from the first key when the key it holds is deleted
// meanwhile (the kernel deletes entries while we read), so it can return an entry
// twice and miss others; a batch walk goes bucket by bucket and does neither.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/fd.hpp>

namespace netprobe::ebpf {

using util::UniqueFd;

// CPUs the kernel may use: the number of values of a per-CPU map entry.
[[nodiscard]] int possibleCpus();

// Owner of a libbpf object that is released by a function of its own (a skeleton's
// __destroy, bpf_link__destroy, btf__free, ring_buffer__free).
template <auto Destroy>
struct Destroyer {
    template <class T>
    void operator()(T* p) const noexcept {
        if (p) Destroy(p);
    }
};
template <class T, auto Destroy>
using Owned = std::unique_ptr<T, Destroyer<Destroy>>;

// The error of a failed skeleton load, naming the capabilities when it is EPERM/EACCES.
[[nodiscard]] Error loadError(int err, std::string_view what);

// Opens a generated skeleton, lets `configure` set it up (rodata, map sizes, autoload;
// it returns Result<void>), and loads it. On any failure nothing stays loaded.
//   auto s = loadSkeleton<stack_bpf, stack_bpf__open, stack_bpf__load, stack_bpf__destroy>(
//       "stack monitor", [&](stack_bpf& s) -> Result<void> { ...; return {}; });
template <class Skel, auto Open, auto Load, auto Destroy, class Configure>
Result<Owned<Skel, Destroy>> loadSkeleton(std::string_view what, Configure&& configure) {
    Owned<Skel, Destroy> skel(Open());
    if (!skel) return std::unexpected(errnoError(errno, std::string(what) + ": open BPF object"));
    if (auto r = configure(*skel); !r) return std::unexpected(r.error());
    if (int err = Load(skel.get()); err) return std::unexpected(loadError(err, what));
    return skel;
}

// ---- map readers (errors as values; one syscall per batch of entries) ----

// Every entry of a hash map: fn(key, value) with value_size bytes per key (per-CPU
// maps: possibleCpus() values, each rounded up to 8 bytes). take = true deletes what it
// reads (BPF_MAP_LOOKUP_AND_DELETE_BATCH). Returns the number of entries read.
Result<std::size_t> forEachHashEntry(int fd, std::size_t key_size, std::size_t value_size,
                                     const std::function<void(const void* key, const void* value)>& fn,
                                     bool take = false);
// Slots [0, n) of an array map (per-CPU or not), value_size bytes per slot.
Result<void> forEachArraySlot(int fd, std::uint32_t n, std::size_t value_size,
                              const std::function<void(std::uint32_t index, const void* value)>& fn);
// One element (value_size bytes into value); ENOENT and others as errors.
Result<void> lookupElem(int fd, const void* key, void* value, std::string_view what);

template <class V>
constexpr void checkPerCpuValue() {
    static_assert(sizeof(V) % 8 == 0, "per-CPU values are laid out 8-byte aligned");
}

// fn(const K&, const V&) for every entry of a (non-per-CPU) hash map.
template <class K, class V, class Fn>
Result<std::size_t> readHash(int fd, Fn&& fn, bool take = false) {
    return forEachHashEntry(
        fd, sizeof(K), sizeof(V),
        [&](const void* k, const void* v) { fn(*static_cast<const K*>(k), *static_cast<const V*>(v)); }, take);
}

// fn(const K&, std::span<const V> per_cpu) for every entry of a per-CPU hash map.
template <class K, class V, class Fn>
Result<std::size_t> readPerCpuHash(int fd, Fn&& fn, bool take = false) {
    checkPerCpuValue<V>();
    const auto ncpu = static_cast<std::size_t>(possibleCpus());
    return forEachHashEntry(
        fd, sizeof(K), sizeof(V) * ncpu,
        [&](const void* k, const void* v) {
            fn(*static_cast<const K*>(k), std::span<const V>(static_cast<const V*>(v), ncpu));
        },
        take);
}

// fn(index, std::span<const V> per_cpu) for slots [0, n) of a per-CPU array.
template <class V, class Fn>
Result<void> readPerCpuArray(int fd, std::uint32_t n, Fn&& fn) {
    checkPerCpuValue<V>();
    const auto ncpu = static_cast<std::size_t>(possibleCpus());
    return forEachArraySlot(fd, n, sizeof(V) * ncpu, [&](std::uint32_t i, const void* v) {
        fn(i, std::span<const V>(static_cast<const V*>(v), ncpu));
    });
}

// The memory of a map created mmapable (a global data section such as .data.hostdirty,
// or a BPF_F_MMAPABLE array), mapped shared for reading and writing; unmapped when
// destroyed. The mapping keeps the map alive, the fd it came from need not.
class MappedMap {
public:
    MappedMap() = default;
    [[nodiscard]] static Result<MappedMap> map(int fd, std::size_t bytes, std::string_view what);
    MappedMap(MappedMap&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    MappedMap& operator=(MappedMap&& o) noexcept;
    MappedMap(const MappedMap&) = delete;
    MappedMap& operator=(const MappedMap&) = delete;
    ~MappedMap();
    [[nodiscard]] void* data() const { return p_; }
    explicit operator bool() const { return p_ != nullptr; }

private:
    void* p_ = nullptr;
    std::size_t n_ = 0;
};

// The per-CPU values of one element.
template <class V, class K>
Result<std::vector<V>> lookupPerCpu(int fd, const K& key, std::string_view what) {
    checkPerCpuValue<V>();
    std::vector<V> vals(static_cast<std::size_t>(possibleCpus()));
    if (auto r = lookupElem(fd, &key, vals.data(), what); !r) return std::unexpected(r.error());
    return vals;
}

// Sums of per-CPU values.
[[nodiscard]] Counter sumCounters(std::span<const np_counter> per_cpu);
[[nodiscard]] std::uint64_t sumValues(std::span<const std::uint64_t> per_cpu);
// Per-CPU copies of one flow merged: packets/bytes summed, first_seen min (0 = none),
// last_seen max, tcp_flags OR-ed.
[[nodiscard]] np_flow_stats mergeFlowStats(std::span<const np_flow_stats> per_cpu);

// Every entry of a flow_stats map (per-CPU values merged), appended to out; take =
// true deletes them. Returns the number of kernel entries read.
Result<std::size_t> readFlowMap(int map_fd, std::vector<FlowEntry>& out, bool take = false);
// The same, entry by entry as the batches arrive (no buffer of the whole table).
Result<std::size_t> forEachFlow(int map_fd, const std::function<void(const FlowEntry&)>& fn, bool take = false);

// ---- ring buffers ----

// A BPF ring buffer drained by a thread of its own: every record is handed to
// on_record, on that thread, as it arrives. Destroying it stops the thread.
class RingReader {
public:
    using Handler = std::function<void(std::span<const std::byte> record)>;
    [[nodiscard]] static Result<std::unique_ptr<RingReader>> start(int map_fd, std::string name, Handler on_record);
    ~RingReader();
    RingReader(const RingReader&) = delete;
    RingReader& operator=(const RingReader&) = delete;

private:
    struct Impl;
    explicit RingReader(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::ebpf
