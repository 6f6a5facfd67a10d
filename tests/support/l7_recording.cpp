// Reading and writing L7 recordings (see l7_recording.hpp).
#include "support/l7_recording.hpp"

#include <fstream>
#include <sstream>

namespace netprobe::testing {
namespace {

std::string hex(std::string_view s) {
    if (s.empty()) return "-";
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) {
        out += kDigits[c >> 4];
        out += kDigits[c & 15];
    }
    return out;
}

std::expected<std::string, std::string> unhex(const std::string& h) {
    if (h == "-") return std::string();
    if (h.size() % 2) return std::unexpected("odd hex length");
    std::string out;
    out.reserve(h.size() / 2);
    auto digit = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < h.size(); i += 2) {
        const int a = digit(h[i]), b = digit(h[i + 1]);
        if (a < 0 || b < 0) return std::unexpected("bad hex digit");
        out += static_cast<char>(a * 16 + b);
    }
    return out;
}

}  // namespace

void writeL7Message(std::ostream& out, const ebpf::L7Message& m, std::uint64_t t0) {
    const char dir = m.direction == NP_L7_SEND ? 'S' : m.direction == NP_L7_RECV ? 'R' : 'C';
    out << "msg " << std::hex << m.sock << std::dec << ' ' << dir << ' ' << static_cast<int>(m.protocol) << ' '
        << m.local_port << ' ' << m.remote_port << ' ' << m.len << ' ' << (m.ts_ns - t0) << ' ' << hex(m.head)
        << ' ' << hex(m.tail);
    // Flags the replay cannot derive from the lengths (NP_L7_F_SPLIT): a last field, only when set.
    // Then the pieces beyond the head (AMQP frames the kernel walked), only when there are
    // some (the flags field is then written even when 0).
    const int kept = m.flags & ~(NP_L7_F_TRUNCATED | NP_L7_F_NO_TAIL);
    if (kept || !m.pieces.empty()) out << ' ' << kept;
    if (!m.pieces.empty()) out << ' ' << hex(m.pieces);
    out << '\n';
}

std::expected<L7Recording, std::string> readL7Recording(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::unexpected("cannot open " + path);
    L7Recording rec;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ls(line);
        std::string kind;
        ls >> kind;
        const std::string where = path + ":" + std::to_string(n);
        if (kind == "expect") {
            L7Expectation e;
            if (!(ls >> e.side >> e.protocol >> e.method >> e.status_class >> e.count))
                return std::unexpected(where + ": bad expect line");
            rec.expectations.push_back(std::move(e));
            continue;
        }
        if (kind != "msg") return std::unexpected(where + ": unknown line kind " + kind);
        ebpf::L7Message m;
        std::string dir, head, tail;
        int proto = 0;
        if (!(ls >> std::hex >> m.sock >> std::dec >> dir >> proto >> m.local_port >> m.remote_port >> m.len >>
              m.ts_ns >> head >> tail))
            return std::unexpected(where + ": bad msg line");
        m.direction = dir == "S" ? NP_L7_SEND : dir == "R" ? NP_L7_RECV : NP_L7_CLOSED;
        m.protocol = static_cast<std::uint8_t>(proto);
        m.family = 4;
        m.ip_proto = 6;
        auto h = unhex(head), t = unhex(tail);
        if (!h || !t) return std::unexpected(where + ": " + (h ? t.error() : h.error()));
        m.head = std::move(*h);
        m.tail = std::move(*t);
        if (int flags = 0; ls >> flags) {
            m.flags = static_cast<std::uint8_t>(flags);
            if (std::string pieces; ls >> pieces) {
                auto p = unhex(pieces);
                if (!p) return std::unexpected(where + ": pieces: " + p.error());
                m.pieces = std::move(*p);
            }
        }
        if (m.head.size() < m.len) m.flags |= NP_L7_F_TRUNCATED;
        rec.messages.push_back(std::move(m));
    }
    return rec;
}

}  // namespace netprobe::testing
