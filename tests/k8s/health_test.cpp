// The Kubernetes client's health series (renderClientHealth): values per resource,
// objects per kind, and a clean exposition (promtool).
#include <gtest/gtest.h>

#include <netprobe/k8s/attribution.hpp>

#include "../unit/promtool_check.hpp"

using namespace netprobe::k8s;

TEST(ClientHealth, RendersPerResourceSeries) {
    ClientHealth h;
    WatchStatus pods;
    pods.resource = "pods";
    pods.synced = true;
    pods.lists = 3;     // 2 relists
    pods.watches = 5;   // 4 restarts
    pods.gone = 2;
    pods.failures = 1;
    pods.events = 40;
    pods.bookmarks = 6;
    pods.last_sync = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    WatchStatus svc;
    svc.resource = "services";  // never listed
    h.resources = {pods, svc};
    h.pods = 12;
    h.services = 3;
    h.endpointslices = 4;
    h.more_objects = {{"networkpolicies", 7}, {"remote_pods", 30}};
    const auto text = renderClientHealth(h);
    for (const char* want : {
             "netprobe_k8s_watch_restarts_total{resource=\"pods\"} 4\n",
             "netprobe_k8s_relists_total{resource=\"pods\"} 2\n",
             "netprobe_k8s_gone_total{resource=\"pods\"} 2\n",
             "netprobe_k8s_request_failures_total{resource=\"pods\"} 1\n",
             "netprobe_k8s_watch_events_total{resource=\"pods\"} 40\n",
             "netprobe_k8s_watch_bookmarks_total{resource=\"pods\"} 6\n",
             "netprobe_k8s_synced{resource=\"pods\"} 1\n",
             "netprobe_k8s_synced{resource=\"services\"} 0\n",
             "netprobe_k8s_last_sync_timestamp_seconds{resource=\"pods\"} 1.7e+09\n",
             "netprobe_k8s_last_sync_timestamp_seconds{resource=\"services\"} 0\n",
             "netprobe_k8s_watch_restarts_total{resource=\"services\"} 0\n",
             "netprobe_k8s_relists_total{resource=\"services\"} 0\n",
             "netprobe_k8s_objects{kind=\"pods\"} 12\n",
             "netprobe_k8s_objects{kind=\"services\"} 3\n",
             "netprobe_k8s_objects{kind=\"endpointslices\"} 4\n",
             "netprobe_k8s_objects{kind=\"networkpolicies\"} 7\n",
             "netprobe_k8s_objects{kind=\"remote_pods\"} 30\n",
         })
        EXPECT_NE(text.find(want), std::string::npos) << want << "\nin:\n" << text;
    auto r = netprobe::testing::promtoolCheckMetrics(text);
    EXPECT_EQ(r.exit_status, 0) << r.output;
    EXPECT_EQ(r.output, "");
}
