#include "netprobe/ebpf/mitigator.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "netprobe/ebpf/map_io.hpp"

namespace netprobe::ebpf {

namespace {

std::string cidrText(const util::Addr16& a, std::uint8_t prefix) {
    const bool v4 = util::isV4Mapped(a) && prefix >= 96;
    return util::formatAddr(a) + "/" + std::to_string(v4 ? prefix - 96 : prefix);
}

np_block_key keyOf(const BlockRequest& r) {
    np_block_key k{};
    k.prefixlen = r.prefix;
    std::memcpy(k.addr.v6, r.addr.data(), 16);
    return k;
}

}  // namespace

struct Mitigator::Impl {
    UniqueFd blocklist, block_stats;
    std::mutex mu;  // one apply at a time
    struct Rule {
        BlockRequest req;
        std::uint32_t rule_id = 0;
        bool removing = false;
        Counter matched;
    };
    std::map<std::string, Rule> rules;  // cidr -> rule in the kernel
    std::vector<std::uint32_t> free_ids;
    MitigationStatus totals;            // the counters part
    bool warned = false;

    void warnOnce(const std::string& what) {
        if (!warned) spdlog::warn("mitigation: {} (retried)", what);
        warned = true;
    }
};

Mitigator::Mitigator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)), status_(std::make_shared<const MitigationStatus>()) {}
Mitigator::~Mitigator() = default;

Result<std::unique_ptr<Mitigator>> Mitigator::create(const Manager& manager) {
    auto im = std::make_unique<Impl>();
    auto bl = manager.mapFd(DatapathMap::Blocklist);
    if (!bl) return std::unexpected(bl.error());
    auto bs = manager.mapFd(DatapathMap::BlockStats);
    if (!bs) return std::unexpected(bs.error());
    im->blocklist = std::move(*bl);
    im->block_stats = std::move(*bs);
    for (std::uint32_t i = NP_BLOCK_RULES_MAX; i-- > 0;) im->free_ids.push_back(i);
    return std::unique_ptr<Mitigator>(new Mitigator(std::move(im)));
}

Result<void> Mitigator::apply(const std::vector<BlockRequest>& desired) {
    auto& im = *impl_;
    std::lock_guard lock(im.mu);
    std::map<std::string, const BlockRequest*> want;
    for (const auto& r : desired) want.emplace(cidrText(r.addr, r.prefix), &r);
    std::string first_error;
    auto fail = [&](const std::string& what) {
        if (first_error.empty()) first_error = what;
        im.warnOnce(what);
    };

    // The counters of every rule in the kernel, before any is removed.
    if (!im.rules.empty()) {
        auto r = readPerCpuArray<np_counter>(im.block_stats.get(), NP_BLOCK_RULES_MAX,
                                             [&](std::uint32_t id, std::span<const np_counter> v) {
                                                 for (auto& [_, rule] : im.rules)
                                                     if (rule.rule_id == id) rule.matched = sumCounters(v);
                                             });
        if (!r) {
            ++im.totals.counter_read_failures_total;
            fail(r.error().what());
        }
    }
    // Rules no longer wanted: delete; a failure keeps the rule (and its id) for a retry.
    for (auto it = im.rules.begin(); it != im.rules.end();) {
        if (want.contains(it->first)) {
            it->second.removing = false;
            ++it;
            continue;
        }
        const np_block_key k = keyOf(it->second.req);
        if (bpf_map_delete_elem(im.blocklist.get(), &k) != 0 && errno != ENOENT) {
            ++im.totals.delete_failures_total;
            it->second.removing = true;
            fail("blocklist delete " + it->first + ": " + std::strerror(errno));
            ++it;
            continue;
        }
        im.totals.retired += it->second.matched;
        ++im.totals.removed_total;
        im.free_ids.push_back(it->second.rule_id);
        spdlog::info("mitigation: block of {} removed", it->first);
        it = im.rules.erase(it);
    }
    // Wanted rules not in the kernel: a fresh id (counters zeroed), then the entry.
    for (const auto& [cidr, req] : want) {
        if (im.rules.contains(cidr)) continue;
        if (im.free_ids.empty()) {
            ++im.totals.insert_failures_total;
            fail("blocklist full, " + cidr + " not blocked");
            continue;
        }
        const std::uint32_t id = im.free_ids.back();
        const std::vector<np_counter> zeros(static_cast<std::size_t>(possibleCpus()));
        if (bpf_map_update_elem(im.block_stats.get(), &id, zeros.data(), BPF_ANY) != 0) {
            ++im.totals.counter_reset_failures_total;
            fail("reset the counters of rule " + std::to_string(id) + ": " + std::strerror(errno));
            continue;
        }
        const np_block_key k = keyOf(*req);
        const np_block_value v{id, 0};
        if (bpf_map_update_elem(im.blocklist.get(), &k, &v, BPF_ANY) != 0) {
            ++im.totals.insert_failures_total;
            fail("blocklist insert " + cidr + ": " + std::strerror(errno));
            continue;
        }
        im.free_ids.pop_back();
        ++im.totals.inserted_total;
        im.rules.emplace(cidr, Impl::Rule{*req, id, false, {}});
    }
    if (first_error.empty()) im.warned = false;

    auto st = std::make_shared<MitigationStatus>(im.totals);
    st->rules.clear();
    for (const auto& [cidr, r] : im.rules) st->rules.push_back({cidr, r.rule_id, r.req.event_id, r.matched, r.removing});
    status_.store(std::move(st));
    if (!first_error.empty()) return std::unexpected(makeError(first_error));
    return {};
}

}  // namespace netprobe::ebpf
