#include <gtest/gtest.h>

#include <netprobe/util/ip.hpp>

using namespace netprobe::util;

TEST(Ip, Ipv4IsStoredMappedAndPrintedDotted) {
    auto a = parseAddr("198.18.0.7");
    ASSERT_TRUE(a);
    EXPECT_TRUE(isV4Mapped(*a));
    EXPECT_EQ((*a)[15], 7);
    EXPECT_EQ(formatAddr(*a), "198.18.0.7");
}

TEST(Ip, Ipv6RoundTripsInCanonicalForm) {
    auto a = parseAddr("fd6e:7072:0:0::01");
    ASSERT_TRUE(a);
    EXPECT_FALSE(isV4Mapped(*a));
    EXPECT_EQ(formatAddr(*a), "fd6e:7072::1");
}

TEST(Ip, RejectsGarbage) {
    EXPECT_FALSE(parseAddr(""));
    EXPECT_FALSE(parseAddr("198.18.0.256"));
    EXPECT_FALSE(parseAddr("not-an-ip"));
    EXPECT_FALSE(parseAddr(std::string_view("198.18.0.7\0junk", 15)));  // inet_pton would stop at the NUL
    EXPECT_FALSE(parseAddr(std::string(200, '1')));
}

TEST(Ip, ProtocolNamesBothWays) {
    EXPECT_EQ(protocolName(6), "tcp");
    EXPECT_EQ(protocolName(58), "icmpv6");
    EXPECT_EQ(protocolName(250), "250");
    EXPECT_EQ(parseProtocol("udp"), 17);
    EXPECT_EQ(parseProtocol("47"), 47);
    EXPECT_FALSE(parseProtocol("256"));
    EXPECT_FALSE(parseProtocol("bogus"));
}
