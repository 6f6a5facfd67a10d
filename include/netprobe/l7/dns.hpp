// netprobe::l7 - DNS messages (RFC 1035) from captured bytes: header, the question, and
// the A/AAAA/CNAME answers (with their TTLs), bounded and strict: a message that is not
// a standard query or response with exactly one question is not a DNS message here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/util/ip.hpp>

namespace netprobe::l7 {

struct DnsAnswer {
    std::string name;          // owner name (lower case)
    std::uint16_t type = 0;    // 1 A, 28 AAAA, 5 CNAME
    std::uint32_t ttl = 0;
    util::Addr16 addr{};       // A (IPv4-mapped) / AAAA
    std::string target;        // CNAME
};

struct DnsMessage {
    std::uint16_t id = 0;
    bool response = false;
    bool truncated = false;    // TC bit
    std::uint8_t rcode = 0;
    std::string qname;         // lower case, without the final dot ("." for the root)
    std::uint16_t qtype = 0;
    std::uint16_t answer_count = 0;  // ANCOUNT as sent
    std::vector<DnsAnswer> answers;  // those of type A/AAAA/CNAME within the captured bytes (at most 32)
};

// bytes: one DNS message (a UDP payload, or a TCP one after its 2-byte length); it may be
// cut short (the capture copies 512 bytes): answers that run past the end are left out.
[[nodiscard]] std::optional<DnsMessage> parseDns(std::string_view bytes);
[[nodiscard]] std::string dnsTypeName(std::uint16_t type);  // "A", "AAAA", ..., else "TYPE<n>"
[[nodiscard]] std::string dnsRcodeName(std::uint8_t rcode); // "NOERROR", "NXDOMAIN", ..., else "RCODE<n>"
// A response code that says the server failed (FORMERR, SERVFAIL, NOTIMP, REFUSED), as
// opposed to an answer (NOERROR, NXDOMAIN).
[[nodiscard]] bool dnsRcodeIsError(std::uint8_t rcode);

}  // namespace netprobe::l7
