// rtnetlink link messages (RTM_NEWLINK/RTM_DELLINK) as the interface watcher decodes them,
// and qdisc messages (RTM_NEWQDISC) as the links source's dump decodes them.
#include <net/if.h>

#include <cstring>

#include <netprobe/ebpf/interfaces.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An exact-size heap copy, so that ASan sees any read past the end.
    auto* copy = new std::byte[size ? size : 1];
    if (size) std::memcpy(copy, data, size);
    const auto events = netprobe::ebpf::decodeLinkMessages({copy, size});
    for (const auto& e : events) NP_FUZZ_CHECK(e.iface.name.size() < size + 1);
    NP_FUZZ_CHECK(events.size() <= size / 32 + 1);
    const auto qdiscs = netprobe::ebpf::decodeQdiscMessages({copy, size});
    for (const auto& q : qdiscs) NP_FUZZ_CHECK(q.kind.size() <= 32);
    NP_FUZZ_CHECK(qdiscs.size() <= size / 36 + 1);
    delete[] copy;
    return 0;
}
