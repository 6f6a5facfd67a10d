// Incidents: the detectors' findings turned into events that open, update and end
// (/api/v1/events, --events-log, netprobe_security_* series). Pure: time comes in.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <netprobe/analysis/security/config.hpp>
#include <netprobe/analysis/security/detect.hpp>

namespace netprobe::analysis::security {

using WallTime = std::chrono::system_clock::time_point;

struct SourceShare {
    Addr16 addr{};
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// One incident, as /api/v1/events shows it. Immutable once published: an update
// makes a new copy.
struct SecurityEvent {
    std::uint64_t id = 0;
    EventType type{};
    Severity severity{};
    std::optional<Addr16> src;
    std::optional<Addr16> dst;
    std::vector<Addr16> targets;
    WallTime detected_at{};
    WallTime first_seen{};
    WallTime last_seen{};
    std::optional<WallTime> ended_at;
    Evidence evidence;
    std::vector<SourceShare> top_sources;  // floods: the largest senders to dst
    std::vector<std::string> blocked;      // CIDRs mitigation was asked to block for this event
};
using EventPtr = std::shared_ptr<const SecurityEvent>;

struct EventQuery {
    std::optional<WallTime> since;  // events detected, updated or ended at or after
    std::vector<EventType> types;   // empty: all
    std::size_t limit = 100;
};
// The events matching q, newest first.
[[nodiscard]] std::vector<EventPtr> selectEvents(const std::vector<EventPtr>& newest_first, const EventQuery& q);

[[nodiscard]] bool floodType(EventType t);
// Events whose source is the attacker (blocked by source address).
[[nodiscard]] bool sourceBased(EventType t);

// What one evaluation changed: events opened and events ended, for sinks (the log).
struct EventChange {
    EventPtr event;
    const char* what = "";  // "detected" | "ended"
};

class IncidentBook {
public:
    explicit IncidentBook(std::size_t max_events) : max_events_(max_events) {}

    // Applies one evaluation's findings at `now`: a finding with a new key opens an
    // event, a known key updates it, an active event without a finding ends.
    // top_sources(dst) names a flood's largest senders; wall(t) converts detector time.
    struct Hooks {
        std::function<std::vector<SourceShare>(const Addr16&)> top_sources;
        std::function<WallTime(TimePoint)> wall;
    };
    std::vector<EventChange> apply(std::vector<Finding> findings, TimePoint now, const Hooks& hooks);
    // Replaces an event (same id) by an updated copy, e.g. with the rules blocked for it.
    void update(const EventPtr& e);
    // Active floods: their top sources again.
    void refreshTopSources(const Hooks& hooks);

    [[nodiscard]] std::vector<EventPtr> events() const { return {events_.begin(), events_.end()}; }  // newest first
    [[nodiscard]] std::vector<EventPtr> active() const;
    [[nodiscard]] const std::array<std::uint64_t, kEventTypes>& totals() const { return totals_; }

private:
    [[nodiscard]] std::shared_ptr<SecurityEvent> copyOf(std::uint64_t id) const;
    void replace(std::shared_ptr<SecurityEvent> e);

    std::size_t max_events_;
    std::deque<EventPtr> events_;              // newest first, bounded
    std::map<std::string, std::uint64_t> active_;  // finding key -> event id
    std::array<std::uint64_t, kEventTypes> totals_{};
    std::uint64_t next_id_ = 1;
};

}  // namespace netprobe::analysis::security
