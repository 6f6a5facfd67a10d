#include "netprobe/analysis/security/blocklist.hpp"

namespace netprobe::analysis::security {

std::string BlocklistPlanner::block(const util::Addr16& addr, std::uint64_t event_id,
                                    std::chrono::system_clock::time_point now) {
    if (cfg_.mitigate == MitigationMode::Off || cfg_.allowed(addr)) return {};
    const Cidr c{addr, 128};
    std::string text = c.str();
    if (auto it = rules_.find(text); it != rules_.end()) {
        it->second.expires_at = now + cfg_.block_duration;  // seen again: extend
        return text;
    }
    if (rules_.size() >= capacity_) {
        ++refused_;
        return {};
    }
    rules_.emplace(text, PlannedBlock{c, event_id, now, now + cfg_.block_duration});
    ++planned_;
    return text;
}

void BlocklistPlanner::expire(std::chrono::system_clock::time_point now) {
    expired_ += std::erase_if(rules_, [&](const auto& kv) { return kv.second.expires_at <= now; });
}

std::vector<PlannedBlock> BlocklistPlanner::plan() const {
    std::vector<PlannedBlock> out;
    out.reserve(rules_.size());
    for (const auto& [_, r] : rules_) out.push_back(r);
    return out;
}

}  // namespace netprobe::analysis::security
