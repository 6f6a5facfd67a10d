// --flow-log=PATH: every flow export record as one JSON line, for log shippers (Fluent
// Bit, Vector, Filebeat) on their way to Elasticsearch, Loki or S3. Rotated by size:
// PATH -> PATH.1 -> ... -> PATH.N (the oldest removed), as logrotate's copy-less scheme;
// a shipper that follows the file by name picks up the new one.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <netprobe/sinks/sink.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::sinks {

struct FlowLogOptions {
    std::string path;
    std::uint64_t max_bytes = 100ull << 20;  // rotate when the file would exceed this
    unsigned max_files = 5;                  // rotated files kept (PATH.1 ... PATH.N); 0: truncate instead
    std::size_t queue = 100000;
};

// One record as the JSON object the flow log writes (no newline).
[[nodiscard]] std::string flowRecordJson(const FlowExportRecord& r, const std::string& node);

class FlowLog final : public FlowSink {
public:
    // Opens (creates, appends to) the file: an error when it cannot be written.
    [[nodiscard]] static Result<std::unique_ptr<FlowLog>> start(FlowLogOptions options, std::string node);
    ~FlowLog() override;
    void offer(const analysis::FlowExportView& view) override;
    void drain(std::chrono::milliseconds timeout) override;
    [[nodiscard]] SinkStatus status() const override;

private:
    FlowLog(FlowLogOptions options, std::string node);
    Result<void> open();
    void rotate();
    void loop();

    struct FileCloser {
        void operator()(std::FILE* f) const {
            if (f) std::fclose(f);
        }
    };
    FlowLogOptions options_;
    std::string node_;
    RecordQueue queue_;
    std::unique_ptr<std::FILE, FileCloser> file_;
    std::uint64_t size_ = 0;
    std::thread thread_;
    std::atomic<std::int64_t> drain_deadline_ns_{0};
    mutable std::mutex status_mu_;
    SinkStatus status_;
};

}  // namespace netprobe::sinks
