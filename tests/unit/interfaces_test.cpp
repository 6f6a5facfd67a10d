// decodeLinkMessages against the kernel's own RTM_NEWLINK dump (no root needed), with
// if_nameindex(3) as the oracle; and truncated/lying messages.
#include <gtest/gtest.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <map>
#include <vector>

#include <netprobe/ebpf/interfaces.hpp>
#include <netprobe/util/fd.hpp>
#include <nlohmann/json.hpp>

using netprobe::ebpf::decodeLinkMessages;
using netprobe::ebpf::LinkEvent;

namespace {

// The whole RTM_GETLINK dump, message buffers concatenated as recv() returned them.
std::vector<std::vector<std::byte>> dumpLinks() {
    netprobe::util::UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    EXPECT_TRUE(fd);
    struct {
        nlmsghdr h;
        ifinfomsg i;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    EXPECT_EQ(::send(fd.get(), &req, sizeof req, 0), static_cast<ssize_t>(sizeof req));
    std::vector<std::vector<std::byte>> out;
    for (;;) {
        std::vector<std::byte> buf(1 << 16);
        const auto n = ::recv(fd.get(), buf.data(), buf.size(), 0);
        if (n <= 0) break;
        buf.resize(static_cast<std::size_t>(n));
        nlmsghdr h;
        std::memcpy(&h, buf.data(), sizeof h);
        if (h.nlmsg_type == NLMSG_DONE) break;
        out.push_back(std::move(buf));
    }
    return out;
}

}  // namespace

TEST(LinkMessages, DecodesTheKernelsDump) {
    std::map<std::uint32_t, std::string> oracle;
    auto* list = if_nameindex();
    ASSERT_NE(list, nullptr);
    for (auto* p = list; p->if_index != 0; ++p) oracle[p->if_index] = p->if_name;
    if_freenameindex(list);
    std::map<std::uint32_t, std::string> decoded;
    for (const auto& buf : dumpLinks())
        for (const auto& e : decodeLinkMessages(buf)) {
            EXPECT_EQ(e.kind, LinkEvent::Kind::Changed);
            decoded[e.iface.index] = e.iface.name;
            if (e.iface.name == "lo") {
                EXPECT_TRUE(e.iface.loopback);
            }
        }
    EXPECT_EQ(decoded, oracle);
}

TEST(LinkMessages, TruncatedAndLyingMessagesEndTheWalk) {
    const auto dump = dumpLinks();
    ASSERT_FALSE(dump.empty());
    const auto& buf = dump.front();
    const auto whole = decodeLinkMessages(buf);
    ASSERT_FALSE(whole.empty());
    // Every prefix decodes without reading past its end (ASan build), to fewer events.
    for (std::size_t n = 0; n < buf.size(); n += 7) {
        std::vector<std::byte> prefix(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        EXPECT_LE(decodeLinkMessages(prefix).size(), whole.size());
    }
    // A header claiming more than the buffer: nothing.
    auto lying = buf;
    nlmsghdr h;
    std::memcpy(&h, lying.data(), sizeof h);
    h.nlmsg_len = static_cast<std::uint32_t>(lying.size() + 100);
    std::memcpy(lying.data(), &h, sizeof h);
    EXPECT_TRUE(decodeLinkMessages(lying).empty());
    // A message too short for ifinfomsg is skipped.
    h.nlmsg_len = sizeof(nlmsghdr) + 4;
    std::vector<std::byte> tiny(sizeof(nlmsghdr) + 4);
    std::memcpy(tiny.data(), &h, sizeof h);
    EXPECT_TRUE(decodeLinkMessages(tiny).empty());
}

// ebpf::dumpLinks (names and kinds, IFLA_LINKINFO/IFLA_INFO_KIND) against iproute2's own
// reading of the same dump (ip -d -j link: linkinfo.info_kind) and if_nameindex(3).
TEST(LinkMessages, DumpLinksNamesAndKindsMatchIproute2) {
    auto links = netprobe::ebpf::dumpLinks();
    ASSERT_TRUE(links) << links.error().what();
    std::map<std::string, std::string> ours;
    for (const auto& l : *links) ours[l.name] = l.kind;
    FILE* p = ::popen("ip -d -j link show 2>/dev/null", "r");
    ASSERT_NE(p, nullptr);
    std::string text;
    char chunk[4096];
    for (std::size_t n; (n = std::fread(chunk, 1, sizeof chunk, p)) > 0;) text.append(chunk, n);
    ASSERT_EQ(::pclose(p), 0) << "ip -d -j link";
    const auto j = nlohmann::json::parse(text);
    std::map<std::string, std::string> iproute;
    for (const auto& l : j) {
        std::string kind;
        if (l.contains("linkinfo") && l["linkinfo"].contains("info_kind")) kind = l["linkinfo"]["info_kind"];
        iproute[l["ifname"]] = kind;
    }
    EXPECT_EQ(ours, iproute);
    EXPECT_EQ(ours.at("lo"), "");
}
