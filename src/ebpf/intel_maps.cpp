#include "netprobe/ebpf/intel_maps.hpp"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "netprobe/ebpf/map_io.hpp"

namespace netprobe::ebpf {

IntelMaps::~IntelMaps() = default;

Result<std::unique_ptr<IntelMaps>> IntelMaps::create(const Manager& manager) {
    std::unique_ptr<IntelMaps> m(new IntelMaps());
    auto outer = manager.mapFd(DatapathMap::IntelIps);
    if (!outer) return std::unexpected(outer.error());
    auto state = manager.mapFd(DatapathMap::IntelState);
    if (!state) return std::unexpected(state.error());
    auto stats = manager.mapFd(DatapathMap::IntelStats);
    if (!stats) return std::unexpected(stats.error());
    auto resolved = manager.mapFd(DatapathMap::IntelResolved);
    if (!resolved) return std::unexpected(resolved.error());
    m->outer_ = std::move(*outer);
    m->state_ = std::move(*state);
    m->stats_ = std::move(*stats);
    m->resolved_ = std::move(*resolved);
    return m;
}

std::unique_ptr<IntelMaps> IntelMaps::adopt(util::UniqueFd outer, util::UniqueFd state, util::UniqueFd stats,
                                            util::UniqueFd resolved) {
    std::unique_ptr<IntelMaps> m(new IntelMaps());
    m->outer_ = std::move(outer);
    m->state_ = std::move(state);
    m->stats_ = std::move(stats);
    m->resolved_ = std::move(resolved);
    return m;
}

Result<std::uint32_t> IntelMaps::bumpLocked() {
    // Every cached verdict is stale from here (the generation wraps at 16 bits in the
    // flows' cache; 0 means "never evaluated", so it is skipped).
    ++generation_;
    if ((generation_ & 0xffff) == 0) ++generation_;
    const __u32 zero = 0;
    const np_intel_state st{generation_, static_cast<__u32>(in_kernel_.size())};
    if (bpf_map_update_elem(state_.get(), &zero, &st, BPF_ANY) != 0)
        return std::unexpected(errnoError(errno, "intel: bump the generation"));
    return generation_;
}

IntelResolvedApply IntelMaps::applyResolved(std::span<const IntelResolvedEntry> desired) {
    std::lock_guard lock(mu_);
    IntelResolvedApply out;
    if (!resolved_) {
        out.failed = desired.size();
        return out;
    }
    std::unordered_map<util::Addr16, np_intel_value, util::AddrHash> want;
    want.reserve(desired.size());
    for (const auto& e : desired)
        if (want.size() < NP_INTEL_RESOLVED_MAX) want.emplace(e.addr, e.value);
    out.failed += desired.size() - want.size();
    bool changed = false;
    // Removed first: a full map still takes the new ones.
    for (auto it = in_kernel_.begin(); it != in_kernel_.end();) {
        if (want.contains(it->first)) {
            ++it;
            continue;
        }
        if (bpf_map_delete_elem(resolved_.get(), it->first.data()) != 0 && errno != ENOENT) {
            ++out.failed;  // stays recorded as present: deleted at the next apply
            ++it;
            continue;
        }
        it = in_kernel_.erase(it);
        ++out.removed;
        changed = true;
    }
    for (const auto& [addr, value] : want) {
        auto it = in_kernel_.find(addr);
        if (it != in_kernel_.end() && std::memcmp(&it->second, &value, sizeof value) == 0) continue;
        if (bpf_map_update_elem(resolved_.get(), addr.data(), &value, BPF_ANY) != 0) {
            ++out.failed;  // not recorded: inserted at the next apply
            continue;
        }
        ++(it == in_kernel_.end() ? out.added : out.updated);
        in_kernel_[addr] = value;
        changed = true;
    }
    out.entries = in_kernel_.size();
    out.generation = generation_;
    if (changed || bump_pending_) {
        auto g = bumpLocked();
        bump_pending_ = !g;  // the flows' verdicts must not stay stale: retried next time
        if (g) out.generation = *g;
        else ++out.failed;
    }
    return out;
}

Result<IntelInstall> IntelMaps::install(std::span<const IntelEntry> entries) {
    const auto t0 = std::chrono::steady_clock::now();
    IntelInstall out;
    out.entries = entries.size();
    LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
    const auto max = static_cast<std::uint32_t>(std::max<std::size_t>(entries.size(), 1));
    util::UniqueFd trie(bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "np_intel_trie", sizeof(np_block_key),
                                       sizeof(np_intel_value), max, &opts));
    if (!trie) return std::unexpected(errnoError(errno, "intel: create an LPM trie of " + std::to_string(max)));

    std::vector<np_block_key> keys(entries.size());
    std::vector<np_intel_value> values(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        keys[i].prefixlen = entries[i].prefix;
        std::memcpy(keys[i].addr.v6, entries[i].addr.data(), 16);
        values[i] = entries[i].value;
    }
    // The batch is the fast path (one syscall per chunk); a kernel without batch
    // updates of LPM tries gets one update per entry.
    std::size_t done = 0;
    bool batch = true;
    while (done < entries.size() && batch) {
        auto count = static_cast<__u32>(std::min<std::size_t>(entries.size() - done, 65536));
        LIBBPF_OPTS(bpf_map_batch_opts, bopts);
        if (bpf_map_update_batch(trie.get(), &keys[done], &values[done], &count, &bopts) != 0) {
            if (errno != EINVAL && errno != ENOTSUP && errno != EOPNOTSUPP)
                return std::unexpected(errnoError(errno, "intel: batch insert into the trie"));
            batch = false;  // the entries the failed batch did insert are inserted again below
            break;
        }
        done += count;
        out.batched = true;
    }
    for (; done < entries.size(); ++done)
        if (bpf_map_update_elem(trie.get(), &keys[done], &values[done], BPF_ANY) != 0)
            return std::unexpected(errnoError(errno, "intel: insert " + util::formatAddr(entries[done].addr) + "/" +
                                                         std::to_string(entries[done].prefix)));
    const __u32 zero = 0;
    const int inner = trie.get();
    if (bpf_map_update_elem(outer_.get(), &zero, &inner, BPF_ANY) != 0)
        return std::unexpected(errnoError(errno, "intel: swap the indicator trie in"));
    std::lock_guard lock(mu_);
    auto g = bumpLocked();
    if (!g) return std::unexpected(g.error());
    out.generation = *g;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;  // the previous trie goes when the last program reference drops it
}

Result<std::vector<np_intel_counters>> IntelMaps::readCounters() const {
    std::vector<np_intel_counters> out(NP_INTEL_FEEDS_MAX);
    auto r = readPerCpuArray<np_intel_counters>(stats_.get(), NP_INTEL_FEEDS_MAX,
                                                [&](std::uint32_t i, std::span<const np_intel_counters> v) {
                                                    auto& o = out[i];
                                                    for (const auto& c : v) {
                                                        o.from_packets += c.from_packets;
                                                        o.from_bytes += c.from_bytes;
                                                        o.to_packets += c.to_packets;
                                                        o.to_bytes += c.to_bytes;
                                                        o.dropped_packets += c.dropped_packets;
                                                        o.dropped_bytes += c.dropped_bytes;
                                                    }
                                                });
    if (!r) return std::unexpected(r.error());
    return out;
}

}  // namespace netprobe::ebpf
