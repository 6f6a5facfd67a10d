// Helpers of the BPF_PROG_TEST_RUN benchmarks: libbpf's warnings only, and a fatal error.
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace npbench {

// For libbpf_set_print: warnings only (the load logs of a successful run are noise).
inline int quietLibbpf(enum libbpf_print_level level, const char* fmt, va_list args) {
    if (level != LIBBPF_WARN) return 0;
    return std::vfprintf(stderr, fmt, args);
}

// "TOOL: WHAT: strerror(err)" on stderr, exit 1.
[[noreturn]] inline void fail(const char* tool, const char* what, int err) {
    std::fprintf(stderr, "%s: %s: %s\n", tool, what, std::strerror(err));
    std::exit(1);
}

// A reader of a ring buffer map that throws its records away (drained so the ring never
// fills during a measurement); exits on failure.
using RingPtr = std::unique_ptr<ring_buffer, void (*)(ring_buffer*)>;
inline RingPtr discardingRing(const char* tool, int map_fd) {
    ring_buffer* r = ring_buffer__new(map_fd, [](void*, void*, std::size_t) { return 0; }, nullptr, nullptr);
    if (!r) fail(tool, "ring_buffer__new", errno);
    return RingPtr(r, ring_buffer__free);
}

}  // namespace npbench
