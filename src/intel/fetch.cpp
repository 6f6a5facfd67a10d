#include "netprobe/intel/fetch.hpp"

#include <httplib.h>

#include <algorithm>
#include <cctype>

namespace netprobe::intel {

namespace {

// "https://host:port/path?q" -> ("https://host:port", "/path?q")
std::pair<std::string, std::string> splitUrl(const std::string& url) {
    const auto scheme_end = url.find("://");
    const auto host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    const auto path_start = url.find('/', host_start);
    if (path_start == std::string::npos) return {url, "/"};
    return {url.substr(0, path_start), url.substr(path_start)};
}

std::string lowerScheme(std::string s) {
    const auto e = s.find("://");
    std::transform(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(e == std::string::npos ? 0 : e), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

}  // namespace

Result<FetchResult> fetchFeed(const FeedConfig& feed, const FetchValidators& previous, const FetchLimits& limits) {
    // Redirects are followed here, not by the client: its follow_location takes every
    // 3xx for one, a 304 included (then fails: no Location).
    std::string url = lowerScheme(feed.url);
    for (int hop = 0;; ++hop) {
        const auto [origin, path] = splitUrl(url);
        httplib::Client cli(origin);
        if (!cli.is_valid()) return std::unexpected(makeError(url + ": not a usable url"));
        cli.set_connection_timeout(limits.connect_timeout);
        cli.set_read_timeout(limits.read_timeout);
        if (!feed.ca_file.empty()) cli.set_ca_cert_path(feed.ca_file.c_str());
        cli.enable_server_certificate_verification(true);

        httplib::Headers headers{{"User-Agent", "netprobe-agent/" NETPROBE_VERSION}};
        if (!previous.etag.empty()) headers.emplace("If-None-Match", previous.etag);
        if (!previous.last_modified.empty()) headers.emplace("If-Modified-Since", previous.last_modified);

        FetchResult out;
        bool too_large = false;
        auto res = cli.Get(path, headers, [&](const char* data, std::size_t n) {
            if (out.body.size() + n > limits.max_bytes) {
                too_large = true;
                return false;  // abort the transfer
            }
            out.body.append(data, n);
            return true;
        });
        if (too_large)
            return std::unexpected(makeError(url + ": larger than " + std::to_string(limits.max_bytes) + " bytes"));
        if (!res) {
            std::string why = httplib::to_string(res.error());
            if (res.error() == httplib::Error::SSLServerVerification)
                why += feed.ca_file.empty() ? " (the server's certificate is not trusted by the system's CAs; set ca_file)"
                                            : " (the server's certificate is not trusted by " + feed.ca_file + ")";
            return std::unexpected(makeError(url + ": " + why));
        }
        const int st = res->status;
        if (st == 301 || st == 302 || st == 303 || st == 307 || st == 308) {
            std::string next = res->get_header_value("Location");
            if (next.empty()) return std::unexpected(makeError(url + ": HTTP " + std::to_string(st) + " without Location"));
            if (hop >= 5) return std::unexpected(makeError(feed.url + ": more than 5 redirects"));
            if (next.starts_with("/")) next = origin + next;
            if (!next.starts_with("https://") && !next.starts_with("http://"))
                return std::unexpected(makeError(url + ": redirect to an unusable location " + next));
            if (lowerScheme(feed.url).starts_with("https://") && next.starts_with("http://"))
                return std::unexpected(makeError(url + ": refused a redirect from https to " + next));
            url = lowerScheme(next);
            continue;
        }
        out.status = st;
        if (st == 304) {
            out.not_modified = true;
            out.body.clear();
            out.validators = previous;
            return out;
        }
        if (st != 200) return std::unexpected(makeError(url + ": HTTP " + std::to_string(st)));
        out.validators.etag = res->get_header_value("ETag");
        out.validators.last_modified = res->get_header_value("Last-Modified");
        return out;
    }
}

}  // namespace netprobe::intel
