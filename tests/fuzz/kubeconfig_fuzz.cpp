// --kubeconfig: YAML (and the base64 PEM blocks in it). File references resolve
// under a directory that does not exist.
#include <netprobe/k8s/config.hpp>

#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = netprobe::fuzz::text(data, size);
    auto c = netprobe::k8s::parseKubeconfig(in, "/nonexistent/kube");
    if (c) NP_FUZZ_CHECK(!c->host.empty() && c->port > 0);
    (void)netprobe::k8s::parseServerUrl(in);
    return 0;
}
