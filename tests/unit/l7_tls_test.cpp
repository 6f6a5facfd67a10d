// l7::parseClientHelloSni over ClientHellos that real clients sent (captured once from a
// listening socket on loopback: curl 7.88 with OpenSSL 3.0, and openssl s_client
// -tls1_2 -servername), then cut, corrupted and crafted around them.
#include <gtest/gtest.h>

#include <netprobe/l7/tls.hpp>

#include <string>

namespace {

using netprobe::l7::parseClientHelloSni;
using netprobe::l7::SniResult;

std::string unhex(std::string_view h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

// curl -k --resolve Www.Evil.NP.test:PORT:127.0.0.1 https://Www.Evil.NP.test:PORT/
const std::string kCurl = unhex(
    "1603010200010001fc030334b90ccfad2e6bcc87e691871f5a02f585a7bd72ae0e2516c340ed016463c0fa20fd912178"
    "4af9dfbc376db613fab6de12735936032a29c4c32923cec087a3db22003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000175"
    "0000001500130000107777772e6576696c2e6e702e74657374000b000403000102000a00160014001d0017001e001900"
    "18010001010102010301040010000e000c02683208687474702f312e31001600000017000000310000000d002a002804"
    "0305030603080708080809080a080b080408050806040105010601030303010302040205020602002b00090803040303"
    "03020301002d00020101003300260024001d002012d331509a14f45e399252f16a7b04c0422d0a42a957c7fc895ed59b"
    "01abac11001500ad00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000");

// openssl s_client -tls1_2 -servername api.example.org
const std::string kOpenssl12 = unhex(
    "16030100cf010000cb0303998010246ffaee3ae211f97ed3a14eb219ac61bce58760b438f3de2c76181166000038c02c"
    "c030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
    "0035002f00ff0100006a00000014001200000f6170692e6578616d706c652e6f7267000b000403000102000a000c000a"
    "001d0017001e00190018002300000016000000170000000d002a0028040305030603080708080809080a080b08040805"
    "0806040105010601030303010302040205020602");

SniResult sni(std::string_view b, std::string* n) { return parseClientHelloSni(b, n); }

TEST(TlsSni, RealClientHellos) {
    std::string n;
    ASSERT_EQ(sni(kCurl, &n), SniResult::Name);
    EXPECT_EQ(n, "www.evil.np.test");  // lower-cased
    ASSERT_EQ(sni(kOpenssl12, &n), SniResult::Name);
    EXPECT_EQ(n, "api.example.org");
}

TEST(TlsSni, EveryCutIsTruncatedOrAName) {
    // the capture keeps the head only: a cut before the name's end is Truncated, never a
    // wrong name or a crash
    for (const auto* hello : {&kCurl, &kOpenssl12}) {
        std::string full;
        ASSERT_EQ(sni(*hello, &full), SniResult::Name);
        bool named = false;
        for (std::size_t len = 0; len <= hello->size(); ++len) {
            std::string n;
            const auto r = sni(std::string_view(*hello).substr(0, len), &n);
            if (r == SniResult::Name) {
                EXPECT_EQ(n, full) << len;
                named = true;
            } else {
                EXPECT_EQ(r, SniResult::Truncated) << len;
                EXPECT_FALSE(named) << "a longer prefix lost the name at " << len;
            }
        }
    }
}

TEST(TlsSni, NotAHelloAndCorruptions) {
    std::string n;
    EXPECT_EQ(sni("GET / HTTP/1.1\r\n\r\n", &n), SniResult::NotHello);
    std::string server_hello = kOpenssl12;
    server_hello[5] = 2;  // handshake type ServerHello
    EXPECT_EQ(sni(server_hello, &n), SniResult::NotHello);
    std::string alert = kOpenssl12;
    alert[0] = 21;
    EXPECT_EQ(sni(alert, &n), SniResult::NotHello);
    // every single byte replaced by every value: a name, or a verdict, never a crash; a
    // name that differs from the original only when the name's own bytes changed
    for (std::size_t i = 0; i < kOpenssl12.size(); ++i) {
        for (int v = 0; v < 256; v += 17) {
            std::string b = kOpenssl12;
            b[i] = static_cast<char>(v);
            std::string got;
            (void)sni(b, &got);
            for (char c : got) EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
        }
    }
}

// A minimal ClientHello built by hand: record, handshake, version, random, empty session
// id, one suite, null compression, and the extensions given.
std::string hello(const std::string& extensions, bool with_ext_block = true) {
    std::string body;
    body += std::string("\x03\x03", 2) + std::string(32, 'r') + std::string("\x00", 1) + std::string("\x00\x02\x13\x01", 4) +
            std::string("\x01\x00", 2);
    if (with_ext_block) {
        body.push_back(static_cast<char>(extensions.size() >> 8));
        body.push_back(static_cast<char>(extensions.size()));
        body += extensions;
    }
    std::string hs = std::string("\x01", 1);
    hs.push_back(0);
    hs.push_back(static_cast<char>(body.size() >> 8));
    hs.push_back(static_cast<char>(body.size()));
    hs += body;
    std::string rec = std::string("\x16\x03\x01", 3);
    rec.push_back(static_cast<char>(hs.size() >> 8));
    rec.push_back(static_cast<char>(hs.size()));
    return rec + hs;
}

std::string ext(std::uint16_t type, const std::string& data) {
    std::string e;
    e.push_back(static_cast<char>(type >> 8));
    e.push_back(static_cast<char>(type));
    e.push_back(static_cast<char>(data.size() >> 8));
    e.push_back(static_cast<char>(data.size()));
    return e + data;
}

std::string serverName(const std::string& host, char name_type = 0) {
    std::string entry(1, name_type);
    entry.push_back(static_cast<char>(host.size() >> 8));
    entry.push_back(static_cast<char>(host.size()));
    entry += host;
    std::string list;
    list.push_back(static_cast<char>(entry.size() >> 8));
    list.push_back(static_cast<char>(entry.size()));
    return ext(0, list + entry);
}

TEST(TlsSni, CraftedCases) {
    std::string n;
    EXPECT_EQ(sni(hello(ext(10, "\x00\x02\x00\x1d") + serverName("Shop.Example.")), &n), SniResult::Name);
    EXPECT_EQ(n, "shop.example");  // trailing dot dropped
    EXPECT_EQ(sni(hello(ext(10, "\x00\x02\x00\x1d")), &n), SniResult::NoSni);
    EXPECT_EQ(sni(hello("", false), &n), SniResult::NoSni);  // no extension block at all
    EXPECT_EQ(sni(hello(serverName("a..b")), &n), SniResult::Malformed);
    EXPECT_EQ(sni(hello(serverName("bad name")), &n), SniResult::Malformed);
    EXPECT_EQ(sni(hello(serverName(std::string(64, 'a') + ".example")), &n), SniResult::Malformed);  // label > 63
    EXPECT_EQ(sni(hello(serverName("x.example", 1)), &n), SniResult::NoSni);  // not a host_name entry
    // an extension whose length runs past the block
    std::string bad = hello(serverName("x.example"));
    bad[bad.size() - 12] = 0x7f;
    EXPECT_NE(sni(bad, &n), SniResult::Name);
}

}  // namespace
