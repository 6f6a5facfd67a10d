#include "ebpf/attach.hpp"

#include "netprobe/util/logging.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace netprobe::ebpf {

namespace {

bool progIsOurs(std::uint32_t prog_id) {
    if (prog_id == 0) return false;
    int fd = bpf_prog_get_fd_by_id(prog_id);
    if (fd < 0) return false;
    UniqueFd owned(fd);
    bpf_prog_info info{};
    __u32 len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return false;
    return std::strncmp(info.name, "netprobe", 8) == 0;
}

bpf_tc_hook makeHook(std::uint32_t ifindex, bpf_tc_attach_point where) {
    bpf_tc_hook hook{};
    hook.sz = sizeof hook;
    hook.ifindex = static_cast<int>(ifindex);
    hook.attach_point = where;
    return hook;
}

bpf_tc_opts makeOpts(int prog_fd) {
    bpf_tc_opts opts{};
    opts.sz = sizeof opts;
    opts.handle = kClsactHandle;
    opts.priority = kClsactPriority;
    opts.prog_fd = prog_fd;
    return opts;
}

}  // namespace

Result<XdpAttachment> XdpAttachment::attach(int prog_fd, std::uint32_t ifindex, XdpMode mode) {
    bpf_link_create_opts opts{};
    opts.sz = sizeof opts;
    opts.flags = mode == XdpMode::Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex), BPF_XDP, &opts);
    if (fd < 0) return std::unexpected(errnoError(errno, std::string("XDP ") + toString(mode) + " link"));
    XdpAttachment a;
    a.link_ = UniqueFd(fd);
    return a;
}

Result<TcAttachment> TcAttachment::attach(int prog_fd, std::uint32_t ifindex, bool ingress, TcMode mode) {
    TcAttachment a;
    a.ifindex_ = ifindex;
    a.ingress_ = ingress;
    a.mode_ = mode;
    if (mode == TcMode::Tcx) {
        // First in the device's tcx chain (BPF_F_BEFORE without a relative program): the
        // programs there already (a CNI's, Cilium's) end the chain for the packets they pass
        // or redirect, so NetProbe must run before them to see those; it returns TCX_NEXT and
        // they run after it, untouched. (BPF_F_BEFORE: newer than this libbpf's header.)
        constexpr __u32 kBpfFBefore = 1U << 3;
        LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = kBpfFBefore);
        int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex),
                                 static_cast<bpf_attach_type>(ingress ? kBpfTcxIngress : kBpfTcxEgress), &lo);
        if (fd < 0) return std::unexpected(errnoError(errno, ingress ? "tcx ingress link" : "tcx egress link"));
        a.link_ = UniqueFd(fd);
        return a;
    }
    auto hook = makeHook(ifindex, ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    auto opts = makeOpts(prog_fd);
    opts.flags = BPF_TC_F_REPLACE;  // replaces a killed agent's filter: never two
    int err = bpf_tc_attach(&hook, &opts);
    if (err) return std::unexpected(errnoError(err, ingress ? "clsact ingress filter" : "clsact egress filter"));
    a.clsact_attached_ = true;
    return a;
}

TcAttachment::TcAttachment(TcAttachment&& o) noexcept
    : link_(std::move(o.link_)), mode_(o.mode_), ifindex_(o.ifindex_), ingress_(o.ingress_),
      clsact_attached_(std::exchange(o.clsact_attached_, false)) {}

TcAttachment& TcAttachment::operator=(TcAttachment&& o) noexcept {
    if (this != &o) {
        release();
        link_ = std::move(o.link_);
        mode_ = o.mode_;
        ifindex_ = o.ifindex_;
        ingress_ = o.ingress_;
        clsact_attached_ = std::exchange(o.clsact_attached_, false);
    }
    return *this;
}

TcAttachment::~TcAttachment() { release(); }

void TcAttachment::release() {
    link_.reset();
    if (clsact_attached_) {
        auto hook = makeHook(ifindex_, ingress_ ? BPF_TC_INGRESS : BPF_TC_EGRESS);
        auto opts = makeOpts(0);
        int err = bpf_tc_detach(&hook, &opts);
        if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
            spdlog::debug("clsact detach ifindex {}: {}", ifindex_, std::strerror(-err));
        clsact_attached_ = false;
    }
}

Result<ClsactQdisc> ClsactQdisc::ensure(std::uint32_t ifindex) {
    util::QuietLibbpf quiet;  // "exists" is an expected answer
    auto hook = makeHook(ifindex, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
    int err = bpf_tc_hook_create(&hook);
    ClsactQdisc q;
    q.ifindex_ = ifindex;
    if (err == 0) {
        q.owned_ = true;
    } else if (err == -EEXIST) {
        q.owned_ = false;
    } else {
        return std::unexpected(errnoError(err, "create clsact qdisc"));
    }
    return q;
}

ClsactQdisc::ClsactQdisc(ClsactQdisc&& o) noexcept
    : ifindex_(o.ifindex_), owned_(std::exchange(o.owned_, false)) {}

ClsactQdisc& ClsactQdisc::operator=(ClsactQdisc&& o) noexcept {
    if (this != &o) {
        this->~ClsactQdisc();
        ifindex_ = o.ifindex_;
        owned_ = std::exchange(o.owned_, false);
    }
    return *this;
}

ClsactQdisc::~ClsactQdisc() {
    if (!owned_) return;
    auto hook = makeHook(ifindex_, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
    int err = bpf_tc_hook_destroy(&hook);
    if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
        spdlog::debug("clsact qdisc destroy ifindex {}: {}", ifindex_, std::strerror(-err));
    owned_ = false;
}

int removeLeftovers(std::uint32_t ifindex) {
    util::QuietLibbpf quiet;  // "no qdisc" / "no filter" are the usual answers here
    int removed = 0;
    // Legacy (non-link) XDP programs survive their process; links do not.
    bpf_xdp_query_opts q{};
    q.sz = sizeof q;
    if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) == 0) {
        struct {
            __u32 id;
            __u32 flags;
        } modes[] = {{q.drv_prog_id, XDP_FLAGS_DRV_MODE}, {q.skb_prog_id, XDP_FLAGS_SKB_MODE}};
        for (auto [id, flags] : modes) {
            if (!progIsOurs(id)) continue;
            // Detaching fails with EBUSY for a link owned by a live process: leave it.
            if (bpf_xdp_detach(static_cast<int>(ifindex), flags, nullptr) == 0) {
                ++removed;
                spdlog::info("removed leftover XDP program id {} from ifindex {}", id, ifindex);
            }
        }
    }
    // clsact filters with our handle/priority.
    for (auto where : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
        auto hook = makeHook(ifindex, where);
        auto opts = makeOpts(0);
        if (bpf_tc_query(&hook, &opts) != 0) continue;
        if (!progIsOurs(opts.prog_id)) continue;
        bpf_tc_opts del = makeOpts(0);
        if (bpf_tc_detach(&hook, &del) == 0) {
            ++removed;
            spdlog::info("removed leftover clsact {} filter from ifindex {}",
                         where == BPF_TC_INGRESS ? "ingress" : "egress", ifindex);
        }
    }
    return removed;
}

}  // namespace netprobe::ebpf
