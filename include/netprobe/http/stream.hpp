// netprobe::http::StreamChannel - a streaming response (server-sent events, ...) of the
// agent's HTTP server, written by the server's I/O thread, never holding a worker.
//
// A handler returns a Response whose `stream` is a channel (and whose body, if any, is
// sent first); the worker finishes at once. The server writes the head (no
// Content-Length: the body ends when the connection closes) and then, on its I/O thread,
// whatever a producer pushes into the channel from any thread:
//
//   auto ch = std::make_shared<http::StreamChannel>(http::StreamOptions{});
//   ch->push("event: hello\ndata: {}\n\n");      // buffered until the server attaches
//   http::Response r; r.content_type = "text/event-stream"; r.stream = ch; return r;
//   ...later, from the producer's thread:  if (!ch->push(bytes)) { /* ended: ch->end() */ }
//
// Bounded: bytes pushed but not yet handed to the socket are at most max_buffer; a push
// beyond it ends the stream (SlowReader: a client that does not read cannot make the
// agent buffer without bound). A stream whose socket accepts nothing for the server's
// write_timeout ends (WriteTimeout). When nothing was written for heartbeat_interval the
// server writes `heartbeat` (an SSE comment by default) so proxies keep the connection.
// A client closing, the producer's close(), a web configuration change and the
// server's stop end it too; end() tells which, and push() returns false from then on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

namespace netprobe::http {

struct StreamOptions {
    std::size_t max_buffer = 4u << 20;  // bytes queued and not yet written
    std::chrono::milliseconds heartbeat_interval{std::chrono::seconds(15)};
    std::string heartbeat = ":\n\n";    // an SSE comment line
};

enum class StreamEnd : std::uint8_t {
    Open,
    Client,         // the client closed the connection (or it failed)
    SlowReader,     // more than max_buffer queued: the client reads too slowly
    WriteTimeout,   // the socket accepted nothing for the server's write_timeout
    Closed,         // the producer closed it
    ConfigChanged,  // the web configuration changed (the client reconnects with the new one)
    Shutdown,       // the server stopped
    NotStarted,     // the response was never streamed (HEAD, an error status, the connection went first)
};
[[nodiscard]] const char* toString(StreamEnd e);

class StreamChannel {
public:
    explicit StreamChannel(StreamOptions options = {}) : opts_(std::move(options)) {}
    StreamChannel(const StreamChannel&) = delete;
    StreamChannel& operator=(const StreamChannel&) = delete;

    // Queues bytes (any thread). false: the stream has ended (this push ended it when it
    // would exceed max_buffer).
    bool push(std::string_view bytes);
    // The producer ends the stream: what is queued is still written, then the
    // connection closes.
    void close();
    [[nodiscard]] StreamEnd end() const;
    [[nodiscard]] bool ended() const { return end() != StreamEnd::Open; }
    [[nodiscard]] std::uint64_t bytesPushed() const;
    [[nodiscard]] const StreamOptions& options() const { return opts_; }

    // ---- the server's side ----
    // The server streams it now: `wake` is called (with the channel's lock held: it must
    // only signal) whenever bytes are queued or the producer closes.
    void attach(std::function<void()> wake);
    // Takes the queued bytes (empty: none); closing: the producer closed and nothing is left.
    std::string take(bool& closing);
    // The stream ended on the server's side (no more pushes accepted; wake is dropped).
    void finish(StreamEnd why);

private:
    const StreamOptions opts_;
    mutable std::mutex mu_;
    std::string pending_;
    std::uint64_t pushed_ = 0;
    bool closing_ = false;
    StreamEnd end_ = StreamEnd::Open;
    std::function<void()> wake_;
};

}  // namespace netprobe::http
