#include "mcp.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "agent_api.hpp"

#ifndef NETPROBE_VERSION
#define NETPROBE_VERSION "unknown"
#endif

namespace netprobe::cli::mcp {

namespace am = assistant::mcp;
using nlohmann::json;

// ---------------------------------------------------------------------------
// stdio

namespace {

bool writeAll(int fd, std::string_view s) {
    while (!s.empty()) {
        const ssize_t n = ::write(fd, s.data(), s.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        s.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

}  // namespace

int serveStdio(int in_fd, int out_fd, const am::Dispatcher& d, std::size_t max_message_bytes) {
    am::Session session;
    std::string line;
    bool discarding = false;  // the rest of a line that was too long
    std::string chunk(64 * 1024, '\0');
    // false: stdout is gone (the client went away)
    auto dispatch = [&](std::string_view msg) {
        if (!msg.empty() && msg.back() == '\r') msg.remove_suffix(1);
        if (blank(msg)) return true;
        const bool was_initialized = session.initialized;
        const auto o = d.handle(msg, session);
        if (o.initialize)
            spdlog::info("client \"{}\" initialized (protocol {}){}", session.client_name, session.protocol_version,
                         was_initialized ? " again" : "");
        return !o.response || writeAll(out_fd, *o.response + "\n");
    };
    auto tooLong = [&] {
        spdlog::warn("a message longer than {} bytes was refused", max_message_bytes);
        const auto e = am::errorResponse(nullptr, am::kParseError,
                                         "Parse error: message longer than " + std::to_string(max_message_bytes) + " bytes");
        return writeAll(out_fd, e.dump() + "\n");
    };
    for (;;) {
        const ssize_t n = ::read(in_fd, chunk.data(), chunk.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            spdlog::error("reading stdin: {}", std::strerror(errno));
            return 1;
        }
        if (n == 0) break;
        std::string_view data(chunk.data(), static_cast<std::size_t>(n));
        while (!data.empty()) {
            const auto nl = data.find('\n');
            const auto part = data.substr(0, nl);
            if (!discarding) {
                if (line.size() + part.size() > max_message_bytes) {
                    line.clear();
                    discarding = true;
                    if (!tooLong()) return 0;
                } else {
                    line.append(part);
                }
            }
            if (nl == std::string_view::npos) break;
            data.remove_prefix(nl + 1);
            if (!discarding && !dispatch(line)) return 0;
            line.clear();
            discarding = false;
        }
    }
    if (!discarding && !line.empty()) dispatch(line);  // a last message without its newline
    return 0;
}

// ---------------------------------------------------------------------------
// Streamable HTTP

Result<std::pair<std::string, std::uint16_t>> parseListen(std::string_view listen) {
    auto bad = [&](const std::string& why) {
        return std::unexpected(makeError("invalid --listen \"" + std::string(listen) + "\": " + why));
    };
    std::string host;
    std::string_view port_text;
    if (listen.starts_with('[')) {
        const auto close = listen.find("]:");
        if (close == std::string_view::npos) return bad("expected [IPv6]:PORT");
        host = std::string(listen.substr(1, close - 1));
        port_text = listen.substr(close + 2);
    } else {
        const auto colon = listen.rfind(':');
        if (colon == std::string_view::npos || colon == 0) return bad("expected HOST:PORT (127.0.0.1:8090)");
        host = std::string(listen.substr(0, colon));
        if (host.find(':') != std::string::npos) return bad("an IPv6 address goes in brackets: [::1]:8090");
        port_text = listen.substr(colon + 1);
    }
    if (host.empty()) return bad("no host");
    unsigned port = 0;
    if (port_text.empty() || port_text.size() > 5 ||
        !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return bad("the port is a number 0-65535");
    for (char c : port_text) port = port * 10 + static_cast<unsigned>(c - '0');
    if (port > 65535) return bad("the port is a number 0-65535");
    return std::pair{host, static_cast<std::uint16_t>(port)};
}

namespace {

bool loopbackHost(std::string_view h) {
    return h == "localhost" || h == "::1" || h == "[::1]" || h.starts_with("127.");
}

// "http://host:port" -> host ("[::1]" keeps its brackets)
std::string originHost(std::string_view origin) {
    auto p = origin.find("://");
    if (p == std::string_view::npos) return {};
    auto rest = origin.substr(p + 3);
    rest = rest.substr(0, rest.find('/'));
    if (rest.starts_with('[')) return std::string(rest.substr(0, rest.find(']') + 1));
    return std::string(rest.substr(0, rest.find(':')));
}

std::string hostOnly(std::string_view host_header) {
    if (host_header.starts_with('[')) return std::string(host_header.substr(0, host_header.find(']') + 1));
    return std::string(host_header.substr(0, host_header.find(':')));
}

std::optional<std::string> newSessionId() {
    unsigned char b[16];
    std::size_t got = 0;
    while (got < sizeof b) {
        const ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::nullopt;
        }
        got += static_cast<std::size_t>(n);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    for (unsigned char c : b) {
        id += kHex[c >> 4];
        id += kHex[c & 15];
    }
    return id;
}

}  // namespace

struct HttpServer::Impl {
    HttpOptions opts;
    const am::Dispatcher& dispatcher;
    httplib::Server svr;
    std::thread thread;
    int port = 0;

    struct Entry {
        am::Session session;
        std::chrono::steady_clock::time_point used;
    };
    mutable std::mutex mu;
    std::map<std::string, Entry> sessions;

    Impl(HttpOptions o, const am::Dispatcher& d) : opts(std::move(o)), dispatcher(d) {}

    void expire(std::chrono::steady_clock::time_point now) {  // mu held
        std::erase_if(sessions, [&](const auto& kv) { return now - kv.second.used > opts.session_idle; });
    }

    std::optional<std::string> create(const am::Session& s) {
        auto id = newSessionId();
        if (!id) return std::nullopt;
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(mu);
        expire(now);
        if (sessions.size() >= opts.max_sessions) {
            auto lru = std::min_element(sessions.begin(), sessions.end(),
                                        [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
            spdlog::info("{} sessions: ending the least recently used one", sessions.size());
            sessions.erase(lru);
        }
        sessions[*id] = Entry{s, now};
        return id;
    }

    std::optional<am::Session> find(const std::string& id) {
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(mu);
        expire(now);
        auto it = sessions.find(id);
        if (it == sessions.end()) return std::nullopt;
        it->second.used = now;
        return it->second.session;
    }

    void update(const std::string& id, const am::Session& s) {
        std::lock_guard lk(mu);
        if (auto it = sessions.find(id); it != sessions.end()) it->second.session = s;
    }

    bool erase(const std::string& id) {
        std::lock_guard lk(mu);
        return sessions.erase(id) > 0;
    }

    static void reply(httplib::Response& res, int status, const std::string& body) {
        res.status = status;
        res.set_content(body, "application/json");
    }
    static void fail(httplib::Response& res, int status, int code, const std::string& message) {
        reply(res, status, am::errorResponse(nullptr, code, message).dump());
    }

    // Checks common to every method: the Origin (DNS rebinding), the protocol version header.
    bool admit(const httplib::Request& req, httplib::Response& res) {
        if (req.has_header("Origin")) {
            const auto o = originHost(req.get_header_value("Origin"));
            if (!loopbackHost(o) && o != hostOnly(req.get_header_value("Host"))) {
                fail(res, 403, am::kInvalidRequest, "Forbidden: Origin " + req.get_header_value("Origin").substr(0, 100) +
                                                        " is neither loopback nor this server");
                return false;
            }
        }
        if (req.has_header("MCP-Protocol-Version")) {
            const auto v = req.get_header_value("MCP-Protocol-Version");
            if (!am::supportedVersion(v)) {
                fail(res, 400, am::kInvalidRequest, "Bad Request: unsupported MCP-Protocol-Version \"" + v.substr(0, 40) + "\"");
                return false;
            }
        }
        return true;
    }

    void post(const httplib::Request& req, httplib::Response& res) {
        if (!admit(req, res)) return;
        const auto ct = req.get_header_value("Content-Type");
        if (!ct.starts_with("application/json")) {
            fail(res, 415, am::kInvalidRequest, "Unsupported Media Type: POST a JSON-RPC message as application/json");
            return;
        }
        if (req.has_header("Accept")) {
            const auto a = req.get_header_value("Accept");
            if (a.find("application/json") == std::string::npos && a.find("application/*") == std::string::npos &&
                a.find("*/*") == std::string::npos) {
                fail(res, 406, am::kInvalidRequest, "Not Acceptable: the answers are application/json");
                return;
            }
        }
        auto msg = am::parseMessage(req.body);
        if (!msg) {
            reply(res, 400, *msg.error().response);
            return;
        }
        if (am::isInitialize(*msg)) {
            am::Session s;
            const auto o = dispatcher.handleParsed(*msg, s);
            if (o.initialize) {
                auto id = create(s);
                if (!id) {
                    fail(res, 500, am::kInternalError, "Internal error: no random session id");
                    return;
                }
                res.set_header("Mcp-Session-Id", *id);
                spdlog::info("client \"{}\" initialized session {} (protocol {})", s.client_name, id->substr(0, 8),
                             s.protocol_version);
            }
            reply(res, o.malformed ? 400 : 200, o.response.value_or("{}"));
            return;
        }
        const auto sid = req.get_header_value("Mcp-Session-Id");
        if (sid.empty()) {
            fail(res, 400, am::kInvalidRequest, "Bad Request: no Mcp-Session-Id header (send initialize first)");
            return;
        }
        auto s = find(sid);
        if (!s) {
            fail(res, 404, am::kInvalidRequest, "Session not found: it ended or expired; initialize a new one");
            return;
        }
        const auto o = dispatcher.handleParsed(*msg, *s);
        update(sid, *s);
        if (!o.response) {
            res.status = 202;  // notifications and responses only
            return;
        }
        reply(res, o.malformed ? 400 : 200, *o.response);
    }

    void del(const httplib::Request& req, httplib::Response& res) {
        if (!admit(req, res)) return;
        const auto sid = req.get_header_value("Mcp-Session-Id");
        if (sid.empty()) {
            fail(res, 400, am::kInvalidRequest, "Bad Request: no Mcp-Session-Id header");
            return;
        }
        if (!erase(sid)) {
            fail(res, 404, am::kInvalidRequest, "Session not found");
            return;
        }
        spdlog::info("session {} ended by the client", sid.substr(0, 8));
        res.status = 200;
    }
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpServer::~HttpServer() { stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::start(HttpOptions options, const am::Dispatcher& dispatcher) {
    auto impl = std::make_unique<Impl>(std::move(options), dispatcher);
    auto& svr = impl->svr;
    Impl* im = impl.get();
    // SO_REUSEADDR (a restart binds at once) but not httplib's default SO_REUSEPORT: a
    // second server on the same port is an error, not a silent share of the connections.
    svr.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    svr.set_payload_max_length(im->opts.max_body_bytes);
    svr.set_read_timeout(10, 0);
    svr.set_write_timeout(10, 0);
    svr.set_keep_alive_timeout(30);
    svr.Post("/mcp", [im](const httplib::Request& req, httplib::Response& res) { im->post(req, res); });
    svr.Delete("/mcp", [im](const httplib::Request& req, httplib::Response& res) { im->del(req, res); });
    svr.Get("/mcp", [](const httplib::Request&, httplib::Response& res) {
        res.status = 405;
        res.set_header("Allow", "POST, DELETE");
        res.set_content(am::errorResponse(nullptr, am::kInvalidRequest,
                                          "Method Not Allowed: this server sends no stream; POST messages to /mcp")
                            .dump(),
                        "application/json");
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(am::errorResponse(nullptr, am::kInternalError, "Internal error: " + what).dump(),
                        "application/json");
    });
    const auto& o = im->opts;
    errno = 0;
    im->port = o.port == 0 ? svr.bind_to_any_port(o.host) : (svr.bind_to_port(o.host, o.port) ? o.port : -1);
    if (im->port <= 0) {
        // errno tells why a literal address failed (in use, not on this host); a name
        // that does not resolve leaves no meaningful errno.
        const int e = errno;
        in_addr a4{};
        in6_addr a6{};
        const bool literal = inet_pton(AF_INET, o.host.c_str(), &a4) == 1 || inet_pton(AF_INET6, o.host.c_str(), &a6) == 1;
        const std::string where = "cannot listen on " + o.host + ":" + std::to_string(o.port);
        if (literal && e != 0) return std::unexpected(errnoError(e, where));
        return std::unexpected(makeError(
            where + (literal ? "" : ": the name does not resolve to an address of this host, or the port is in use")));
    }
    im->thread = std::thread([im] { im->svr.listen_after_bind(); });
    // stop() only stops a server that runs: wait until it does.
    for (int i = 0; i < 5000 && !svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::uint16_t HttpServer::port() const { return static_cast<std::uint16_t>(impl_->port); }

std::size_t HttpServer::sessions() const {
    std::lock_guard lk(impl_->mu);
    return impl_->sessions.size();
}

void HttpServer::stop() {
    if (!impl_ || !impl_->thread.joinable()) return;
    impl_->svr.stop();
    impl_->thread.join();
}

// ---------------------------------------------------------------------------
// the subcommand

int run(const Invocation& inv) {
    // stdout is the protocol's (stdio); every log line goes to stderr.
    auto logger = spdlog::stderr_color_mt("netprobe-mcp");
    logger->set_pattern("netprobe mcp: %l: %v");
    spdlog::set_default_logger(logger);
    ::signal(SIGPIPE, SIG_IGN);

    am::Options o;
    o.server_version = NETPROBE_VERSION;
    o.max_result_bytes = inv.mcp_max_result_bytes;
    const Connection conn = inv.conn;
    am::Dispatcher dispatcher(o, [conn](const assistant::ApiRequest& r) { return agentGet(conn, r.path, r.query); });

    if (inv.mcp_listen.empty()) {
        spdlog::info("serving MCP on stdin/stdout for the agent at {}", conn.server);
        return serveStdio(STDIN_FILENO, STDOUT_FILENO, dispatcher);
    }
    auto where = parseListen(inv.mcp_listen);
    if (!where) {
        spdlog::error("{}", where.error().what());
        return kExitUsage;
    }
    // SIGINT/SIGTERM are waited for on this thread; the server's threads inherit the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    HttpOptions ho;
    ho.host = where->first;
    ho.port = where->second;
    auto server = HttpServer::start(ho, dispatcher);
    if (!server) {
        spdlog::error("{}", server.error().what());
        return kExitError;
    }
    const bool v6 = ho.host.find(':') != std::string::npos;
    const std::string url = "http://" + (v6 ? "[" + ho.host + "]" : ho.host) + ":" + std::to_string((*server)->port()) + "/mcp";
    if (!loopbackHost(ho.host))
        spdlog::warn("{} is not a loopback address: whoever reaches it reads the agent's API with these credentials",
                     ho.host);
    spdlog::info("serving MCP (Streamable HTTP) on {} for the agent at {}", url, conn.server);
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("{}: stopping", strsignal(sig));
    (*server)->stop();
    return kExitOk;
}

}  // namespace netprobe::cli::mcp
