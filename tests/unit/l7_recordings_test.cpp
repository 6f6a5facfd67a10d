// The L7 parsers on message tables recorded from real servers and clients
// (tests/data/l7/*.rec, written by tests/data/l7/record.py through np_l7_record): each
// recording is replayed through the connection tracker, and the requests it reports
// per side, protocol, method and status class must equal the counts the server (or the
// client) reported itself at recording time.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <tuple>

#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/l7/tracker.hpp>

#include "support/l7_recording.hpp"

namespace {

using netprobe::l7::ConnectionTracker;

using netprobe::analysis::l7::statusClass;  // the stage's: one definition for every protocol

std::vector<std::filesystem::path> recordings() {
    std::vector<std::filesystem::path> out;
    const std::filesystem::path dir = std::filesystem::path(NETPROBE_SOURCE_DIR) / "tests/data/l7";
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".rec") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(L7Recordings, EveryRecordingReplaysToTheServersOwnCounts) {
    const auto files = recordings();
    ASSERT_GE(files.size(), 3u) << "tests/data/l7 has the redis, postgres and mysql recordings";
    for (const auto& f : files) {
        SCOPED_TRACE(f.filename().string());
        auto rec = netprobe::testing::readL7Recording(f.string());
        ASSERT_TRUE(rec) << rec.error();
        ASSERT_FALSE(rec->expectations.empty());
        ConnectionTracker t;
        std::map<std::tuple<std::string, std::string, std::string, std::string>, std::uint64_t> got;
        for (const auto& m : rec->messages) t.feed(m);
        for (const auto& r : t.take())
            ++got[{netprobe::l7::sideName(r.side), r.protocol, r.method, statusClass(r)}];
        for (const auto& e : rec->expectations) {
            const auto key = std::make_tuple(e.side, e.protocol, e.method, e.status_class);
            // A request whose response was not parsed (its outcome "unknown") counts where
            // the server says it belongs: only successes are expected of it here, as the
            // recordings' errors come in short replies.
            std::uint64_t n = got[key];
            if (e.status_class == "ok") n += got[{e.side, e.protocol, e.method, "unknown"}];
            EXPECT_EQ(n, e.count) << e.side << ' ' << e.protocol << ' ' << e.method << ' ' << e.status_class;
        }
        const auto c = t.counters();
        EXPECT_EQ(c.unmatched_responses, 0u);
        EXPECT_EQ(c.connections_dropped, 0u);
        if (f.filename() == "grpc.rec" || f.filename() == "http2.rec") {
            EXPECT_EQ(c.desyncs, 0u);
        }
    }
}

// Replaying each recording cut into every prefix of its messages never reports more
// than the whole, and a recording with its messages' captured bytes cut shorter (a
// smaller capture) still frames without crashing and without inventing requests.
TEST(L7Recordings, ShorterCapturesNeverInventRequests) {
    for (const auto& f : recordings()) {
        SCOPED_TRACE(f.filename().string());
        auto rec = netprobe::testing::readL7Recording(f.string());
        ASSERT_TRUE(rec) << rec.error();
        ConnectionTracker whole;
        for (const auto& m : rec->messages) whole.feed(m);
        const auto all = whole.take().size();
        for (std::size_t cap : {std::size_t{4}, std::size_t{16}, std::size_t{64}, std::size_t{200}}) {
            ConnectionTracker t;
            for (auto m : rec->messages) {
                if (m.head.size() > cap) {
                    const std::string full = m.head;
                    m.head.resize(cap);
                    m.tail = full.size() >= 16 && full.size() == m.len ? full.substr(full.size() - 16) : m.tail;
                    m.flags |= NP_L7_F_TRUNCATED;
                }
                t.feed(m);
            }
            EXPECT_LE(t.take().size(), all) << "capture of " << cap << " bytes";
        }
    }
}

}  // namespace
