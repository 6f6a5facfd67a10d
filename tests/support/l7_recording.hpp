// Recordings of captured L7 messages (tests/data/l7/*.rec): what the kernel capture
// delivered for real servers and clients, replayed by the unit tests through the
// parsers. Written by tests/tools/np_l7_record (driven by tests/data/l7/record.py), never
// by hand. One line per message:
//   msg <sock> <S|R|C> <protocol> <local_port> <remote_port> <len> <ts_ns> <head hex|-> <tail hex|-> [flags]
// (flags: NP_L7_F_* other than the truncation ones, in decimal, when any is set)
// and the expected outcome, from the server's or client's own counts at recording time:
//   expect <client|server> <protocol> <method> <status_class> <count>
// Lines starting with '#' are comments.
#pragma once

#include <cstdint>
#include <expected>
#include <ostream>
#include <string>
#include <vector>

#include <netprobe/ebpf/l7_capture.hpp>

namespace netprobe::testing {

struct L7Expectation {
    std::string side, protocol, method, status_class;
    std::uint64_t count = 0;
};

struct L7Recording {
    std::vector<ebpf::L7Message> messages;
    std::vector<L7Expectation> expectations;
};

// Writes one message line (timestamps relative to t0).
void writeL7Message(std::ostream& out, const ebpf::L7Message& m, std::uint64_t t0);
[[nodiscard]] std::expected<L7Recording, std::string> readL7Recording(const std::string& path);

}  // namespace netprobe::testing
