// Attachments of one program to one interface hook. Each is an owned object
// whose destructor detaches it. Link-based attachments (XDP links, tcx links)
// also vanish by themselves when the process dies, even by SIGKILL.
#pragma once

#include <cstdint>
#include <string>

#include "netprobe/util/fd.hpp"
#include "netprobe/ebpf/types.hpp"
#include "netprobe/util/error.hpp"

namespace netprobe::ebpf {

using util::UniqueFd;

// Attach types missing from Debian 12's uapi headers (kernel 6.6+ values).
inline constexpr int kBpfTcxIngress = 46;
inline constexpr int kBpfTcxEgress = 47;

// Fixed handle/priority of our clsact filters, so a restart finds (and replaces)
// what a killed agent left behind.
inline constexpr std::uint32_t kClsactHandle = 0x4e50;   // "NP"
inline constexpr std::uint32_t kClsactPriority = 0x4e50;

class XdpAttachment {
public:
    // mode Native or Generic (Auto is resolved by the caller).
    [[nodiscard]] static Result<XdpAttachment> attach(int prog_fd, std::uint32_t ifindex, XdpMode mode);
    XdpAttachment() = default;
    XdpAttachment(XdpAttachment&&) noexcept = default;
    XdpAttachment& operator=(XdpAttachment&&) noexcept = default;

private:
    UniqueFd link_;
};

class TcAttachment {
public:
    // mode Tcx or Clsact; ingress selects the hook.
    [[nodiscard]] static Result<TcAttachment> attach(int prog_fd, std::uint32_t ifindex, bool ingress, TcMode mode);
    TcAttachment() = default;
    TcAttachment(TcAttachment&& o) noexcept;
    TcAttachment& operator=(TcAttachment&& o) noexcept;
    ~TcAttachment();
    [[nodiscard]] TcMode mode() const { return mode_; }

private:
    void release();
    UniqueFd link_;           // tcx
    TcMode mode_ = TcMode::Tcx;
    std::uint32_t ifindex_ = 0;
    bool ingress_ = true;
    bool clsact_attached_ = false;
};

// The clsact qdisc holding our filters: created if absent, destroyed on release
// only if we created it (or found only our leftovers in it).
class ClsactQdisc {
public:
    [[nodiscard]] static Result<ClsactQdisc> ensure(std::uint32_t ifindex);
    ClsactQdisc() = default;
    ClsactQdisc(ClsactQdisc&& o) noexcept;
    ClsactQdisc& operator=(ClsactQdisc&& o) noexcept;
    ~ClsactQdisc();

private:
    std::uint32_t ifindex_ = 0;
    bool owned_ = false;
};

// Removes programs named netprobe* that a killed agent left attached in a way
// that survives the process (legacy XDP, clsact filters). Returns how many.
int removeLeftovers(std::uint32_t ifindex);

}  // namespace netprobe::ebpf
