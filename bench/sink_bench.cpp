// np_sink_bench URL SPOOL_DIR [RECORDS=1000000] [BATCH=50000]: how many flow records per
// second the ClickHouse sink delivers to a real server: RECORDS synthetic biflow
// records (distinct 5-tuples, pod labels on a tenth of them) are offered as fast as the
// sink's queue takes them (10k per view, as a busy collection would hand over), and the
// clock stops when the sink reports all of them inserted (spool empty). Prints RESULT
// lines for bench/run.sh.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <netprobe/sinks/clickhouse.hpp>

#include "bench_common.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: np_sink_bench URL SPOOL_DIR [RECORDS] [BATCH]\n");
        return 2;
    }
    const std::size_t total = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1'000'000;
    const std::size_t batch = argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 50'000;
    auto cfg = netprobe::sinks::parseClickHouse(std::string(argv[1]) + ",batch=" + std::to_string(batch) +
                                                ",flush=200ms,queue=" + std::to_string(4 * batch));
    if (!cfg) {
        std::fprintf(stderr, "np_sink_bench: %s\n", cfg.error().what().c_str());
        return 2;
    }
    cfg->spool_dir = argv[2];
    cfg->node = "bench-node";
    auto sink = netprobe::sinks::ClickHouseSink::start(*cfg);
    if (!sink) {
        std::fprintf(stderr, "np_sink_bench: %s\n", sink.error().what().c_str());
        return 1;
    }
    const auto now = npbench::monoNowNs();
    const auto samples = npbench::makeSamples(10000, now);
    netprobe::analysis::FlowExportView view;
    for (std::size_t i = 0; i < samples.size(); ++i) {
        netprobe::analysis::FlowExportRecord r;
        r.key = samples[i].key;
        r.flow_id = i;
        r.start_ms = 1'800'000'000'000 + static_cast<std::int64_t>(i);
        r.end_ms = r.start_ms + 1000;
        r.packets = samples[i].packets;
        r.bytes = samples[i].bytes + 14 * r.packets;
        r.rev_packets = r.packets / 2;
        r.rev_bytes = r.bytes / 3;
        r.reverse_seen = true;
        r.interface = "eth0";
        if (i % 10 == 0) {
            r.labels.src_namespace = "shop";
            r.labels.src_pod = "web-5f7c9d-" + std::to_string(i % 50);
            r.labels.src_workload = "web";
            r.labels.dst_namespace = "shop";
            r.labels.dst_service = "cart";
        }
        view.records.push_back(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t offered = 0;
    while (offered < total) {
        // Never overrun the queue (that would drop, not measure): wait for room.
        while ((*sink)->status().queued + view.records.size() > 4 * batch)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        (*sink)->offer(view);
        offered += view.records.size();
    }
    netprobe::sinks::SinkStatus st;
    for (;;) {
        st = (*sink)->status();
        if (st.records_sent >= offered) break;
        if (std::chrono::steady_clock::now() - t0 > std::chrono::minutes(10)) {
            std::fprintf(stderr, "np_sink_bench: only %llu of %zu records inserted after 10 min (%s)\n",
                         static_cast<unsigned long long>(st.records_sent), offered, st.last_error.c_str());
            return 1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    (*sink)->drain(std::chrono::seconds(5));
    std::printf("clickhouse sink: %zu records in %.2f s = %.0f records/s (batches of %zu; %llu bytes of JSON "
                "inserted, %.0f per record; dropped %llu)\n",
                offered, secs, static_cast<double>(offered) / secs, batch,
                static_cast<unsigned long long>(st.bytes_sent), static_cast<double>(st.bytes_sent) / static_cast<double>(offered),
                static_cast<unsigned long long>(st.records_dropped_queue + st.records_dropped_spool));
    std::printf("RESULT\tch_sink_records_per_second\t%.0f\n", static_cast<double>(offered) / secs);
    std::printf("RESULT\tch_sink_json_bytes_per_record\t%.0f\n", static_cast<double>(st.bytes_sent) / static_cast<double>(offered));
    return 0;
}
