#include "ebpf/kernel_symbols.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <string_view>
#include <vector>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <netprobe/ebpf/map_io.hpp>

#include "ksym.skel.h"

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

struct KernelSymbols::Namer {
    Owned<ksym_bpf, ksym_bpf__destroy> skel;
};

KernelSymbols::KernelSymbols() = default;
KernelSymbols::~KernelSymbols() = default;

std::optional<std::string> KernelSymbols::fromPrintedSymbol(std::string_view printed) {
    const auto plus = printed.find("+0x");
    if (printed.empty() || printed.starts_with("0x") || plus == std::string_view::npos || plus == 0)
        return std::nullopt;
    const auto slash = printed.find('/', plus);
    if (slash == std::string_view::npos) return std::nullopt;
    return std::string(printed.substr(0, slash));
}

namespace {

// For each wanted address, the text symbol with the greatest address <= it, from one
// pass over /proc/kallsyms. The file has ~120k lines and is mostly in address order, so
// a wanted address is updated by nearly every line below it: parsed by hand (sscanf was
// a fifth of the agent's CPU under load), and names copied into strings that keep their
// capacity.
std::vector<std::pair<std::uint64_t, std::string>> fromKallsyms(const std::vector<std::uint64_t>& want) {
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
    std::vector<std::pair<std::uint64_t, std::string>> out;
    for (const auto& [addr, sym] : best)  // hidden addresses (kptr_restrict) stay numeric
        out.emplace_back(addr, sym.second.empty() ? hex(addr) : sym.second + "+" + hex(addr - sym.first));
    return out;
}

}  // namespace

std::vector<std::pair<std::uint64_t, std::string>> KernelSymbols::lookUp(const std::vector<std::uint64_t>& want) {
    if (!namer_tried_) {
        namer_tried_ = true;
        auto skel = loadSkeleton<ksym_bpf, ksym_bpf__open, ksym_bpf__load, ksym_bpf__destroy>(
            "kernel symbol names", [](ksym_bpf&) -> Result<void> { return {}; });
        if (skel) {
            namer_ = std::make_unique<Namer>();
            namer_->skel = std::move(*skel);
        } else {
            spdlog::info("drop locations: named from /proc/kallsyms ({})", skel.error().message);
        }
    }
    if (!namer_) return fromKallsyms(want);
    std::vector<std::pair<std::uint64_t, std::string>> out;
    for (auto a : want) {
        np_ksym_ctx ctx{};
        ctx.addr = a;
        bpf_test_run_opts o{};
        o.sz = sizeof(o);
        o.ctx_in = &ctx;
        o.ctx_size_in = sizeof(ctx);
        auto& result = namer_->skel->bss->np_ksym_result;
        result.ret = 0;
        if (bpf_prog_test_run_opts(bpf_program__fd(namer_->skel->progs.np_ksym_name), &o) != 0 || result.ret <= 0) {
            out.emplace_back(a, hex(a));
            continue;
        }
        result.name[sizeof(result.name) - 1] = '\0';
        out.emplace_back(a, fromPrintedSymbol(result.name).value_or(hex(a)));
    }
    return out;
}

void KernelSymbols::resolvePending() {
    std::vector<std::uint64_t> want;
    {
        std::lock_guard lock(mu_);
        want.assign(pending_.begin(), pending_.end());
    }
    if (want.empty()) return;
    auto named = lookUp(want);
    std::lock_guard lock(mu_);
    for (auto& [addr, text] : named) {
        pending_.erase(addr);
        names_[addr] = std::move(text);
    }
}

}  // namespace netprobe::ebpf
