// np_hook_ref: attaches the empty reference programs of bench/hook_reference.bpf.c at one
// hook and holds them until SIGTERM/SIGINT (bench/l7_http.sh measures nginx + wrk
// with and without them). Usage: np_hook_ref sys_exit|sock
// Prints "attached" on stdout once the programs run; exits non-zero when the hook is
// missing (sock: Linux < 6.3) or the load fails.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include <bpf/libbpf.h>

#include "hook_reference.skel.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void onSignal(int) { g_stop = 1; }
struct SkelFree {
    void operator()(hook_reference_bpf* s) const { hook_reference_bpf__destroy(s); }
};
struct LinkFree {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
}  // namespace

int main(int argc, char** argv) {
    const std::string_view mode = argc == 2 ? argv[1] : "";
    if (mode != "sys_exit" && mode != "sock") {
        std::fprintf(stderr, "usage: np_hook_ref sys_exit|sock\n");
        return 2;
    }
    std::unique_ptr<hook_reference_bpf, SkelFree> skel(hook_reference_bpf__open());
    if (!skel) {
        std::fprintf(stderr, "np_hook_ref: open: %s\n", std::strerror(errno));
        return 1;
    }
    const bool sock = mode == "sock";
    bpf_program__set_autoload(skel->progs.np_ref_sys_exit, !sock);
    bpf_program__set_autoload(skel->progs.np_ref_sock_send, sock);
    bpf_program__set_autoload(skel->progs.np_ref_sock_recv, sock);
    if (int err = hook_reference_bpf__load(skel.get())) {
        std::fprintf(stderr, "np_hook_ref: load (%s hook): %s\n", argv[1], std::strerror(-err));
        return 1;
    }
    std::vector<std::unique_ptr<bpf_link, LinkFree>> links;  // destroyed before the skeleton
    auto attach = [&](bpf_program* p) {
        bpf_link* l = bpf_program__attach(p);
        if (!l) {
            std::fprintf(stderr, "np_hook_ref: attach %s: %s\n", bpf_program__name(p), std::strerror(errno));
            return false;
        }
        links.emplace_back(l);
        return true;
    };
    const bool ok = sock ? attach(skel->progs.np_ref_sock_send) && attach(skel->progs.np_ref_sock_recv)
                         : attach(skel->progs.np_ref_sys_exit);
    if (!ok) return 1;
    std::signal(SIGTERM, onSignal);
    std::signal(SIGINT, onSignal);
    std::printf("attached\n");
    std::fflush(stdout);
    while (!g_stop) ::pause();
    return 0;
}
