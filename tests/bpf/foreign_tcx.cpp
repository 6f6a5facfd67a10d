// np_foreign_tcx IFNAME: attaches tests/bpf/foreign_tcx.bpf.c's programs to IFNAME's tcx
// ingress and egress (appended: as a CNI agent that started before NetProbe would be
// after its own reload), prints "ready", then answers each line read on stdin with the
// packets its programs saw ("<ingress> <egress>"). Exits (the links go with it) at EOF.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "foreign_tcx.skel.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s IFNAME\n", argv[0]);
        return 2;
    }
    const unsigned ifindex = if_nametoindex(argv[1]);
    if (!ifindex) {
        std::perror(argv[1]);
        return 1;
    }
    foreign_tcx_bpf* s = foreign_tcx_bpf__open_and_load();
    if (!s) {
        std::perror("load foreign_tcx");
        return 1;
    }
    constexpr int kTcxIngress = 46, kTcxEgress = 47;  // BPF_TCX_INGRESS/EGRESS (newer than this libbpf's header)
    const int in = bpf_link_create(bpf_program__fd(s->progs.foreign_tc_in), static_cast<int>(ifindex),
                                   static_cast<bpf_attach_type>(kTcxIngress), nullptr);
    const int eg = bpf_link_create(bpf_program__fd(s->progs.foreign_tc_eg), static_cast<int>(ifindex),
                                   static_cast<bpf_attach_type>(kTcxEgress), nullptr);
    if (in < 0 || eg < 0) {
        std::perror("tcx link");
        foreign_tcx_bpf__destroy(s);
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    const int map = bpf_map__fd(s->maps.foreign_seen);
    std::string line;
    while (std::getline(std::cin, line)) {
        unsigned long long v[2] = {0, 0};
        for (unsigned k = 0; k < 2; ++k) bpf_map_lookup_elem(map, &k, &v[k]);
        std::printf("%llu %llu\n", v[0], v[1]);
        std::fflush(stdout);
    }
    close(in);
    close(eg);
    foreign_tcx_bpf__destroy(s);
    return 0;
}
