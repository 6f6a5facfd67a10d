// netprobe::analysis::domains::DomainIntel - domain indicators matched against the
// names of the traffic: DNS queries and answers (the L7 source's requests with --l7, or
// the DNS responses captured at TC) and TLS ClientHello server names (captured at TC).
// The addresses answers gave (and the servers ClientHellos named) are held as temporary
// IP indicators.
//
//   snapshot.l7 / snapshot.names --match (qname, CNAME chain, SNI)--> hits (a bounded
//   ring with sequence numbers, read by the security stage, which opens
//   threat_intel_match events)
//                            --A/AAAA answers, TLS servers--> held addresses (the view; a
//   sink keeps the kernel's intel_resolved map equal to them, so flows to them are
//   counted, and dropped for a block feed with mitigation on, like any IP indicator's).
//
// A request seen at both ends (client and DNS server on this node), or a packet seen at
// two interfaces, counts once. Pure over the snapshot and the indicator set it is given;
// time is the snapshot's.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/intel/indicators.hpp>
#include <netprobe/l7/dns.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis::domains {

struct DomainIntelOptions {
    // The current indicator set (null: none loaded yet); read once per run.
    std::function<std::shared_ptr<const intel::IndicatorSet>()> indicators;
    intel::ResolvedConfig resolved;
    std::size_t max_hits = 1024;  // the ring of recent hits
};

// A DNS query whose name (or a name of its answer's CNAME chain) a domain indicator covers.
struct DomainHit {
    std::uint64_t seq = 0;                    // 1, 2, ... (the security stage reads each once)
    std::string kind;                         // "dns" (a query and its answer) or "tls_sni" (a ClientHello's server name)
    std::string via;                          // "l7" (syscall capture) or "tc" (name capture at TC)
    std::uint64_t mono_ns = 0;                // the query's first byte (CLOCK_MONOTONIC)
    std::chrono::system_clock::time_point time{};
    std::string qname, qtype, rcode;
    std::string name;                         // the name that matched (qname or a CNAME's)
    std::string indicator;                    // the listed domain that covers it
    std::string feed;
    std::uint8_t confidence = 100;
    bool block = false;
    std::string note;
    util::Addr16 client{}, server{};          // the querying end and the DNS server
    std::uint16_t client_port = 0, server_port = 0;
    std::uint8_t family = 4;
    std::uint32_t pid = 0;                    // the process that captured it (its side's)
    std::vector<util::Addr16> addresses;      // A/AAAA answers (now temporary indicators)
};

// An address resolved from a covered name, until `expires`.
struct ResolvedIndicator {
    util::Addr16 addr{};
    std::string name;                         // the name it answered for
    std::string indicator;                    // the listed domain
    std::string note;                         // the indicator's
    std::string feed;
    std::uint16_t feed_index = 0;             // in the set of `set_generation`
    std::uint8_t confidence = 100;
    bool block = false;
    std::uint64_t expires_mono_ns = 0;
    std::chrono::system_clock::time_point expires{};
};

struct DomainFeedCounters {
    std::uint64_t hits_total = 0;             // queries matched
    std::uint64_t addresses_total = 0;        // addresses added or renewed
    std::size_t resolved = 0;                 // held now
};

struct DomainIntelView {
    std::vector<DomainHit> hits;              // the most recent, oldest first
    std::uint64_t hits_total = 0;             // == the last hit's seq
    std::vector<ResolvedIndicator> resolved;  // by address
    // Changes whenever `resolved` does (an address, its feed or action); the kernel sink
    // applies the set only then.
    std::uint64_t resolved_generation = 0;
    std::uint64_t set_generation = 0;         // the indicator set the feed indexes refer to
    std::uint64_t dns_checked_total = 0;      // DNS requests looked at
    std::uint64_t resolved_dropped_total = 0; // addresses not held: max_addresses reached
    std::uint64_t resolved_expired_total = 0;
    std::map<std::string, DomainFeedCounters> feeds;  // by feed name (feeds with domains)
    bool active = false;                      // a set with domain indicators is loaded
};

class DomainIntel final : public Stage {
public:
    explicit DomainIntel(DomainIntelOptions options);
    [[nodiscard]] std::string_view name() const override { return "intel_domains"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    // A name seen: a DNS query with its answers, or a TLS server name (answers null).
    struct Candidate {
        std::uint64_t mono_ns = 0;
        std::string kind, via, qname, qtype, rcode;
        const std::vector<netprobe::l7::DnsAnswer>* answers = nullptr;
        util::Addr16 client{}, server{};
        std::uint16_t client_port = 0, server_port = 0;
        std::uint8_t family = 4;
        std::uint32_t pid = 0;
    };
    void consider(const Candidate& c, const intel::IndicatorSet& set, const collector::Snapshot& snap, std::uint64_t now);
    void revalidate(const intel::IndicatorSet& set);

    DomainIntelOptions opts_;
    std::deque<DomainHit> hits_;
    std::uint64_t seq_ = 0;
    std::map<util::Addr16, ResolvedIndicator> resolved_;
    std::uint64_t resolved_generation_ = 0;
    std::uint64_t set_generation_ = 0;
    bool have_set_ = false;
    std::uint64_t checked_ = 0, dropped_ = 0, expired_ = 0;
    std::map<std::string, DomainFeedCounters> feeds_;
};

}  // namespace netprobe::analysis::domains
