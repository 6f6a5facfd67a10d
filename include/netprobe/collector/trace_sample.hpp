// What the trace source publishes each collection: the packet path traces running and
// recently finished, with their per-stage counts, drops, devices and processes.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/trace.hpp>
#include <netprobe/ebpf/types.hpp>

namespace netprobe::collector {

struct TraceDrop {
    std::uint8_t dir = 0;         // 0: as the trace's src -> dst, 1: the reverse
    std::string stage;            // where it happened (traceDropStage)
    std::string reason;           // the kernel's name, without SKB_DROP_REASON_
    std::uint32_t reason_code = 0;
    std::uint64_t packets = 0;
};

struct TraceDevice {
    std::uint8_t dir = 0;
    std::string stage;            // "xdp", "tc_ingress", "prerouting", "input": in; the others: out
    std::uint32_t ifindex = 0;
    std::string name;             // in the agent's namespace; empty when unknown
    std::uint64_t packets = 0;
};

struct TraceResult {
    enum class State : std::uint8_t { Running, Finished, Failed };
    std::uint64_t id = 0;
    ebpf::TraceSpec spec;
    State state = State::Running;
    std::string error;            // Failed: why
    std::chrono::system_clock::time_point started{}, ends{};
    std::uint32_t seconds = 0;
    // [dir][enum np_trace_stage]
    std::array<std::array<ebpf::Counter, NP_TRACE_STAGE_MAX>, NP_TRACE_DIRS> stages{};
    std::vector<TraceDrop> drops;
    std::vector<TraceDevice> devices;
    std::vector<ebpf::TraceProcessCount> processes;
};

struct TraceSample {
    std::vector<TraceResult> traces;  // running (oldest first), then finished (newest first)
    std::uint64_t started_total = 0;
    std::uint64_t failed_total = 0;
    std::size_t active = 0;
    std::size_t hook_links = 0;       // trace-only links attached now (0 with no trace)
    std::array<std::uint64_t, NP_TRACE_ERR_MAX> lost{};  // records lost in the kernel (since start)
    std::string last_error;           // of the last failed read, empty when fine
};

// The stage a traced drop is shown at: the socket for socket/transport reasons
// (SOCKET_*, NO_SOCKET, TCP_*, UDP_*, ...), TC for TC_INGRESS/TC_EGRESS, else the last
// netfilter stage the skb reached (raw_stage), or "tc_ingress" / "socket" when it
// reached none (received / locally sent). Pure.
[[nodiscard]] std::string traceDropStage(std::uint8_t raw_stage, std::string_view reason);
[[nodiscard]] const char* traceStateName(TraceResult::State s);

}  // namespace netprobe::collector
