#include "agent_api.hpp"

#include <httplib.h>

#include <nlohmann/json.hpp>

namespace netprobe::cli {

Result<std::string> agentGet(const Connection& c, const std::string& path,
                             const std::map<std::string, std::string>& query) {
    httplib::Client cli(c.server);
    if (!cli.is_valid()) return std::unexpected(makeError("invalid agent URL " + c.server));
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(c.timeout);
    const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(c.timeout - secs);
    cli.set_connection_timeout(secs.count(), usecs.count());
    cli.set_read_timeout(secs.count(), usecs.count());
    cli.set_write_timeout(secs.count(), usecs.count());
    if (!c.user.empty()) cli.set_basic_auth(c.user, c.password);
    if (!c.ca_file.empty()) cli.set_ca_cert_path(c.ca_file);
    cli.enable_server_certificate_verification(!c.insecure);

    std::string target = path;
    char sep = '?';
    for (const auto& [k, v] : query) {
        target += sep + httplib::detail::encode_query_param(k) + "=" + httplib::detail::encode_query_param(v);
        sep = '&';
    }
    auto res = cli.Get(target);
    if (!res) {
        std::string why = httplib::to_string(res.error());
        if (res.error() == httplib::Error::SSLServerVerification)
            why += " (the agent's certificate is not signed by --ca-file, or its name does not match the URL)";
        return std::unexpected(makeError("cannot reach the agent at " + c.server + ": " + why));
    }
    if (res->status == 401)
        return std::unexpected(makeError("the agent at " + c.server + " wants credentials (401): --user and NETPROBE_PASSWORD"));
    if (res->status != 200) {
        // The agent's errors are {"error": "..."}; anything else: its first line.
        std::string msg = res->body.substr(0, res->body.find('\n'));
        auto j = nlohmann::json::parse(res->body, nullptr, false);
        if (j.is_object() && j.contains("error") && j["error"].is_string()) msg = j["error"].get<std::string>();
        if (msg.size() > 500) msg = msg.substr(0, 500) + "...";
        return std::unexpected(makeError("the agent answered " + std::to_string(res->status) + " for " + path + ": " + msg));
    }
    return std::move(res->body);
}

}  // namespace netprobe::cli
