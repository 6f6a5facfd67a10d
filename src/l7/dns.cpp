// DNS message parsing (see dns.hpp).
#include <netprobe/l7/dns.hpp>

#include <cstring>

namespace netprobe::l7 {
namespace {

constexpr std::size_t kHeader = 12;
constexpr int kMaxJumps = 16;
constexpr std::size_t kMaxAnswers = 32;

std::uint16_t be16(std::string_view b, std::size_t at) {
    return static_cast<std::uint16_t>((static_cast<std::uint8_t>(b[at]) << 8) | static_cast<std::uint8_t>(b[at + 1]));
}
std::uint32_t be32(std::string_view b, std::size_t at) {
    return (std::uint32_t{be16(b, at)} << 16) | be16(b, at + 2);
}

// Reads a (possibly compressed) name at pos; sets pos past it in the message (not
// following pointers). nullopt: malformed or cut short.
std::optional<std::string> readName(std::string_view b, std::size_t& pos) {
    std::string out;
    std::size_t p = pos;
    bool jumped = false;
    int jumps = 0;
    while (true) {
        if (p >= b.size()) return std::nullopt;
        const auto len = static_cast<std::uint8_t>(b[p]);
        if ((len & 0xc0) == 0xc0) {
            if (p + 1 >= b.size() || ++jumps > kMaxJumps) return std::nullopt;
            const std::size_t target = ((len & 0x3f) << 8) | static_cast<std::uint8_t>(b[p + 1]);
            if (!jumped) pos = p + 2;
            jumped = true;
            if (target >= b.size()) return std::nullopt;
            p = target;
            continue;
        }
        if (len & 0xc0) return std::nullopt;  // 0x40/0x80: extended label types, not in use
        if (len == 0) {
            if (!jumped) pos = p + 1;
            break;
        }
        if (p + 1 + len > b.size()) return std::nullopt;
        if (!out.empty()) out += '.';
        for (std::size_t i = 0; i < len; ++i) {
            auto c = static_cast<unsigned char>(b[p + 1 + i]);
            if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c + 32);
            out += (c > 0x20 && c < 0x7f && c != '.') ? static_cast<char>(c) : '?';
        }
        if (out.size() > 255) return std::nullopt;
        p += 1 + len;
    }
    if (out.empty()) out = ".";
    return out;
}

}  // namespace

std::optional<DnsMessage> parseDns(std::string_view b) {
    if (b.size() < kHeader) return std::nullopt;
    DnsMessage m;
    m.id = be16(b, 0);
    const std::uint16_t flags = be16(b, 2);
    m.response = (flags & 0x8000) != 0;
    const int opcode = (flags >> 11) & 0xf;
    m.truncated = (flags & 0x0200) != 0;
    m.rcode = static_cast<std::uint8_t>(flags & 0xf);
    const std::uint16_t qd = be16(b, 4);
    m.answer_count = be16(b, 6);
    // Standard queries and their responses, one question (what resolvers send): anything
    // else on port 53 is not counted as DNS requests.
    if (opcode != 0 || qd != 1) return std::nullopt;
    if (!m.response && (m.answer_count != 0 || m.rcode != 0)) return std::nullopt;
    std::size_t pos = kHeader;
    auto qn = readName(b, pos);
    if (!qn || pos + 4 > b.size()) return std::nullopt;
    m.qname = std::move(*qn);
    m.qtype = be16(b, pos);
    const std::uint16_t qclass = be16(b, pos + 2);
    if (qclass != 1 && qclass != 255 && qclass != 3) return std::nullopt;  // IN, ANY, CH
    pos += 4;
    for (std::uint16_t i = 0; i < m.answer_count && m.answers.size() < kMaxAnswers; ++i) {
        std::size_t p = pos;
        auto owner = readName(b, p);
        if (!owner || p + 10 > b.size()) break;  // cut short: the rest was not captured
        const std::uint16_t type = be16(b, p), rdlen = be16(b, p + 8);
        const std::uint32_t ttl = be32(b, p + 4);
        const std::size_t rdata = p + 10;
        if (rdata + rdlen > b.size()) break;
        pos = rdata + rdlen;
        DnsAnswer a;
        a.name = std::move(*owner);
        a.type = type;
        a.ttl = ttl;
        if (type == 1 && rdlen == 4) {
            a.addr[10] = a.addr[11] = 0xff;
            std::memcpy(a.addr.data() + 12, b.data() + rdata, 4);
        } else if (type == 28 && rdlen == 16) {
            std::memcpy(a.addr.data(), b.data() + rdata, 16);
        } else if (type == 5) {
            std::size_t t = rdata;
            auto target = readName(b, t);
            if (!target) continue;
            a.target = std::move(*target);
        } else {
            continue;
        }
        m.answers.push_back(std::move(a));
    }
    return m;
}

std::string dnsTypeName(std::uint16_t t) {
    switch (t) {
        case 1: return "A";
        case 2: return "NS";
        case 5: return "CNAME";
        case 6: return "SOA";
        case 12: return "PTR";
        case 15: return "MX";
        case 16: return "TXT";
        case 28: return "AAAA";
        case 33: return "SRV";
        case 35: return "NAPTR";
        case 43: return "DS";
        case 48: return "DNSKEY";
        case 64: return "SVCB";
        case 65: return "HTTPS";
        case 255: return "ANY";
        default: return "TYPE" + std::to_string(t);
    }
}

std::string dnsRcodeName(std::uint8_t r) {
    switch (r) {
        case 0: return "NOERROR";
        case 1: return "FORMERR";
        case 2: return "SERVFAIL";
        case 3: return "NXDOMAIN";
        case 4: return "NOTIMP";
        case 5: return "REFUSED";
        default: return "RCODE" + std::to_string(r);
    }
}

bool dnsRcodeIsError(std::uint8_t r) { return r == 1 || r == 2 || r == 4 || r == 5; }

}  // namespace netprobe::l7
