// HTTP basic authentication against bcrypt hashes (exporter-toolkit's basic_auth_users).
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace netprobe::http {

// Standard base64 (RFC 4648, padding required when the length is not a multiple of 4
// is tolerated); nullopt on a character outside the alphabet.
[[nodiscard]] std::optional<std::string> base64Decode(std::string_view in);

// "Basic <base64(user:password)>" -> user, password; nullopt when malformed.
struct Credentials {
    std::string user, password;
};
[[nodiscard]] std::optional<Credentials> parseBasicAuth(std::string_view authorization);

// bcrypt verification (libcrypt) with a cache of recent outcomes: a scraper sends the
// same credentials every few seconds and bcrypt costs tens of milliseconds per check.
// Thread-safe. An unknown user costs one bcrypt too (no timing hint that it is unknown).
class BasicAuth {
public:
    explicit BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {}
    [[nodiscard]] bool empty() const { return users_.empty(); }
    [[nodiscard]] bool check(const Credentials& c) const;

private:
    std::map<std::string, std::string> users_;  // user -> bcrypt hash
    mutable std::mutex mu_;
    mutable std::unordered_map<std::string, bool> cache_;  // sha256(user, password, hash) -> outcome
};

// crypt(3) of password with the settings of hash compared in constant time.
[[nodiscard]] bool bcryptVerify(std::string_view password, const std::string& hash);

}  // namespace netprobe::http
