#include "netprobe/analysis/security/incidents.hpp"

#include <algorithm>
#include <set>

namespace netprobe::analysis::security {

bool floodType(EventType t) {
    return t == EventType::SynFlood || t == EventType::UdpFlood || t == EventType::IcmpFlood ||
           t == EventType::TrafficSurge;
}

bool sourceBased(EventType t) {
    return t == EventType::PortScan || t == EventType::ConnectionFailures || t == EventType::FanOut;
}

std::vector<EventPtr> selectEvents(const std::vector<EventPtr>& newest_first, const EventQuery& q) {
    std::vector<EventPtr> out;
    for (const auto& e : newest_first) {
        if (out.size() >= q.limit) break;
        if (!q.types.empty() && std::find(q.types.begin(), q.types.end(), e->type) == q.types.end()) continue;
        if (q.since) {
            WallTime latest = std::max(e->detected_at, e->last_seen);
            if (e->ended_at) latest = std::max(latest, *e->ended_at);
            if (latest < *q.since) continue;
        }
        out.push_back(e);
    }
    return out;
}

std::shared_ptr<SecurityEvent> IncidentBook::copyOf(std::uint64_t id) const {
    for (const auto& e : events_)
        if (e->id == id) return std::make_shared<SecurityEvent>(*e);
    return nullptr;
}

void IncidentBook::replace(std::shared_ptr<SecurityEvent> e) {
    for (auto& x : events_)
        if (x->id == e->id) {
            x = std::move(e);
            return;
        }
}

void IncidentBook::update(const EventPtr& e) {
    for (auto& x : events_)
        if (x->id == e->id) {
            x = e;
            return;
        }
}

std::vector<EventPtr> IncidentBook::active() const {
    std::vector<EventPtr> out;
    for (const auto& [key, id] : active_)
        for (const auto& e : events_)
            if (e->id == id) {
                out.push_back(e);
                break;
            }
    return out;
}

std::vector<EventChange> IncidentBook::apply(std::vector<Finding> findings, TimePoint now, const Hooks& hooks) {
    std::vector<EventChange> changes;
    // A port scan's SYNs are not also a SYN flood against the hosts it scans.
    std::set<Addr16> scanned;
    for (const auto& f : findings)
        if (f.type == EventType::PortScan) scanned.insert(f.targets.begin(), f.targets.end());
    std::erase_if(findings, [&](const Finding& f) { return f.type == EventType::SynFlood && f.dst && scanned.contains(*f.dst); });

    std::set<std::string> seen;
    for (auto& f : findings) {
        seen.insert(f.key);
        auto it = active_.find(f.key);
        std::shared_ptr<SecurityEvent> e = it == active_.end() ? nullptr : copyOf(it->second);
        if (!e) {
            auto ne = std::make_shared<SecurityEvent>();
            ne->id = next_id_++;
            ne->type = f.type;
            ne->severity = f.severity;
            ne->src = f.src;
            ne->dst = f.dst;
            ne->targets = f.targets;
            ne->detected_at = hooks.wall(now);
            ne->first_seen = hooks.wall(f.first_seen);
            ne->last_seen = hooks.wall(f.last_seen);
            ne->evidence = std::move(f.evidence);
            ne->evidence["detection_latency_ms"] = std::chrono::duration<double, std::milli>(now - f.first_seen).count();
            if (floodType(f.type) && f.dst && hooks.top_sources) ne->top_sources = hooks.top_sources(*f.dst);
            ++totals_[static_cast<int>(f.type)];
            if (f.instant) ne->ended_at = ne->detected_at;
            if (!f.instant) active_[f.key] = ne->id;
            events_.push_front(ne);
            changes.push_back({ne, "detected"});
            while (events_.size() > max_events_) {
                // Never drop an active incident's record before older ended ones.
                auto victim = std::find_if(events_.rbegin(), events_.rend(),
                                           [](const EventPtr& x) { return x->ended_at.has_value(); });
                if (victim == events_.rend()) break;
                events_.erase(std::next(victim).base());
            }
            continue;
        }
        e->severity = std::max(e->severity, f.severity);
        e->last_seen = hooks.wall(f.last_seen);
        e->targets = f.targets;
        if (f.dst) e->dst = f.dst;
        const auto latency = e->evidence["detection_latency_ms"];
        e->evidence = std::move(f.evidence);
        e->evidence["detection_latency_ms"] = latency;
        replace(std::move(e));
    }
    for (auto it = active_.begin(); it != active_.end();) {
        if (seen.contains(it->first)) {
            ++it;
            continue;
        }
        if (auto e = copyOf(it->second)) {
            e->ended_at = hooks.wall(now);
            if (floodType(e->type) && e->dst && hooks.top_sources) {
                auto top = hooks.top_sources(*e->dst);
                if (!top.empty()) e->top_sources = std::move(top);
            }
            EventPtr done = e;
            replace(std::move(e));
            changes.push_back({done, "ended"});
        }
        it = active_.erase(it);
    }
    return changes;
}

void IncidentBook::refreshTopSources(const Hooks& hooks) {
    if (!hooks.top_sources) return;
    for (const auto& [key, id] : active_) {
        auto e = copyOf(id);
        if (!e || !floodType(e->type) || !e->dst) continue;
        auto top = hooks.top_sources(*e->dst);
        if (top.empty()) continue;
        e->top_sources = std::move(top);
        replace(std::move(e));
    }
}

}  // namespace netprobe::analysis::security
