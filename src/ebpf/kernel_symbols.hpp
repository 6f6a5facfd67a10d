// Internal: kernel text symbols for drop locations. Readers only look up what a
// background task already resolved (an address seen for the first time reads as
// "0x..." until then); resolvePending() names every address seen since its last run:
// each with one kallsyms lookup in the kernel (bpf/progs/ksym.bpf.c, %pS), or where that
// program does not load (before Linux 5.14), with one pass over /proc/kallsyms for all
// of them. Only addresses drops came from are kept: holding every symbol cost ~19 MiB
// of resident memory.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace netprobe::ebpf {

class KernelSymbols {
public:
    KernelSymbols();
    ~KernelSymbols();
    KernelSymbols(const KernelSymbols&) = delete;
    KernelSymbols& operator=(const KernelSymbols&) = delete;

    // The name ("tcp_v4_rcv+0x1a4") when resolved, else the address in hex; an
    // unresolved address is queued for resolvePending(). Returns true in `queued`
    // when it was newly queued.
    [[nodiscard]] std::string name(std::uint64_t addr, bool& queued) const;
    // Resolves every queued address (blocking; called from one background task).
    void resolvePending();
    // Whether names come from the kernel's ksym program (false: not loaded yet, or
    // /proc/kallsyms is read instead).
    [[nodiscard]] bool namesInKernel() const { return namer_ != nullptr; }

    // "name+0xoff" of a %pS text ("name+0xoff/0xsize [module]"); nullopt for an address
    // the kernel has no symbol for ("0x...") or text of another shape.
    [[nodiscard]] static std::optional<std::string> fromPrintedSymbol(std::string_view printed);

private:
    struct Namer;  // the loaded ksym program
    // name -> text for each address (the kernel's program, else /proc/kallsyms)
    std::vector<std::pair<std::uint64_t, std::string>> lookUp(const std::vector<std::uint64_t>& want);

    static constexpr std::size_t kMaxCached = 4096;
    mutable std::mutex mu_;
    mutable std::unordered_map<std::uint64_t, std::string> names_;
    mutable std::unordered_set<std::uint64_t> pending_;
    std::unique_ptr<Namer> namer_;  // only resolvePending() touches it
    bool namer_tried_ = false;
};

}  // namespace netprobe::ebpf
