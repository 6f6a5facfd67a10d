// netprobe-agent --doctor: what the kernel offers, what NetProbe has loaded and
// attached (read from the kernel, tcx and netfilter links included), map fill, and
// the running agent's own health over its HTTP endpoint. Text or JSON.
#pragma once

#include <cstdint>
#include <string>

namespace netprobe::agent {

struct DoctorOptions {
    bool json = false;
    std::string address = "127.0.0.1";  // where the running agent listens
    std::uint16_t port = 8081;
    std::string basic_auth;             // "user:password" (env NETPROBE_DOCTOR_AUTH)
};

// Prints the report on stdout; returns 0 when no problem was found, 1 otherwise.
int runDoctor(const DoctorOptions& options);

}  // namespace netprobe::agent
