// netprobe::ebpf::tracepointId - the perf event id of a tracefs tracepoint
// (events/<category>/<name>/id), with or without tracefs mounted.
//
// Per-syscall tracepoints (syscalls:sys_enter_close) have ids that only tracefs tells.
// Many nodes and containers do not mount it. Where neither /sys/kernel/tracing nor
// /sys/kernel/debug/tracing has the event, a thread of its own unshares its mount
// namespace, mounts tracefs there (private: nothing is visible outside the thread, and
// nothing is left when the thread ends) and reads the id. The id is all a perf event
// needs; the mount is not kept.
//
//   auto id = tracepointId("syscalls", "sys_enter_close");  // -> 784
#pragma once

#include <string>

#include <netprobe/util/error.hpp>

namespace netprobe::ebpf {

struct TracepointId {
    int id = 0;
    bool private_mount = false;  // read from a tracefs mounted for the occasion
};

[[nodiscard]] Result<TracepointId> tracepointId(const std::string& category, const std::string& name);

}  // namespace netprobe::ebpf
