// The watch stream protocol pieces: line splitting, events, URLs, backoff.
#include <gtest/gtest.h>

#include <netprobe/k8s/watch.hpp>

#include <vector>

using namespace netprobe::k8s;
using namespace std::chrono_literals;

TEST(LineBuffer, LinesSplitAcrossChunks) {
    LineBuffer b;
    std::vector<std::string> got;
    auto sink = [&](std::string_view l) {
        got.emplace_back(l);
        return true;
    };
    EXPECT_TRUE(b.feed("{\"a\":1}\n{\"b\"", sink));
    EXPECT_TRUE(b.feed(":2}", sink));
    EXPECT_TRUE(b.feed("\r\n\n{\"c\":3}\n", sink));
    EXPECT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}", "{\"c\":3}"}));
    EXPECT_EQ(b.pending(), 0u);
}

TEST(LineBuffer, StopsWhenTheConsumerSaysSoOrALineIsTooLong) {
    LineBuffer b(8);
    int n = 0;
    EXPECT_FALSE(b.feed("a\nb\nc\n", [&](std::string_view) { return ++n < 2; }));
    EXPECT_EQ(n, 2);
    LineBuffer small(8);
    EXPECT_FALSE(small.feed("0123456789", [](std::string_view) { return true; }));
}

TEST(WatchEvent, Types) {
    auto e = parseWatchEvent(R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"p","resourceVersion":"12"}}})");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, WatchEvent::Type::Added);
    EXPECT_EQ(e->resource_version, "12");
    e = parseWatchEvent(R"({"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"40"}}})");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, WatchEvent::Type::Bookmark);
    EXPECT_EQ(e->resource_version, "40");
    e = parseWatchEvent(
        R"json({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}})json");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->type, WatchEvent::Type::Error);
    EXPECT_EQ(e->error_code, 410);
    EXPECT_NE(e->error_message.find("too old"), std::string::npos);
}

TEST(WatchEvent, Malformed) {
    EXPECT_FALSE(parseWatchEvent("not json"));
    EXPECT_FALSE(parseWatchEvent(R"({"object":{}})"));
    EXPECT_FALSE(parseWatchEvent(R"({"type":"ADDED"})"));
    EXPECT_FALSE(parseWatchEvent(R"({"type":"RENAMED","object":{}})"));
}

TEST(Urls, ListAndWatch) {
    EXPECT_EQ(listUrl("/api/v1/pods", {"spec.nodeName=node-a", 500, ""}),
              "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&limit=500");
    EXPECT_EQ(listUrl("/api/v1/services", {"", 0, ""}), "/api/v1/services");
    EXPECT_EQ(listUrl("/api/v1/pods", {"", 10, "a+b/c="}), "/api/v1/pods?limit=10&continue=a%2Bb%2Fc%3D");
    EXPECT_EQ(watchUrl("/api/v1/pods", "spec.nodeName=n", "123", 300s),
              "/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=123&fieldSelector=spec.nodeName%3Dn"
              "&timeoutSeconds=300");
}

TEST(Backoff, DoublesUpToTheCap) {
    std::chrono::milliseconds b{0};
    std::vector<long> seen;
    for (int i = 0; i < 8; ++i) {
        b = nextBackoff(b, 500ms, 5000ms);
        seen.push_back(static_cast<long>(b.count()));
    }
    EXPECT_EQ(seen, (std::vector<long>{500, 1000, 2000, 4000, 5000, 5000, 5000, 5000}));
    EXPECT_EQ(withJitter(1000ms, 0.0), 1000ms);
    EXPECT_EQ(withJitter(1000ms, 1.0), 1250ms);
    EXPECT_EQ(withJitter(1000ms, 7.0), 1250ms);
}
