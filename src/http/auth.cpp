#include "http/auth.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <memory>

namespace netprobe::http {

namespace {

int b64Value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

std::string sha256(std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    EVP_Digest(data.data(), data.size(), md.data(), &n, EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<const char*>(md.data()), n);
}

// Hashed with the cost of the users' hashes, so an unknown user takes as long as a known one.
constexpr const char* kDummyHash = "$2b$10$qTTfxlF23eiab.fjTjIDROowgkEOt9B.jf2pfd47eWJQSP.AxxG9e";

}  // namespace

std::optional<std::string> base64Decode(std::string_view in) {
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    std::string out;
    out.reserve(in.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        const int v = b64Value(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    if (bits >= 6) return std::nullopt;  // a lone trailing character carries no whole byte
    return out;
}

std::optional<Credentials> parseBasicAuth(std::string_view a) {
    if (a.size() < 6) return std::nullopt;
    // The scheme is case-insensitive (RFC 9110 11.1).
    const std::string_view scheme = a.substr(0, 6);
    if (!(scheme == "Basic " || scheme == "basic " || scheme == "BASIC ")) return std::nullopt;
    a.remove_prefix(6);
    while (!a.empty() && a.front() == ' ') a.remove_prefix(1);
    auto decoded = base64Decode(a);
    if (!decoded) return std::nullopt;
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) return std::nullopt;
    return Credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

bool bcryptVerify(std::string_view password, const std::string& hash) {
    // crypt_data is ~32 KiB: on the heap, one per call (checks are rare thanks to the cache).
    auto data = std::make_unique<crypt_data>();
    std::memset(data.get(), 0, sizeof(crypt_data));
    const std::string pw(password);
    const char* out = crypt_rn(pw.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
    if (out == nullptr || out[0] == '*') return false;
    const std::size_t n = std::strlen(out);
    return n == hash.size() && CRYPTO_memcmp(out, hash.data(), n) == 0;
}

bool BasicAuth::check(const Credentials& c) const {
    const auto it = users_.find(c.user);
    const std::string& hash = it == users_.end() ? std::string(kDummyHash) : it->second;
    std::string key = c.user;
    key += '\0';
    key += c.password;
    key += '\0';
    key += hash;
    key = sha256(key);
    {
        std::lock_guard lk(mu_);
        if (auto hit = cache_.find(key); hit != cache_.end()) return hit->second && it != users_.end();
    }
    const bool ok = bcryptVerify(c.password, hash) && it != users_.end();
    std::lock_guard lk(mu_);
    if (cache_.size() >= 4096) cache_.clear();  // bounded: an attacker's guesses cannot grow it
    cache_[key] = ok;
    return ok;
}

}  // namespace netprobe::http
