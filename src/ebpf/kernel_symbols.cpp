#include "ebpf/kernel_symbols.hpp"

#include <cstdio>
#include <map>
#include <vector>

namespace netprobe::ebpf {

namespace {
std::string hex(std::uint64_t addr) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(addr));
    return buf;
}
}  // namespace

std::string KernelSymbols::name(std::uint64_t addr, bool& queued) const {
    queued = false;
    std::lock_guard lock(mu_);
    if (auto it = names_.find(addr); it != names_.end()) return it->second;
    if (names_.size() + pending_.size() < kMaxCached) queued = pending_.insert(addr).second;
    return hex(addr);
}

void KernelSymbols::resolvePending() {
    std::vector<std::uint64_t> want;
    {
        std::lock_guard lock(mu_);
        want.assign(pending_.begin(), pending_.end());
    }
    if (want.empty()) return;
    // For each wanted address, the text symbol with the greatest address <= it.
    std::map<std::uint64_t, std::pair<std::uint64_t, std::string>> best;  // addr -> (symbol address, name)
    for (auto a : want) best[a] = {0, {}};
    if (std::FILE* f = std::fopen("/proc/kallsyms", "re")) {
        char line[512];
        while (std::fgets(line, sizeof line, f)) {
            unsigned long long a = 0;
            char type = 0;
            char sym[256];
            if (std::sscanf(line, "%llx %c %255s", &a, &type, sym) != 3 || a == 0) continue;
            if (type != 't' && type != 'T') continue;
            // every wanted address at or above a
            for (auto it = best.lower_bound(a); it != best.end(); ++it)
                if (a >= it->second.first) it->second = {a, sym};
        }
        std::fclose(f);
    }
    std::lock_guard lock(mu_);
    for (const auto& [addr, sym] : best) {
        pending_.erase(addr);
        // hidden addresses (kptr_restrict) stay numeric
        names_[addr] = sym.second.empty() ? hex(addr) : sym.second + "+" + hex(addr - sym.first);
    }
}

}  // namespace netprobe::ebpf
