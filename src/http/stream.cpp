// A streaming response's channel between its producer and the server's I/O thread.
#include <netprobe/http/stream.hpp>

namespace netprobe::http {

const char* toString(StreamEnd e) {
    switch (e) {
        case StreamEnd::Open: return "open";
        case StreamEnd::Client: return "client";
        case StreamEnd::SlowReader: return "slow_reader";
        case StreamEnd::WriteTimeout: return "write_timeout";
        case StreamEnd::Closed: return "closed";
        case StreamEnd::ConfigChanged: return "config_changed";
        case StreamEnd::Shutdown: return "shutdown";
        case StreamEnd::NotStarted: return "not_started";
    }
    return "unknown";
}

bool StreamChannel::push(std::string_view bytes) {
    std::lock_guard lk(mu_);
    if (end_ != StreamEnd::Open || closing_) return false;
    if (pending_.size() + bytes.size() > opts_.max_buffer) {
        end_ = StreamEnd::SlowReader;
        std::string().swap(pending_);
        if (wake_) wake_();  // the server closes the connection
        return false;
    }
    pending_.append(bytes);
    pushed_ += bytes.size();
    if (wake_) wake_();
    return true;
}

void StreamChannel::close() {
    std::lock_guard lk(mu_);
    if (end_ != StreamEnd::Open || closing_) return;
    closing_ = true;
    if (wake_) wake_();
}

StreamEnd StreamChannel::end() const {
    std::lock_guard lk(mu_);
    return end_;
}

std::uint64_t StreamChannel::bytesPushed() const {
    std::lock_guard lk(mu_);
    return pushed_;
}

void StreamChannel::attach(std::function<void()> wake) {
    std::lock_guard lk(mu_);
    if (end_ != StreamEnd::Open) return;
    wake_ = std::move(wake);
}

std::string StreamChannel::take(bool& closing) {
    std::lock_guard lk(mu_);
    std::string out;
    out.swap(pending_);
    closing = closing_;
    return out;
}

void StreamChannel::finish(StreamEnd why) {
    std::lock_guard lk(mu_);
    wake_ = nullptr;
    if (end_ == StreamEnd::Open) end_ = why;
    std::string().swap(pending_);
}

}  // namespace netprobe::http
