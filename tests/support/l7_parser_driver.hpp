// Driving a netprobe::l7::MessageParser in the unit tests: a sink that keeps the
// exchanges it reports, and a syscall whose bytes were all captured.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <netprobe/l7/parser.hpp>

namespace netprobe::testing {

struct Sink final : l7::ExchangeSink {
    std::vector<l7::Exchange> got;
    void onExchange(l7::Exchange&& e) override { got.push_back(std::move(e)); }
};

inline constexpr bool kSend = true, kRecv = false;

// A syscall whose bytes were all captured.
inline void feed(l7::MessageParser& p, bool sending, std::string_view bytes, std::uint64_t ts) {
    p.feed(sending, l7::Chunk{bytes, bytes.size(), {}, ts});
}

}  // namespace netprobe::testing
