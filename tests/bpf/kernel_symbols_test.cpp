// Drop-location names: the kernel's own %pS (bpf/progs/ksym.bpf.c run with
// BPF_PROG_TEST_RUN) must name an address as /proc/kallsyms places it (the oracle:
// the kernel's symbol list, read and matched here independently).
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ebpf/kernel_symbols.hpp"

namespace {

struct Sym {
    std::uint64_t addr = 0;
    std::string name;
};

// Built-in text symbols ("T"/"t", no module) in address order.
std::vector<Sym> kallsyms() {
    std::vector<Sym> out;
    std::ifstream f("/proc/kallsyms");
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string a, type, name, module;
        if (!(in >> a >> type >> name) || (in >> module)) continue;
        std::uint64_t v = 0;
        std::from_chars(a.data(), a.data() + a.size(), v, 16);
        if (v == 0 || (type != "T" && type != "t")) continue;
        out.push_back({v, name});
    }
    std::sort(out.begin(), out.end(), [](const Sym& x, const Sym& y) { return x.addr < y.addr; });
    return out;
}

std::string resolved(netprobe::ebpf::KernelSymbols& ks, std::uint64_t addr) {
    bool queued = false;
    (void)ks.name(addr, queued);
    ks.resolvePending();
    return ks.name(addr, queued);
}

}  // namespace

TEST(KernelSymbols, NamesAddressesAsKallsymsPlacesThem) {
    const auto syms = kallsyms();
    ASSERT_GT(syms.size(), 1000u) << "/proc/kallsyms shows no addresses (kptr_restrict?)";
    netprobe::ebpf::KernelSymbols ks;
    int checked = 0;
    for (const char* want : {"tcp_v4_rcv", "ip_rcv", "udp_rcv", "__netif_receive_skb_core"}) {
        auto it = std::find_if(syms.begin(), syms.end(), [&](const Sym& s) { return s.name == want; });
        if (it == syms.end()) continue;
        // a symbol of its own address, at least 0x20 bytes long (an alias would be named
        // either way)
        auto next = it + 1;
        if (next == syms.end() || next->addr < it->addr + 0x20) continue;
        if (it != syms.begin() && (it - 1)->addr == it->addr) continue;
        EXPECT_EQ(resolved(ks, it->addr + 0x1a), std::string(want) + "+0x1a");
        ++checked;
    }
    EXPECT_GE(checked, 2) << "none of the expected symbols found";
    EXPECT_TRUE(ks.namesInKernel()) << "the ksym program did not load: /proc/kallsyms was read instead";
    // an address below the kernel's text: no symbol, stays numeric
    EXPECT_EQ(resolved(ks, 0x1000), "0x1000");
}

TEST(KernelSymbols, PrintedSymbolShapes) {
    using netprobe::ebpf::KernelSymbols;
    EXPECT_EQ(KernelSymbols::fromPrintedSymbol("tcp_v4_rcv+0x99/0x10a0"), "tcp_v4_rcv+0x99");
    EXPECT_EQ(KernelSymbols::fromPrintedSymbol("nf_hook_slow+0x3c/0xb0 [nf_tables]"), "nf_hook_slow+0x3c");
    EXPECT_EQ(KernelSymbols::fromPrintedSymbol("0xffffffffc0001234"), std::nullopt);
    EXPECT_EQ(KernelSymbols::fromPrintedSymbol(""), std::nullopt);
    EXPECT_EQ(KernelSymbols::fromPrintedSymbol("+0x1/0x2"), std::nullopt);
    EXPECT_EQ(KernelSymbols::fromPrintedSymbol("name+0x10"), std::nullopt);
}
