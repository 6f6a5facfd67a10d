#include "ebpf/kernel_symbols.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>
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
    // For each wanted address, the text symbol with the greatest address <= it. The
    // file has ~200k lines and is mostly in address order, so a wanted address is
    // updated by nearly every line below it: parsed by hand (sscanf was a fifth of the
    // agent's CPU under load), and names copied into strings that keep their capacity.
    std::map<std::uint64_t, std::pair<std::uint64_t, std::string>> best;  // addr -> (symbol address, name)
    for (auto a : want) best[a] = {0, {}};
    if (std::FILE* f = std::fopen("/proc/kallsyms", "re")) {
        char line[512];
        while (std::fgets(line, sizeof line, f)) {
            // "ffffffff81000000 T _stext\n", modules: "... t name\t[module]\n"
            const char* end = line + std::strlen(line);
            std::uint64_t a = 0;
            auto [p, ec] = std::from_chars(line, end, a, 16);
            if (ec != std::errc{} || a == 0 || end - p < 4 || p[0] != ' ' || p[2] != ' ') continue;
            if (p[1] != 't' && p[1] != 'T') continue;
            const char* name = p + 3;
            const std::string_view sym(name, std::strcspn(name, " \t\n"));
            if (sym.empty()) continue;
            // every wanted address at or above a
            for (auto it = best.lower_bound(a); it != best.end(); ++it)
                if (a >= it->second.first) {
                    it->second.first = a;
                    it->second.second.assign(sym);
                }
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
