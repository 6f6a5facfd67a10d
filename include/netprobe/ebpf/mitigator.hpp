// netprobe::ebpf::Mitigator - makes the XDP blocklist (LPM trie + per-rule counters)
// hold exactly the rules it is asked for, with errors as values: a rule whose insert
// failed is retried at the next apply; a rule whose delete failed keeps its id (its
// counters are not handed to another rule) and its delete is retried, so no entry
// stays in the kernel without a rule that says so. Its status is published for the
// export (no map access in a scrape).
//
//   auto m = Mitigator::create(manager);
//   m->apply({{addr, 128, event_id}});   // on the security pipeline, after each evaluation
//   auto st = m->status();               // HTTP threads
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/ebpf/manager.hpp>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::ebpf {

struct BlockRequest {
    util::Addr16 addr{};         // IPv4 as IPv4-mapped
    std::uint8_t prefix = 128;   // over the 128-bit (mapped) form
    std::uint64_t event_id = 0;  // for the status only
    friend bool operator==(const BlockRequest&, const BlockRequest&) = default;
};

struct MitigationRule {
    std::string cidr;
    std::uint32_t rule_id = 0;
    std::uint64_t event_id = 0;
    Counter matched;        // packets/bytes XDP matched (dropped with mitigation on)
    bool removing = false;  // no longer wanted; its delete failed and is retried
};

struct MitigationStatus {
    std::vector<MitigationRule> rules;  // in the kernel, by cidr
    Counter retired;                    // matches of the rules removed so far
    std::uint64_t inserted_total = 0;
    std::uint64_t removed_total = 0;
    std::uint64_t insert_failures_total = 0;  // retried while the rule is wanted
    std::uint64_t delete_failures_total = 0;  // retried until it succeeds
    std::uint64_t counter_reset_failures_total = 0;
    std::uint64_t counter_read_failures_total = 0;
};

class Mitigator {
public:
    [[nodiscard]] static Result<std::unique_ptr<Mitigator>> create(const Manager& manager);
    ~Mitigator();
    Mitigator(const Mitigator&) = delete;
    Mitigator& operator=(const Mitigator&) = delete;

    // Reconciles the kernel blocklist with `desired` (one apply at a time) and publishes
    // the status; an error when some change failed (the status says which, and the next
    // apply retries it).
    Result<void> apply(const std::vector<BlockRequest>& desired);
    [[nodiscard]] std::shared_ptr<const MitigationStatus> status() const { return status_.load(); }

private:
    struct Impl;
    explicit Mitigator(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    std::atomic<std::shared_ptr<const MitigationStatus>> status_;
};

}  // namespace netprobe::ebpf
