// The security export: /api/v1/events documents, the --events-log sink, and the
// parameters of /api/v1/events. Pure functions of the security view, and a sink.
#pragma once

#include <cstdio>
#include <expected>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <netprobe/analysis/domains/stage.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/util/error.hpp>
#include <nlohmann/json.hpp>

namespace netprobe::metrics {

// Parses ?since= (RFC 3339 or Unix seconds), ?type= (comma-separated) and ?limit=.
[[nodiscard]] std::expected<analysis::security::EventQuery, std::string> parseEventQuery(
    const std::vector<std::pair<std::string, std::string>>& params, std::size_t max_limit = 10000);
[[nodiscard]] std::string eventJson(const analysis::security::SecurityEvent& e);  // one JSON object, one line
// The /api/v1/events document (enabled: security analytics is on).
[[nodiscard]] std::string eventsJson(const std::vector<analysis::security::EventPtr>& events, bool enabled = true);

// The /api/v1/intel document: each feed's status, indicators and matched traffic
// (null: no --intel-config).
// domains: the DNS side (domain indicators matched, addresses resolved from them; null:
// not matched - no --l7 or no domain feed stage).
[[nodiscard]] nlohmann::json intelJson(const collector::IntelSample* intel,
                                       const analysis::domains::DomainIntelView* domains = nullptr);
// netprobe_intel_dns_* and netprobe_intel_resolved_*: the main pipeline's domain view.
[[nodiscard]] std::string renderDomainIntelMetrics(const analysis::domains::DomainIntelView& v);
// netprobe_name_capture_*: the TC name capture's ring and parsing (ring losses are in
// netprobe_map_update_errors_total{map="name_events"}).
[[nodiscard]] std::string renderNameCaptureMetrics(const collector::NameSample& names);

// --events-log: appends one JSON line per event detected and ended, and logs it.
// Subscribe it to the security pipeline (it writes after each evaluation, off any
// lock a scrape or a stage takes).
class EventLog {
public:
    // path empty: log lines only.
    [[nodiscard]] static Result<std::unique_ptr<EventLog>> open(const std::string& path);
    void write(const analysis::Views& views);

private:
    struct FileCloser {
        void operator()(std::FILE* f) const {
            if (f) std::fclose(f);
        }
    };
    std::unique_ptr<std::FILE, FileCloser> file_;
};

}  // namespace netprobe::metrics
