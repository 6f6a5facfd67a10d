#include "netprobe/analysis/flows.hpp"

#include <net/if.h>

#include <algorithm>
#include <unordered_set>

namespace netprobe::analysis {

std::string FlowView::interfaceName(std::uint32_t ifindex) const {
    auto it = std::lower_bound(interfaces.begin(), interfaces.end(), ifindex,
                               [](const auto& p, std::uint32_t i) { return p.first < i; });
    if (it != interfaces.end() && it->first == ifindex) return it->second;
    return std::to_string(ifindex);
}

void FlowAccounting::run(const collector::Snapshot& s, Views& views) {
    table_.apply(s.flows, s.monoNs());
    auto v = std::make_shared<FlowView>();
    v->records = table_.records();
    v->health = {table_.size(), table_.capacity(), table_.expiredTotal(), table_.evictedTotal()};
    // Names of the flows' interfaces: the attached ones, else (a flow of an interface
    // detached meanwhile) the kernel's name for the index, if any.
    std::unordered_set<std::uint32_t> known;
    for (const auto& i : s.interfaces) {
        v->interfaces.emplace_back(i.index, i.name);
        known.insert(i.index);
    }
    for (const auto& r : v->records) {
        if (!known.insert(r.key.ifindex).second) continue;
        char buf[IF_NAMESIZE] = {};
        v->interfaces.emplace_back(r.key.ifindex, if_indextoname(r.key.ifindex, buf) ? std::string(buf)
                                                                                      : std::to_string(r.key.ifindex));
    }
    std::sort(v->interfaces.begin(), v->interfaces.end());
    views.flows = std::move(v);
}

}  // namespace netprobe::analysis
