// The NetworkPolicy export: netprobe_policy_* series and GET /api/v1/policies, pure
// functions of the policy view (analysis/policy.hpp; see docs/policy.md).
#pragma once

#include <expected>
#include <string>
#include <utility>
#include <vector>

namespace netprobe::analysis {
struct PolicyView;
struct Views;
}  // namespace netprobe::analysis

namespace netprobe::metrics {

// netprobe_policy_flows_total, netprobe_policy_packets_total, netprobe_policy_enforcement_*,
// netprobe_policy_set_* and the stage's own counters.
[[nodiscard]] std::string renderPolicyMetrics(const analysis::PolicyView& view);

struct PolicyQuery {
    std::string ns;  // namespace=: only this namespace's policies, and denied conversations with an end in it
};
[[nodiscard]] std::expected<PolicyQuery, std::string> parsePolicyQuery(
    const std::vector<std::pair<std::string, std::string>>& params);
// The document of /api/v1/policies; without the stage (no Kubernetes, --k8s-policies=off):
// {"enabled": false}.
[[nodiscard]] std::string policiesJson(const analysis::Views& views, const PolicyQuery& q);

}  // namespace netprobe::metrics
