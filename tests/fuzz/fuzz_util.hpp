// Shared bits of the libFuzzer harnesses (tests/fuzz): inputs as text, and a check
// that aborts with a message (libFuzzer then saves the input as a crash).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace netprobe::fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
}

#define NP_FUZZ_CHECK(cond)                        \
    do {                                           \
        if (!(cond)) ::netprobe::fuzz::fail(#cond); \
    } while (0)

}  // namespace netprobe::fuzz
