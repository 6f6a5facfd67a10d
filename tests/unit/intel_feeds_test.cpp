// Threat-intelligence feeds: each format over real-world-looking samples, dedupe,
// STIX validity windows at an injected time, hostile inputs, the YAML configuration.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <netprobe/intel/feeds.hpp>

namespace ni = netprobe::intel;
using namespace std::chrono_literals;
using ni::FeedFormat;

namespace {

// 2024-06-01T12:00:00Z
const std::chrono::system_clock::time_point kNow{std::chrono::sys_days{std::chrono::year{2024} / 6 / 1} + 12h};

ni::ParsedFeed parse(FeedFormat f, std::string_view text, std::uint8_t conf = 100,
                     std::chrono::system_clock::time_point now = kNow) {
    return ni::parseFeed(f, text, conf, now);
}

std::vector<std::string> prefixes(const ni::ParsedFeed& p) {
    std::vector<std::string> out;
    for (const auto& i : p.ips) out.push_back(i.prefix.str());
    return out;
}
std::vector<std::string> domains(const ni::ParsedFeed& p) {
    std::vector<std::string> out;
    for (const auto& d : p.domains) out.push_back(d.domain);
    return out;
}
std::vector<std::size_t> errorLines(const ni::ParsedFeed& p) {
    std::vector<std::size_t> out;
    for (const auto& e : p.errors) out.push_back(e.line);
    return out;
}
std::string errorsText(const ni::ParsedFeed& p) {
    std::string out;
    for (const auto& e : p.errors) out += std::to_string(e.line) + ": " + e.reason + "\n";
    return out;
}

using Strings = std::vector<std::string>;
using Lines = std::vector<std::size_t>;

}  // namespace

// ---------------------------------------------------------------------------
// Prefixes and domains

TEST(IntelPrefix, ParsesMasksAndRefuses) {
    struct Case {
        const char* in;
        const char* out;  // nullptr: refused
    };
    const Case cases[] = {
        {"198.51.100.7", "198.51.100.7/32"},
        {"203.0.113.0/24", "203.0.113.0/24"},
        {"10.0.0.1/8", "10.0.0.0/8"},  // host bits masked
        {"198.18.255.255/15", "198.18.0.0/15"},
        {"2001:db8::1", "2001:db8::1/128"},
        {"2001:DB8:abcd::ff/32", "2001:db8::/32"},
        {"fd6e:7072::/32", "fd6e:7072::/32"},
        {"::ffff:198.51.100.9/120", "198.51.100.0/24"},  // IPv4-mapped in IPv6 text
        {"0.0.0.0/8", "0.0.0.0/8"},
        {"0.0.0.0/0", nullptr},  // would match everything
        {"::/0", nullptr},
        {"1.2.3.4/33", nullptr},
        {"2001:db8::/129", nullptr},
        {"1.2.3.4/", nullptr},
        {"1.2.3.4/24/8", nullptr},
        {"1.2.3", nullptr},
        {"192.0.2.300", nullptr},
        {" 1.2.3.4", nullptr},
        {"1.2.3.4:80", nullptr},
        {"fe80::1%eth0", nullptr},
        {"", nullptr},
    };
    for (const auto& c : cases) {
        const auto p = ni::parsePrefix(c.in);
        if (!c.out) {
            EXPECT_FALSE(p) << c.in << " -> " << p->str();
            continue;
        }
        ASSERT_TRUE(p) << c.in;
        EXPECT_EQ(p->str(), c.out) << c.in;
    }
    EXPECT_FALSE(ni::parsePrefix(std::string_view("1.2.3.4\0junk", 12)));  // inet_pton would stop at the NUL
    const auto v4 = *ni::parsePrefix("203.0.113.0/24");
    EXPECT_TRUE(v4.v4());
    EXPECT_EQ(v4.len, 96 + 24);
    EXPECT_EQ(v4.addr[10], 0xff);
    EXPECT_EQ(v4.addr[12], 203);
    const auto v6 = *ni::parsePrefix("2001:db8::/32");
    EXPECT_FALSE(v6.v4());
    EXPECT_EQ(v6.len, 32);
}

TEST(IntelDomain, Normalizes) {
    EXPECT_EQ(ni::normalizeDomain("Evil.Example."), "evil.example");
    EXPECT_EQ(ni::normalizeDomain("xn--80ak6aa92e.com"), "xn--80ak6aa92e.com");
    EXPECT_EQ(ni::normalizeDomain("_dmarc.mail-1.example"), "_dmarc.mail-1.example");
    EXPECT_EQ(ni::normalizeDomain(std::string(63, 'a') + ".example"), std::string(63, 'a') + ".example");
    EXPECT_FALSE(ni::normalizeDomain(std::string(64, 'a') + ".example"));
    std::string long254;
    while (long254.size() < 254) long254 += "abcdefghi.";
    long254 = long254.substr(0, 250) + ".com";
    EXPECT_FALSE(ni::normalizeDomain(long254));
    for (const char* bad : {"com", "", ".", "a..example", "bücher.example", "bad!.example", "1.2.3.4", "a b.example"})
        EXPECT_FALSE(ni::normalizeDomain(bad)) << bad;
}

// ---------------------------------------------------------------------------
// Line formats

TEST(IntelFeedsPlain, Table) {
    const char* text =
        "# scanners seen by honeypots, updated hourly\n"   // 1
        "; a semicolon comment\n"                          // 2
        "\n"                                               // 3
        "198.51.100.7\n"                                   // 4
        "203.0.113.0/24   # mass scanner\n"                // 5
        "10.0.0.1/8 ; masked to the network\n"             // 6
        "2001:db8:1::/48\n"                                // 7
        "not-an-ip\n"                                      // 8
        "192.0.2.1 extra words\n"                          // 9
        "192.0.2.300\n"                                    // 10
        "  \t198.18.0.0/15\t\n"                            // 11
        "192.0.2.0/33\n"                                   // 12
        "0.0.0.0/0\n"                                      // 13
        "2001:db8::dead:beef\r\n"                          // 14
        "192.0.2.55#no space before the comment\n";        // 15
    const auto p = parse(FeedFormat::Plain, text, 70);
    EXPECT_EQ(prefixes(p), (Strings{"198.51.100.7/32", "203.0.113.0/24", "10.0.0.0/8", "2001:db8:1::/48",
                                    "198.18.0.0/15", "2001:db8::dead:beef/128", "192.0.2.55/32"}));
    EXPECT_EQ(errorLines(p), (Lines{8, 9, 10, 12, 13})) << errorsText(p);
    EXPECT_NE(p.errors[0].reason.find("not an IP address or CIDR: 'not-an-ip'"), std::string::npos);
    EXPECT_NE(p.errors[1].reason.find("unexpected text after the address: 'extra words'"), std::string::npos);
    EXPECT_NE(p.errors[3].reason.find("bad prefix length"), std::string::npos);
    EXPECT_NE(p.errors[4].reason.find("/0"), std::string::npos);
    EXPECT_EQ(p.ips[1].note, "mass scanner");
    EXPECT_EQ(p.ips[2].note, "masked to the network");
    EXPECT_EQ(p.ips[0].note, "");
    for (const auto& i : p.ips) EXPECT_EQ(i.confidence, 70);
    EXPECT_EQ(p.expired, 0u);
}

TEST(IntelFeedsPlain, DedupeKeepsFirstPositionAndHighestConfidence) {
    const auto p = parse(FeedFormat::Plain,
                         "1.2.3.4\n10.0.0.1/8\n198.51.100.0/24\n1.2.3.4/32 # again\n10.9.9.9/8\n2001:db8::/32\n"
                         "2001:db8:0:1::/32\n");
    EXPECT_EQ(prefixes(p), (Strings{"1.2.3.4/32", "10.0.0.0/8", "198.51.100.0/24", "2001:db8::/32"}));
    EXPECT_TRUE(p.errors.empty()) << errorsText(p);
}

TEST(IntelFeedsNetset, FireholLevel1) {
    const char* text =
        "#\n"
        "# firehol_level1\n"
        "#\n"
        "# ipv4 hash:net ipset\n"
        "#\n"
        "# Source URL      : http://iplists.firehol.org/?ipset=firehol_level1\n"
        "#\n"
        "# Entries         : 4\n"
        "#\n"
        "0.0.0.0/8\r\n"
        "1.10.16.0/20\r\n"
        "1.19.0.0/16\r\n"
        "2.56.192.0/22\r\n"
        "5.134.128.0/19";  // no final newline
    const auto p = parse(FeedFormat::Netset, text);
    EXPECT_EQ(prefixes(p), (Strings{"0.0.0.0/8", "1.10.16.0/20", "1.19.0.0/16", "2.56.192.0/22", "5.134.128.0/19"}));
    EXPECT_TRUE(p.errors.empty()) << errorsText(p);
    const auto bad = parse(FeedFormat::Netset, "# x\n1.2.3.4\n1.2.3.4-1.2.3.9\n");
    EXPECT_EQ(errorLines(bad), (Lines{3}));
}

TEST(IntelFeedsSpamhaus, DropAndDropV6Text) {
    const char* text =
        "; Spamhaus DROP List 2024/06/01 - (c) 2024 The Spamhaus Project SLU\n"  // 1
        "; https://www.spamhaus.org/drop/drop.txt\n"                              // 2
        "; Last-Modified: Sat, 01 Jun 2024 10:40:38 GMT\n"                        // 3
        "; Expires: Sat, 01 Jun 2024 11:52:46 GMT\n"                              // 4
        "1.10.16.0/20 ; SBL256894\n"                                              // 5
        "1.19.0.0/16 ; SBL434604\n"                                               // 6
        "2.56.192.0/22 ; SBL459831\n"                                             // 7
        "2001:678:738::/48 ; SBL636050\n"                                         // 8
        "2a06:5280::/29 ; SBL303641\n"                                            // 9
        "5.188.10.0/23 SBL402741\n";                                              // 10: no ';'
    const auto p = parse(FeedFormat::Spamhaus, text, 90);
    EXPECT_EQ(prefixes(p),
              (Strings{"1.10.16.0/20", "1.19.0.0/16", "2.56.192.0/22", "2001:678:738::/48", "2a06:5280::/29"}));
    ASSERT_EQ(p.ips.size(), 5u);
    EXPECT_EQ(p.ips[0].note, "SBL256894");
    EXPECT_EQ(p.ips[4].note, "SBL303641");
    EXPECT_EQ(p.ips[0].confidence, 90);
    EXPECT_EQ(errorLines(p), (Lines{10}));
}

TEST(IntelFeedsSpamhaus, JsonLines) {
    const char* text =
        R"({"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"})" "\n"                          // 1
        R"({"cidr":"2001:678:738::/48","sblid":"SBL636050","rir":"ripencc"})" "\n"                   // 2
        R"({"cidr":"bogus","sblid":"SBL1","rir":"arin"})" "\n"                                       // 3
        R"({"cidr":)" "\n"                                                                           // 4
        R"({"sblid":"SBL2"})" "\n"                                                                   // 5
        R"({"cidr":"45.8.208.5/22","sblid":"SBL528227","rir":"ripencc"})" "\n"                       // 6: masked
        R"({"type":"metadata","timestamp":1717238438,"size":72940,"records":4,"copyright":"(c) 2024 The Spamhaus Project SLU","terms":"https://www.spamhaus.org/drop/terms/"})"
        "\n";
    const auto p = parse(FeedFormat::Spamhaus, text);
    EXPECT_EQ(prefixes(p), (Strings{"1.10.16.0/20", "2001:678:738::/48", "45.8.208.0/22"}));
    EXPECT_EQ(p.ips[0].note, "SBL256894");
    EXPECT_EQ(p.ips[2].note, "SBL528227");
    EXPECT_EQ(errorLines(p), (Lines{3, 4, 5})) << errorsText(p);
    EXPECT_NE(p.errors[1].reason.find("invalid JSON"), std::string::npos);
    EXPECT_NE(p.errors[2].reason.find("cidr"), std::string::npos);
    // JSON lines are a Spamhaus thing: a plain list calls them errors.
    EXPECT_EQ(errorLines(parse(FeedFormat::Plain, text)), (Lines{1, 2, 3, 4, 5, 6, 7}));
}

// ---------------------------------------------------------------------------
// CSV

TEST(IntelFeedsCsv, Table) {
    const char* text =
        "\"ip_address\",\"port\",\"Confidence\",\"first_seen\",\"comment\"\n"  // 1
        "198.51.100.23,443,90,2024-05-30,\"Cobalt Strike, team server\"\n"     // 2
        "203.0.113.0/24,,0.75,2024-05-31,\"scanner \"\"mass\"\" sweep\"\n"     // 3
        "192.0.2.1,22,,2024-05-31,\n"                                            // 4: default confidence
        "not-an-ip,80,50,2024-05-31,x\n"                                         // 5
        "192.0.2.2,80,150,2024-05-31,bad score\n"                                // 6
        "\"192.0.2.3,80,50,2024-05-31,unterminated\n"                            // 7
        "# a comment row\n"                                                      // 8
        "\n"                                                                     // 9
        " 2001:db8::5 ,443,1.0,2024-06-01,v6\n"                                  // 10
        "192.0.2.9\n"                                                            // 11: short row
        "\"192.0.2.10\" ,80,1,2024-06-01,\"spaces after the quote\"\n"          // 12
        "192.0.2.11,80,abc,2024-06-01,x\n"                                       // 13
        ",,,,\n";                                                                // 14
    const auto p = parse(FeedFormat::Csv, text, 80);
    EXPECT_EQ(prefixes(p), (Strings{"198.51.100.23/32", "203.0.113.0/24", "192.0.2.1/32", "2001:db8::5/128",
                                    "192.0.2.9/32", "192.0.2.10/32"}));
    EXPECT_EQ(errorLines(p), (Lines{5, 6, 7, 13, 14})) << errorsText(p);
    ASSERT_EQ(p.ips.size(), 6u);
    EXPECT_EQ(p.ips[0].confidence, 90);
    EXPECT_EQ(p.ips[0].note, "Cobalt Strike, team server");
    EXPECT_EQ(p.ips[1].confidence, 75);
    EXPECT_EQ(p.ips[1].note, "scanner \"mass\" sweep");
    EXPECT_EQ(p.ips[2].confidence, 80);
    EXPECT_EQ(p.ips[3].confidence, 100);  // 1.0 is a fraction
    EXPECT_EQ(p.ips[4].confidence, 80);
    EXPECT_EQ(p.ips[5].confidence, 1);    // 1 is a score
    EXPECT_EQ(p.ips[5].note, "spaces after the quote");
    EXPECT_NE(p.errors[1].reason.find("confidence"), std::string::npos);
}

TEST(IntelFeedsCsv, HeaderVariants) {
    // abuse.ch style: the header is the last comment before the data.
    const char* abuse =
        "################################################################\n"
        "# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)          #\n"
        "#                                                              #\n"
        "################################################################\n"
        "#\n"
        "# \"first_seen_utc\",\"dst_ip\",\"dst_port\",\"c2_status\",\"last_online\",\"malware\"\n"
        "\"2024-05-29 18:31:04\",\"198.51.100.40\",\"443\",\"online\",\"2024-06-01\",\"QakBot\"\n"
        "\"2024-05-30 02:11:52\",\"203.0.113.77\",\"8080\",\"offline\",\"2024-05-31\",\"Pikabot\"\n"
        "# Number of entries: 2\n";
    auto p = parse(FeedFormat::Csv, abuse);
    EXPECT_EQ(prefixes(p), (Strings{"198.51.100.40/32", "203.0.113.77/32"}));
    EXPECT_TRUE(p.errors.empty()) << errorsText(p);

    // Score column, description column, indicator not first.
    p = parse(FeedFormat::Csv, "first_seen,Network,score,Description\n2024-06-01,198.51.100.0/24,0.5,botnet\n");
    EXPECT_EQ(prefixes(p), (Strings{"198.51.100.0/24"}));
    EXPECT_EQ(p.ips.at(0).confidence, 50);
    EXPECT_EQ(p.ips.at(0).note, "botnet");

    // No header: one error at the first data line, nothing else.
    p = parse(FeedFormat::Csv, "\n198.51.100.1,443\n198.51.100.2,443\n");
    EXPECT_TRUE(p.ips.empty());
    EXPECT_EQ(errorLines(p), (Lines{2}));
    EXPECT_NE(p.errors[0].reason.find("header"), std::string::npos);

    // Only a header: nothing, no error.
    p = parse(FeedFormat::Csv, "indicator,confidence\n");
    EXPECT_TRUE(p.ips.empty());
    EXPECT_TRUE(p.errors.empty());
}

TEST(IntelFeedsCsv, DedupeKeepsHighestConfidenceAndItsNote) {
    const auto p = parse(FeedFormat::Csv,
                         "ip,confidence,comment\n"
                         "198.51.100.1,40,first\n"
                         "203.0.113.5,70,other\n"
                         "198.51.100.1,90,best\n"
                         "198.51.100.1/32,60,third\n");
    EXPECT_EQ(prefixes(p), (Strings{"198.51.100.1/32", "203.0.113.5/32"}));
    EXPECT_EQ(p.ips[0].confidence, 90);
    EXPECT_EQ(p.ips[0].note, "best");
}

// ---------------------------------------------------------------------------
// Hosts files and domain lists

TEST(IntelFeedsHosts, Table) {
    const char* text =
        "# Title: StevenBlack/hosts\n"                                   // 1
        "127.0.0.1 localhost\n"                                          // 2
        "127.0.0.1 localhost.localdomain\n"                              // 3
        "127.0.0.1 local\n"                                              // 4
        "255.255.255.255 broadcasthost\n"                                // 5
        "::1 localhost ip6-localhost ip6-loopback\n"                     // 6
        "fe80::1%lo0 localhost\n"                                        // 7
        "ff02::1 ip6-allnodes\n"                                         // 8
        "0.0.0.0 0.0.0.0\n"                                              // 9
        "\n"                                                             // 10
        "# Custom host records are listed here.\n"                       // 11
        "0.0.0.0 ads.example.com\n"                                      // 12
        "0.0.0.0\tTracker.Example.NET.   # uppercase, trailing dot\n"   // 13
        "127.0.0.1 a.example b.example\n"                                // 14
        "0.0.0.0 bad!.example good.example\n"                            // 15
        "not-an-address bad.example\n"                                   // 16
        "0.0.0.0\n"                                                      // 17
        "0.0.0.0 ads.example.com\n"                                      // 18: duplicate
        "0.0.0.0 intranet\n";                                            // 19: a single label
    const auto p = parse(FeedFormat::Hosts, text, 60);
    EXPECT_EQ(domains(p), (Strings{"ads.example.com", "tracker.example.net", "a.example", "b.example", "good.example"}));
    EXPECT_EQ(errorLines(p), (Lines{15, 16, 17, 19})) << errorsText(p);
    EXPECT_TRUE(p.ips.empty());
    EXPECT_EQ(p.domains[1].note, "uppercase, trailing dot");
    EXPECT_EQ(p.domains[0].confidence, 60);
}

TEST(IntelFeedsDomains, Table) {
    const std::string text =
        "# Phishing domains, one per line\n"                    // 1
        "evil.example\n"                                        // 2
        "*.phish.example\n"                                     // 3
        ".c2.example ; seen 2024-05-31\n"                       // 4
        "||ads.example^\n"                                      // 5
        "EVIL.example.\n"                                       // 6: duplicate of 2
        "xn--80ak6aa92e.com\n"                                  // 7
        "bücher.example\n"                                      // 8
        "com\n"                                                 // 9
        "a..example\n"                                          // 10
        + std::string(64, 'x') + ".example\n"                   // 11
        "198.51.100.7\n"                                        // 12
        "good.example   # inline comment\n"                     // 13
        "under_score.example\n"                                 // 14
        "bad.example trailing words\n"                          // 15
        "! adblock-style comment\n";                            // 16
    const auto p = parse(FeedFormat::Domains, text);
    EXPECT_EQ(domains(p), (Strings{"evil.example", "phish.example", "c2.example", "ads.example", "xn--80ak6aa92e.com",
                                   "good.example", "under_score.example"}));
    EXPECT_EQ(errorLines(p), (Lines{8, 9, 10, 11, 12, 15})) << errorsText(p);
    EXPECT_NE(p.errors[0].reason.find("punycode"), std::string::npos);
    EXPECT_NE(p.errors[1].reason.find("single label"), std::string::npos);
    EXPECT_NE(p.errors[3].reason.find("63"), std::string::npos);
    EXPECT_EQ(p.domains[0].note, "");
    EXPECT_EQ(p.domains[1].note, "wildcard");
    EXPECT_EQ(p.domains[2].note, "wildcard; seen 2024-05-31");
    EXPECT_EQ(p.domains[5].note, "inline comment");
}

// ---------------------------------------------------------------------------
// STIX 2.1

namespace {

std::string indicator(const std::string& id, const std::string& pattern, const std::string& extra = "") {
    return R"({"type":"indicator","spec_version":"2.1","id":"indicator--)" + id +
           R"(","created":"2024-05-01T00:00:00.000Z","modified":"2024-05-01T00:00:00.000Z","pattern":")" + pattern +
           R"(","pattern_type":"stix","valid_from":"2024-05-01T00:00:00Z")" + extra + "}";
}

std::string bundle(const std::vector<std::string>& objects) {
    std::string out = R"({"type":"bundle","id":"bundle--5d0092c5-5f74-4287-9642-33f4c354e56d","objects":[)";
    for (std::size_t i = 0; i < objects.size(); ++i) out += (i ? ",\n" : "\n") + objects[i];
    return out + "\n]}";
}

}  // namespace

TEST(IntelFeedsStix, Bundle) {
    const std::string text = bundle({
        R"({"type":"identity","spec_version":"2.1","id":"identity--f431f809-377b-45e0-aa1c-6a4751cae5ff","name":"ACME CERT","identity_class":"organization"})",
        indicator("01", "[ipv4-addr:value = '198.51.100.1']", R"(,"name":"C2 server","confidence":85)"),
        indicator("02", "[ipv4-addr:value = '203.0.113.0/24' OR ipv4-addr:value = '192.0.2.7']"),
        indicator("03", "[ipv6-addr:value = '2001:db8::/32']"),
        indicator("04", "[domain-name:value = 'Evil.Example']", R"(,"confidence":40)"),
        indicator("05", "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f']"),
        indicator("06", "[ipv4-addr:value = '198.51.100.2' AND domain-name:value = 'x.example']"),
        indicator("07", "[ipv4-addr:value = '198.51.100.3']", R"(,"valid_until":"2024-05-31T00:00:00Z")"),
        R"({"type":"indicator","spec_version":"2.1","id":"indicator--08","pattern":"[ipv4-addr:value = '198.51.100.4']","pattern_type":"stix","valid_from":"2024-07-01T00:00:00Z"})",
        R"({"type":"indicator","spec_version":"2.1","id":"indicator--09","pattern":"rule x { condition: true }","pattern_type":"yara","valid_from":"2024-05-01T00:00:00Z"})",
        indicator("10", "[ipv4-addr:value = '198.51.100.5']", R"(,"revoked":true)"),
        indicator("11", "[ipv4-addr:value = '2001:db8::1']"),
        indicator("12", "[ipv4-addr:value = '198.51.100.6']", R"(,"valid_until":"2024-06-01T14:30:00.5+02:00")"),
        indicator("13", "[ipv4-addr:value = '198.51.100.66']", R"(,"valid_until":"2024-06-01T13:59:59+02:00")"),
        indicator("14", "[ipv4-addr:value = '198.51.100.8'] OR [domain-name:value = 'c2.example']"),
        indicator("15", "[ipv4-addr:value ISSUBSET '198.51.100.128/25']"),
        indicator("16", "[url:value = 'http://evil.example/x']"),
        indicator("17", "[ipv4-addr:value = '198.51.100.1']", R"(,"confidence":95)"),
        indicator("18", "[ipv4-addr:value = '198.51.100.9'] WITHIN 300 SECONDS"),
        indicator("19", "[ipv4-addr:value = '198.51.100.10']", R"(,"confidence":"high")"),
        indicator("20", "[ipv4-addr:value = '198.51.100.11']", R"(,"valid_until":"yesterday")"),
        indicator("21", "[ipv4-addr:value = 'it\\\\'s']"),
        R"({"type":"malware","spec_version":"2.1","id":"malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b","name":"Poison Ivy","is_family":true})",
        R"({"type":"relationship","spec_version":"2.1","id":"relationship--44298a74-ba52-4f0c-87a3-1824e67d7fad","relationship_type":"indicates","source_ref":"indicator--01","target_ref":"malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b"})",
    });
    const auto p = parse(FeedFormat::Stix, text, 70);
    EXPECT_EQ(prefixes(p), (Strings{"198.51.100.1/32", "203.0.113.0/24", "192.0.2.7/32", "2001:db8::/32",
                                    "198.51.100.6/32", "198.51.100.8/32", "198.51.100.128/25"}));
    EXPECT_EQ(domains(p), (Strings{"evil.example", "c2.example"}));
    EXPECT_EQ(p.expired, 4u);  // 07 (until past), 08 (from future), 10 (revoked), 13 (until past, +02:00)
    std::string reasons = errorsText(p);
    for (const char* id : {"indicator--05", "indicator--06", "indicator--09", "indicator--11", "indicator--16",
                           "indicator--18", "indicator--19", "indicator--20", "indicator--21"})
        EXPECT_NE(reasons.find(std::string("0: ") + id + ": "), std::string::npos) << id << "\n" << reasons;
    EXPECT_EQ(p.errors.size(), 9u) << reasons;
    EXPECT_NE(reasons.find("pattern_type 'yara'"), std::string::npos);
    EXPECT_NE(reasons.find("unsupported pattern"), std::string::npos);
    // 01 and 17 are merged: the higher confidence and its note.
    EXPECT_EQ(p.ips[0].confidence, 95);
    EXPECT_EQ(p.ips[0].note, "indicator--17");
    EXPECT_EQ(p.ips[1].confidence, 70);
    EXPECT_EQ(p.ips[1].note, "indicator--02");
    EXPECT_EQ(p.domains[0].confidence, 40);
    const auto named = parse(FeedFormat::Stix, bundle({indicator("01", "[ipv4-addr:value = '198.51.100.1']",
                                                                 R"(,"name":"C2 server")")}));
    EXPECT_EQ(named.ips.at(0).note, "indicator--01 (C2 server)");
}

TEST(IntelFeedsStix, ValidityWindowAtInjectedTime) {
    const std::string text = bundle({indicator(
        "a", "[ipv4-addr:value = '198.51.100.1']", R"(,"valid_until":"2024-06-10T00:00:00.000Z")")});
    auto at = [&](std::chrono::system_clock::time_point now) { return parse(FeedFormat::Stix, text, 100, now); };
    const auto from = std::chrono::system_clock::time_point{std::chrono::sys_days{std::chrono::year{2024} / 5 / 1}};
    const auto until = std::chrono::system_clock::time_point{std::chrono::sys_days{std::chrono::year{2024} / 6 / 10}};
    struct Case {
        std::chrono::system_clock::time_point now;
        bool valid;
    };
    for (const auto& c : {Case{from - 1s, false}, Case{from, true}, Case{kNow, true}, Case{until - 1ms, true},
                          Case{until, false}, Case{until + 24h * 365 * 10, false}}) {
        const auto p = at(c.now);
        EXPECT_EQ(p.ips.size(), c.valid ? 1u : 0u);
        EXPECT_EQ(p.expired, c.valid ? 0u : 1u);
        EXPECT_TRUE(p.errors.empty()) << errorsText(p);
    }
    // Year 9999 (a common "forever") does not overflow.
    const auto forever = parse(FeedFormat::Stix, bundle({indicator("b", "[ipv4-addr:value = '198.51.100.1']",
                                                                   R"(,"valid_until":"9999-12-31T23:59:59Z")")}));
    EXPECT_EQ(forever.ips.size(), 1u);
}

TEST(IntelFeedsStix, NotABundle) {
    auto p = parse(FeedFormat::Stix, R"({"type":"bundle","objects":[)");
    EXPECT_TRUE(p.ips.empty());
    ASSERT_EQ(p.errors.size(), 1u);
    EXPECT_EQ(p.errors[0].line, 0u);
    EXPECT_NE(p.errors[0].reason.find("parse error"), std::string::npos) << p.errors[0].reason;
    p = parse(FeedFormat::Stix, R"({"hello":"world"})");
    ASSERT_EQ(p.errors.size(), 1u);
    EXPECT_NE(p.errors[0].reason.find("not a STIX bundle"), std::string::npos);
    // A bare indicator, a bare list.
    EXPECT_EQ(parse(FeedFormat::Stix, indicator("x", "[ipv4-addr:value = '192.0.2.1']")).ips.size(), 1u);
    EXPECT_EQ(parse(FeedFormat::Stix, "[" + indicator("x", "[ipv4-addr:value = '192.0.2.1']") + "]").ips.size(), 1u);
}

// ---------------------------------------------------------------------------
// Hostile input: never a crash, a hang or an unbounded error message

TEST(IntelFeedsHostile, EveryFormatSurvives) {
    std::mt19937 rng(42);
    std::string garbage(256 * 1024, '\0');
    for (auto& c : garbage) c = static_cast<char>(rng());
    const std::string longLine(1 << 20, 'a');
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const std::string deepObj = "{\"cidr\":" + std::string(100000, '[') + "}";
    std::string hostsLong = "0.0.0.0";
    while (hostsLong.size() < (1 << 20)) hostsLong += " x" + std::to_string(hostsLong.size()) + ".example";
    const std::string inputs[] = {"", "\n\n\n", garbage, longLine, longLine + "\n1.2.3.4\n", deep, deepObj,
                                  hostsLong, std::string("1.2.3.4\0junk\n", 13), "\"", "[", "{"};
    for (FeedFormat f : {FeedFormat::Plain, FeedFormat::Spamhaus, FeedFormat::Netset, FeedFormat::Csv,
                         FeedFormat::Hosts, FeedFormat::Domains, FeedFormat::Stix}) {
        for (const auto& in : inputs) {
            const auto p = parse(f, in);
            for (const auto& e : p.errors) ASSERT_LT(e.reason.size(), 400u) << ni::feedFormatName(f);
            ASSERT_LE(p.errors.size(), ni::kMaxLineErrors);
            for (const auto& i : p.ips) ASSERT_LE(i.note.size(), 200u);
        }
        const auto empty = parse(f, "");
        EXPECT_TRUE(empty.ips.empty() && empty.domains.empty());
        EXPECT_EQ(empty.errors.size(), f == FeedFormat::Stix ? 1u : 0u) << ni::feedFormatName(f);  // not JSON
    }
    // The NUL does not let "1.2.3.4" through.
    EXPECT_TRUE(parse(FeedFormat::Plain, std::string("1.2.3.4\0junk\n", 13)).ips.empty());
    // A 1 MB line is one error; the line after it still counts.
    auto p = parse(FeedFormat::Plain, longLine + "\n1.2.3.4\n");
    EXPECT_EQ(prefixes(p), (Strings{"1.2.3.4/32"}));
    EXPECT_EQ(errorLines(p), (Lines{1}));
    // Deep JSON is refused before the parser sees it.
    p = parse(FeedFormat::Stix, deep);
    ASSERT_EQ(p.errors.size(), 1u);
    EXPECT_NE(p.errors[0].reason.find("nested deeper"), std::string::npos);
    EXPECT_GT(parse(FeedFormat::Hosts, hostsLong).domains.size(), 40000u);
}

TEST(IntelFeedsHostile, ErrorsAreCapped) {
    std::string text;
    for (int i = 0; i < 5000; ++i) text += "bogus line\n";
    text += "192.0.2.1\n";
    const auto p = parse(FeedFormat::Plain, text);
    EXPECT_EQ(p.errors.size(), ni::kMaxLineErrors);
    EXPECT_EQ(p.errors_omitted, 5000 - ni::kMaxLineErrors);
    EXPECT_EQ(p.errors.back().line, ni::kMaxLineErrors);
    EXPECT_EQ(prefixes(p), (Strings{"192.0.2.1/32"}));
}

// Prints the time only; never asserts on it.
TEST(IntelFeedsPerf, MillionLines) {
    std::string plain, drop;
    plain.reserve(20 << 20);
    drop.reserve(30 << 20);
    for (std::uint32_t i = 0; i < 1000000; ++i) {
        const std::uint32_t a = i * 2654435761u;  // a bijection: distinct, unsorted
        const std::string ip = std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
                               std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
        plain += ip + "\n";
        const std::uint32_t s = i << 8;  // sorted /24s, like a DROP list
        drop += std::to_string(s >> 24) + "." + std::to_string((s >> 16) & 255) + "." +
                std::to_string((s >> 8) & 255) + ".0/24 ; SBL" + std::to_string(100000 + i) + "\n";
    }
    for (auto [name, format, text] : {std::tuple{"plain (unsorted hosts)", FeedFormat::Plain, &plain},
                                      std::tuple{"spamhaus (sorted /24 ; SBL)", FeedFormat::Spamhaus, &drop}}) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto p = parse(format, *text);
        const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("[ intel    ] 1M-line %s feed (%.1f MB): %.0f ms, %zu prefixes, %zu errors\n", name,
                    static_cast<double>(text->size()) / 1e6, ms, p.ips.size(), p.errors.size());
        EXPECT_EQ(p.ips.size(), 1000000u);
        EXPECT_TRUE(p.errors.empty());
    }
}

// ---------------------------------------------------------------------------
// Configuration

TEST(IntelConfig, Example) {
    const auto c = ni::parseIntelConfig(R"(
feeds:
  - name: spamhaus-drop
    type: spamhaus
    path: /var/lib/netprobe/intel/drop.txt
    refresh: 1h
    action: block        # alert (default) | block
    confidence: 90
  - name: stix
    type: stix
    url: https://example.org/bundle.json
  - name: firehol_level1.v2
    type: netset
    url: HTTP://iplists.firehol.org/files/firehol_level1.netset
    refresh: 90s
    action: alert
    confidence: 0
)");
    ASSERT_TRUE(c) << c.error().message;
    ASSERT_EQ(c->feeds.size(), 3u);
    const auto& d = c->feeds[0];
    EXPECT_EQ(d.name, "spamhaus-drop");
    EXPECT_EQ(d.format, FeedFormat::Spamhaus);
    EXPECT_EQ(d.path, "/var/lib/netprobe/intel/drop.txt");
    EXPECT_EQ(d.url, "");
    EXPECT_EQ(d.refresh, 3600s);
    EXPECT_EQ(d.action, ni::Action::Block);
    EXPECT_EQ(d.confidence, 90);
    const auto& s = c->feeds[1];
    EXPECT_EQ(s.format, FeedFormat::Stix);
    EXPECT_EQ(s.url, "https://example.org/bundle.json");
    EXPECT_EQ(s.refresh, 3600s);  // defaults
    EXPECT_EQ(s.action, ni::Action::Alert);
    EXPECT_EQ(s.confidence, 100);
    EXPECT_EQ(c->feeds[2].refresh, 90s);
    EXPECT_EQ(c->feeds[2].confidence, 0);
}

TEST(IntelConfig, Errors) {
    const std::string ok = "feeds:\n  - name: a\n    type: plain\n    path: /p\n";
    ASSERT_TRUE(ni::parseIntelConfig(ok));
    struct Case {
        std::string yaml;
        const char* fragment;
    };
    const Case cases[] = {
        {"", "feeds: required"},
        {"# nothing\n", "feeds: required"},
        {"feeds: []\n", "line 1: feeds: expected a non-empty list of feeds"},
        {"feeds: plain\n", "line 1: feeds: expected a non-empty list"},
        {"sources: []\n", "line 1: sources: unknown setting (known: feeds, resolved)"},
        {ok + "resolved: 5m\n", "line 5: resolved: expected a map (min_ttl, max_ttl, max_addresses)"},
        {ok + "resolved:\n  min_ttl: 0s\n", "line 6: resolved.min_ttl: must be at least 1s, got 0s"},
        {ok + "resolved:\n  max_ttl: later\n", "line 6: resolved.max_ttl: expected a duration"},
        {ok + "resolved:\n  min_ttl: 2h\n  max_ttl: 1h\n", "resolved.max_ttl: must not be below min_ttl"},
        {ok + "resolved:\n  max_addresses: 0\n", "line 6: resolved.max_addresses: expected an integer from 1 to 65536"},
        {ok + "resolved:\n  max_addresses: 65537\n", "resolved.max_addresses: expected an integer from 1 to 65536"},
        {ok + "resolved:\n  ttl: 1m\n", "line 6: resolved.ttl: unknown setting (known: min_ttl, max_ttl, max_addresses)"},
        {"feeds:\n  - name: a\n    type: x\n    path: /p\n",
         "line 3: feeds[0].type: unknown feed type 'x' (plain, spamhaus, netset, csv, hosts, domains, stix)"},
        {"feeds:\n  - type: plain\n    path: /p\n", "line 2: feeds[0].name: required"},
        {"feeds:\n  - name: a\n    path: /p\n", "line 2: feeds[0].type: required"},
        {"feeds:\n  - name: a b\n    type: plain\n    path: /p\n",
         "line 2: feeds[0].name: expected 1-64 letters, digits, '_', '.' or '-', got 'a b'"},
        {"feeds:\n  - name: " + std::string(65, 'n') + "\n    type: plain\n    path: /p\n", "feeds[0].name: expected 1-64"},
        {ok + "  - name: a\n    type: csv\n    path: /q\n", "line 5: feeds[1].name: duplicate feed name 'a' (feeds[0])"},
        {"feeds:\n  - name: a\n    type: plain\n", "line 2: feeds[0]: one of path or url is required"},
        {ok + "    url: https://x.example/l\n", "line 2: feeds[0]: path and url are exclusive"},
        {"feeds:\n  - name: a\n    type: plain\n    url: ftp://x.example/l\n",
         "line 4: feeds[0].url: expected an http:// or https:// URL, got 'ftp://x.example/l'"},
        {"feeds:\n  - name: a\n    type: plain\n    url: https://\n", "feeds[0].url: expected an http:// or https://"},
        {ok + "    refresh: 5s\n", "line 5: feeds[0].refresh: must be at least 10s, got 5s"},
        {ok + "    refresh: soon\n", "line 5: feeds[0].refresh: expected a duration such as 30s, 15m or 1h"},
        {ok + "    action: drop\n", "line 5: feeds[0].action: expected alert or block, got 'drop'"},
        {ok + "    confidence: 101\n", "line 5: feeds[0].confidence: expected an integer from 0 to 100, got '101'"},
        {ok + "    confidence: high\n", "feeds[0].confidence: expected an integer from 0 to 100"},
        {ok + "    confidence: -1\n", "feeds[0].confidence: expected an integer from 0 to 100"},
        {ok + "    colour: red\n", "line 5: feeds[0].colour: unknown setting (known: name, type, path, url"},
        {ok + "    path: /again\n", "line 5: feeds[0].path: given twice"},
        {ok + "    path: \"\"\n", "feeds[0].path"},
        {"feeds:\n  - just-a-string\n", "line 2: feeds[0]: expected a map"},
        {"feeds:\n  - name: [a]\n    type: plain\n    path: /p\n", "line 2: feeds[0].name: expected a value"},
        {"feeds:\n  - name: a\n    type: plain\n    path:\n", "line 4: feeds[0].path: expected a value"},
        {"feeds:\n  - name: a\n   type: plain\n", "line 3: "},  // YAML syntax
    };
    for (const auto& c : cases) {
        const auto r = ni::parseIntelConfig(c.yaml);
        ASSERT_FALSE(r) << c.yaml;
        EXPECT_NE(r.error().message.find(c.fragment), std::string::npos)
            << "yaml:\n" << c.yaml << "\nmessage: " << r.error().message << "\nexpected: " << c.fragment;
    }
}

TEST(IntelConfig, Resolved) {
    const std::string ok = "feeds:\n  - name: a\n    type: domains\n    path: /p\n";
    const auto d = ni::parseIntelConfig(ok);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->resolved.min_ttl, std::chrono::seconds(60));
    EXPECT_EQ(d->resolved.max_ttl, std::chrono::hours(24));
    EXPECT_EQ(d->resolved.max_addresses, 16384u);
    const auto r = ni::parseIntelConfig(ok + "resolved:\n  min_ttl: 2s\n  max_ttl: 10m\n  max_addresses: 100\n");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->resolved.min_ttl, std::chrono::seconds(2));
    EXPECT_EQ(r->resolved.max_ttl, std::chrono::minutes(10));
    EXPECT_EQ(r->resolved.max_addresses, 100u);
}

TEST(IntelConfig, LoadAndNames) {
    const auto r = ni::loadIntelConfig("/nonexistent/netprobe-intel.yaml");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("/nonexistent/netprobe-intel.yaml"), std::string::npos);
    for (const char* n : {"plain", "spamhaus", "netset", "csv", "hosts", "domains", "stix"}) {
        const auto f = ni::feedFormatFromName(n);
        ASSERT_TRUE(f) << n;
        EXPECT_EQ(ni::feedFormatName(*f), n);
    }
    EXPECT_FALSE(ni::feedFormatFromName("Plain"));
    EXPECT_EQ(ni::actionName(ni::Action::Block), "block");
}
