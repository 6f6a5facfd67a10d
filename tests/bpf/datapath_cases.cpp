// The datapath packet table: one row per case (frames, programs, expected maps).
#include "datapath_support.hpp"

namespace netprobe::datapath_test {

namespace {

std::vector<CaseRow> parseCases()
{
    using namespace cls;
    namespace ipp = ipproto;
    namespace tf = tcp_flags;
    std::vector<CaseRow> t;

    // ---- Ethernet only ----
    t.push_back(ok("eth_arp_request", eth().arp(ip4(A4), ip4(B4)).build(), {ARP}, std::nullopt));
    t.push_back(ok("eth_arp_reply", eth().arp(ip4(B4), ip4(A4), 2).build(), {ARP}, std::nullopt));
    t.push_back(ok("eth_lldp", PacketBuilder().eth({}, {}, ethertype::LLDP).payload(46).build(),
                   {OTHER_L3}, std::nullopt));
    t.push_back(ok("eth_8023_length_field",
                   PacketBuilder().eth({}, {}, 46).payload(46).build(), {OTHER_L3}, std::nullopt));
    t.push_back(ok("eth_header_only", PacketBuilder().eth().build(), {OTHER_L3}, std::nullopt));

    // ---- IPv4 + TCP flags ----
    struct FlagCase {
        const char* name;
        std::uint8_t flags;
    };
    for (auto [name, flags] : {FlagCase{"syn", tf::SYN}, FlagCase{"synack", tf::SYN | tf::ACK},
                               FlagCase{"finack", tf::FIN | tf::ACK}, FlagCase{"rst", tf::RST},
                               FlagCase{"rstack", tf::RST | tf::ACK}, FlagCase{"pshack", tf::PSH | tf::ACK},
                               FlagCase{"urg_ece_cwr", tf::URG | tf::ECE | tf::CWR},
                               FlagCase{"all_flags_one_packet", 0xff}, FlagCase{"no_flags", 0}}) {
        t.push_back(ok(std::string("ipv4_tcp_") + name,
                       eth().ipv4(A4, B4).tcp(40000, 80, flags).payload(flags & tf::PSH ? 100 : 0).build(),
                       {IPV4, TCP}, key4(A4, B4, 40000, 80, ipp::TCP), flags));
        t.push_back(ok(std::string("ipv6_tcp_") + name,
                       eth().ipv6(A6, B6).tcp(50000, 443, flags).payload(flags & tf::PSH ? 100 : 0).build(),
                       {IPV6, TCP}, key6(A6, B6, 50000, 443, ipp::TCP), flags));
    }
    {
        // flags OR-ed over the packets of one connection, both directions of traffic
        // seen on the same hook (two flows).
        CaseRow c;
        c.name = "ipv4_tcp_flags_ored_across_packets";
        const std::uint8_t seq[] = {tf::SYN, tf::ACK, tf::PSH | tf::ACK, tf::URG | tf::ACK,
                                    tf::ECE | tf::CWR | tf::ACK, tf::FIN | tf::ACK};
        std::uint64_t bytes = 0;
        for (std::uint8_t f : seq) {
            Bytes fr = eth().ipv4(A4, B4).tcp(40001, 8080, f).payload(f & tf::PSH ? 64 : 0).build();
            bytes += fr.size();
            c.steps.push_back({Prog::TcIngress, fr, {IPV4, TCP}});
        }
        c.flows.push_back({key4(A4, B4, 40001, 8080, ipp::TCP), std::size(seq), bytes,
                           tf::SYN | tf::ACK | tf::PSH | tf::URG | tf::ECE | tf::CWR | tf::FIN});
        Bytes reply = eth().ipv4(B4, A4).tcp(8080, 40001, tf::RST).build();
        c.steps.push_back({Prog::TcIngress, reply, {IPV4, TCP}});
        c.flows.push_back({key4(B4, A4, 8080, 40001, ipp::TCP), 1, reply.size(), tf::RST});
        t.push_back(std::move(c));
    }
    t.push_back(ok("ipv4_tcp_with_options_doff10",
                   eth().ipv4(A4, B4)
                       .tcp(40000, 80, tf::SYN,
                            {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7})
                       .build(),
                   {IPV4, TCP}, key4(A4, B4, 40000, 80, ipp::TCP), tf::SYN));
    t.push_back(ok("ipv4_tcp_bad_checksums_still_parsed",
                   eth().ipv4(A4, B4).ipChecksum(0xdead).tcp(1, 2, tf::ACK).l4Checksum(0xbeef).build(),
                   {IPV4, TCP}, key4(A4, B4, 1, 2, ipp::TCP), tf::ACK));
    {
        // Ethernet trailer padding beyond the IPv4 total length: fine, bytes = frame.
        Bytes f = eth().ipv4(A4, B4).tcp(40000, 80, tf::SYN).build();
        f.resize(60, 0);
        t.push_back(ok("ipv4_tcp_ethernet_padding", f, {IPV4, TCP}, key4(A4, B4, 40000, 80, ipp::TCP), tf::SYN));
    }
    t.push_back(ok("ipv4_tcp_egress", eth().ipv4(B4, A4).tcp(80, 40000, tf::SYN | tf::ACK).build(),
                   {IPV4, TCP}, key4(B4, A4, 80, 40000, ipp::TCP), tf::SYN | tf::ACK, Prog::TcEgress));
    t.push_back(ok("ipv4_tcp_max_ports", eth().ipv4(A4, C4).tcp(65535, 1, tf::ACK).build(), {IPV4, TCP},
                   key4(A4, C4, 65535, 1, ipp::TCP), tf::ACK));

    // ---- IPv4 other L4 ----
    t.push_back(ok("ipv4_udp", eth().ipv4(A4, B4).udp(5353, 53).payload(30).build(), {IPV4, UDP},
                   key4(A4, B4, 5353, 53, ipp::UDP)));
    t.push_back(ok("ipv4_udp_empty", eth().ipv4(A4, B4).udp(1234, 4321).build(), {IPV4, UDP},
                   key4(A4, B4, 1234, 4321, ipp::UDP)));
    t.push_back(ok("ipv4_udp_egress", eth().ipv4(A4, B4).udp(5353, 53).payload(30).build(), {IPV4, UDP},
                   key4(A4, B4, 5353, 53, ipp::UDP), 0, Prog::TcEgress));
    t.push_back(ok("ipv4_icmp_echo_request", eth().ipv4(A4, B4).icmp(icmp_type::ECHO_REQUEST, 0, 7, 1).payload(56).build(),
                   {IPV4, ICMP}, key4(A4, B4, 0, 0, ipp::ICMP)));
    t.push_back(ok("ipv4_icmp_echo_reply", eth().ipv4(B4, A4).icmp(icmp_type::ECHO_REPLY, 0, 7, 1).payload(56).build(),
                   {IPV4, ICMP}, key4(B4, A4, 0, 0, ipp::ICMP)));
    t.push_back(ok("ipv4_icmp_header_only_4_bytes", eth().ipv4(A4, B4, ipp::ICMP).raw(Bytes{3, 3, 0, 0}).build(),
                   {IPV4, ICMP}, key4(A4, B4, 0, 0, ipp::ICMP)));
    t.push_back(ok("ipv4_gre", eth().ipv4(A4, B4, ipp::GRE).raw(Bytes{0, 0, 0x08, 0x00}).payload(20).build(),
                   {IPV4, OTHER_L4}, key4(A4, B4, 0, 0, ipp::GRE)));
    t.push_back(ok("ipv4_esp", eth().ipv4(A4, B4, ipp::ESP).payload(40).build(), {IPV4, OTHER_L4},
                   key4(A4, B4, 0, 0, ipp::ESP)));
    t.push_back(ok("ipv4_ipip_outer_only", eth().ipv4(A4, B4).ipv4(C4, A4).udp(1, 2).build(), {IPV4, OTHER_L4},
                   key4(A4, B4, 0, 0, 4)));
    t.push_back(ok("ipv4_no_l4_bytes", eth().ipv4(A4, B4, ipp::GRE).build(), {IPV4, OTHER_L4},
                   key4(A4, B4, 0, 0, ipp::GRE)));

    // ---- IPv4 options ----
    {
        Ipv4Options o;
        o.options = Ipv4Options::routerAlert();
        t.push_back(ok("ipv4_options_router_alert_tcp", eth().ipv4(A4, B4, std::nullopt, o).tcp(40000, 80, tf::SYN).build(),
                       {IPV4, TCP}, key4(A4, B4, 40000, 80, ipp::TCP), tf::SYN));
        o.options = Ipv4Options::nop();  // padded with EOL to IHL 6
        t.push_back(ok("ipv4_options_nop_udp", eth().ipv4(A4, B4, std::nullopt, o).udp(7, 9).payload(4).build(),
                       {IPV4, UDP}, key4(A4, B4, 7, 9, ipp::UDP)));
        o.options = Ipv4Options::timestamp(9);  // 40 bytes: IHL 15
        t.push_back(ok("ipv4_options_max_ihl15_tcp", eth().ipv4(A4, B4, std::nullopt, o).tcp(40000, 80, tf::ACK).payload(5).build(),
                       {IPV4, TCP}, key4(A4, B4, 40000, 80, ipp::TCP), tf::ACK));
        t.push_back(ok("ipv4_options_icmp", eth().ipv4(A4, B4, std::nullopt, o).icmp(icmp_type::ECHO_REQUEST).build(),
                       {IPV4, ICMP}, key4(A4, B4, 0, 0, ipp::ICMP)));
    }

    // ---- IPv4 fragments ----
    {
        CaseRow c;
        c.name = "ipv4_frag_first_then_later_same_flow";
        Bytes first = eth().ipv4(A4, B4).ipv4Fragment(77, 0, true).tcp(40000, 80, tf::PSH | tf::ACK).payload(36).build();
        Bytes later = eth().ipv4(A4, B4, ipp::TCP).ipv4Fragment(77, 56, false).payload(20).build();
        c.steps = {{Prog::TcIngress, first, {IPV4, TCP, FRAG}}, {Prog::TcIngress, later, {IPV4, FRAG}}};
        c.flows = {{key4(A4, B4, 40000, 80, ipp::TCP), 2, first.size() + later.size(), tf::PSH | tf::ACK}};
        c.frags = {frag(4, A4, B4, 77, ipp::TCP, 40000, 80)};
        t.push_back(std::move(c));
    }
    {
        CaseRow c;
        c.name = "ipv4_frag_three_fragments_with_options";
        Ipv4Options o;
        o.options = Ipv4Options::routerAlert();
        Bytes first = eth().ipv4(A4, B4, std::nullopt, o).ipv4Fragment(0xffff, 0, true).tcp(1000, 2000, tf::ACK).payload(12).build();
        Bytes mid = eth().ipv4(A4, B4, ipp::TCP, o).ipv4Fragment(0xffff, 32, true).payload(32).build();
        Bytes last = eth().ipv4(A4, B4, ipp::TCP, o).ipv4Fragment(0xffff, 64, false).payload(3).build();
        c.steps = {{Prog::TcIngress, first, {IPV4, TCP, FRAG}},
                   {Prog::TcIngress, mid, {IPV4, FRAG}},
                   {Prog::TcIngress, last, {IPV4, FRAG}}};
        c.flows = {{key4(A4, B4, 1000, 2000, ipp::TCP), 3, first.size() + mid.size() + last.size(), tf::ACK}};
        c.frags = {frag(4, A4, B4, 0xffff, ipp::TCP, 1000, 2000)};
        t.push_back(std::move(c));
    }
    {
        Bytes later = eth().ipv4(A4, B4, ipp::TCP).ipv4Fragment(78, 1480, false).payload(20).build();
        t.push_back(ok("ipv4_frag_later_without_first_ports_0", later, {IPV4, FRAG}, key4(A4, B4, 0, 0, ipp::TCP)));
    }
    {
        // A later fragment of another datagram (other id) does not borrow the ports.
        CaseRow c;
        c.name = "ipv4_frag_later_other_id_not_joined";
        Bytes first = eth().ipv4(A4, B4).ipv4Fragment(1, 0, true).tcp(40000, 80, tf::ACK).payload(4).build();
        Bytes later = eth().ipv4(A4, B4, ipp::TCP).ipv4Fragment(2, 24, false).payload(20).build();
        c.steps = {{Prog::TcIngress, first, {IPV4, TCP, FRAG}}, {Prog::TcIngress, later, {IPV4, FRAG}}};
        c.flows = {{key4(A4, B4, 40000, 80, ipp::TCP), 1, first.size(), tf::ACK},
                   {key4(A4, B4, 0, 0, ipp::TCP), 1, later.size(), 0}};
        c.frags = {frag(4, A4, B4, 1, ipp::TCP, 40000, 80)};
        t.push_back(std::move(c));
    }
    {
        CaseRow c;
        c.name = "ipv4_frag_first_icmp_then_later";
        Bytes first = eth().ipv4(A4, B4).ipv4Fragment(9, 0, true).icmp(icmp_type::ECHO_REQUEST).payload(16).build();
        Bytes later = eth().ipv4(A4, B4, ipp::ICMP).ipv4Fragment(9, 24, false).payload(16).build();
        c.steps = {{Prog::TcIngress, first, {IPV4, ICMP, FRAG}}, {Prog::TcIngress, later, {IPV4, FRAG}}};
        c.flows = {{key4(A4, B4, 0, 0, ipp::ICMP), 2, first.size() + later.size(), 0}};
        c.frags = {frag(4, A4, B4, 9, ipp::ICMP, 0, 0)};
        t.push_back(std::move(c));
    }
    {
        Ipv4Options o;
        o.dont_fragment = true;
        t.push_back(ok("ipv4_dont_fragment_is_not_a_fragment",
                       eth().ipv4(A4, B4, std::nullopt, o).tcp(40000, 80, tf::ACK).build(), {IPV4, TCP},
                       key4(A4, B4, 40000, 80, ipp::TCP), tf::ACK));
    }
    {
        // A UDP datagram's first fragment carries the UDP length of the whole
        // datagram, longer than the fragment.
        CaseRow c;
        c.name = "ipv4_frag_udp_first_then_later";
        Bytes first = eth().ipv4(A4, B4).ipv4Fragment(500, 0, true).udp(5000, 4789).udpLength(8 + 40 + 60).payload(40).build();
        Bytes later = eth().ipv4(A4, B4, ipp::UDP).ipv4Fragment(500, 48, false).payload(60).build();
        c.steps = {{Prog::TcIngress, first, {IPV4, UDP, FRAG}}, {Prog::TcIngress, later, {IPV4, FRAG}}};
        c.flows = {{key4(A4, B4, 5000, 4789, ipp::UDP), 2, first.size() + later.size(), 0}};
        c.frags = {frag(4, A4, B4, 500, ipp::UDP, 5000, 4789)};
        t.push_back(std::move(c));
    }

    // ---- VLAN ----
    t.push_back(ok("vlan_8021q_ipv4_tcp", eth().vlan(100).ipv4(A4, B4).tcp(40000, 80, tf::SYN).build(),
                   {VLAN, IPV4, TCP}, key4(A4, B4, 40000, 80, ipp::TCP), tf::SYN));
    t.push_back(ok("vlan_8021q_ipv6_udp", eth().vlan(4094).ipv6(A6, B6).udp(546, 547).payload(12).build(),
                   {VLAN, IPV6, UDP}, key6(A6, B6, 546, 547, ipp::UDP)));
    t.push_back(ok("vlan_8021q_arp", eth().vlan(5).arp(ip4(A4), ip4(B4)).build(), {VLAN, ARP}, std::nullopt));
    t.push_back(ok("vlan_8021q_other_l3", eth().vlan(5).etherType(ethertype::LLDP).payload(30).build(),
                   {VLAN, OTHER_L3}, std::nullopt));
    t.push_back(ok("vlan_qinq_8021ad_8021q_ipv4_udp",
                   eth().vlan(10, ethertype::QINQ).vlan(20).ipv4(A4, B4).udp(1000, 2000).payload(8).build(),
                   {VLAN, IPV4, UDP}, key4(A4, B4, 1000, 2000, ipp::UDP)));
    t.push_back(ok("vlan_double_8021q_ipv6_icmpv6",
                   eth().vlan(10).vlan(20).ipv6(A6, B6).icmpv6(icmp_type::V6_ECHO_REQUEST).build(),
                   {VLAN, IPV6, ICMPV6}, key6(A6, B6, 0, 0, ipp::ICMPV6)));
    t.push_back(ok("vlan_qinq_egress_tcp",
                   eth().vlan(10, ethertype::QINQ).vlan(20).ipv4(A4, B4).tcp(22, 50000, tf::PSH | tf::ACK).payload(48).build(),
                   {VLAN, IPV4, TCP}, key4(A4, B4, 22, 50000, ipp::TCP), tf::PSH | tf::ACK, Prog::TcEgress));
    t.push_back(ok("vlan_then_mpls_ipv4_udp", eth().vlan(7).mpls(16).ipv4(A4, B4).udp(53, 5353).build(),
                   {VLAN, MPLS, IPV4, UDP}, key4(A4, B4, 53, 5353, ipp::UDP)));
    t.push_back(bad("vlan_three_tags_too_many",
                    eth().vlan(1, ethertype::QINQ).vlan(2).vlan(3).ipv4(A4, B4).udp(1, 2).build(),
                    NP_MAL_TOO_MANY_VLAN, {VLAN}));
    t.push_back(bad("vlan_three_8021q_tags_too_many", eth().vlan(1).vlan(2).vlan(3).ipv4(A4, B4).tcp(1, 2).build(),
                    NP_MAL_TOO_MANY_VLAN, {VLAN}));
    t.push_back(bad("vlan_truncated_first_tag", eth().vlan(1).ipv4(A4, B4).truncate(14 + 3).build(),
                    NP_MAL_TRUNCATED_VLAN, {}));
    t.push_back(bad("vlan_truncated_second_tag", eth().vlan(1, ethertype::QINQ).vlan(2).ipv4(A4, B4).truncate(14 + 4 + 2).build(),
                    NP_MAL_TRUNCATED_VLAN, {VLAN}));
    t.push_back(bad("vlan_ipv4_bad_doff", eth().vlan(9).ipv4(A4, B4).tcp(1, 2).tcpDataOffset(4).build(),
                    NP_MAL_TCP_BAD_DOFF, {VLAN, IPV4}));

    // ---- MPLS ----
    t.push_back(ok("mpls_1_label_ipv4_udp", mplsStack(1, false), {MPLS, IPV4, UDP}, key4(A4, B4, 40000, 53, ipp::UDP)));
    t.push_back(ok("mpls_1_label_ipv6_tcp", mplsStack(1, true), {MPLS, IPV6, TCP}, key6(A6, B6, 40000, 443, ipp::TCP),
                   tf::ACK));
    t.push_back(ok("mpls_4_labels_ipv4_udp", mplsStack(4, false), {MPLS, IPV4, UDP}, key4(A4, B4, 40000, 53, ipp::UDP)));
    t.push_back(ok("mpls_4_labels_ipv6_tcp", mplsStack(4, true), {MPLS, IPV6, TCP}, key6(A6, B6, 40000, 443, ipp::TCP),
                   tf::ACK));
    t.push_back(ok("mpls_8_labels_limit_ipv4", mplsStack(8, false), {MPLS, IPV4, UDP}, key4(A4, B4, 40000, 53, ipp::UDP)));
    t.push_back(ok("mpls_multicast_ethertype_ipv4",
                   PacketBuilder().eth({}, {}, ethertype::MPLS_MC).mpls(20).ipv4(A4, B4).icmp(icmp_type::ECHO_REQUEST).build(),
                   {MPLS, IPV4, ICMP}, key4(A4, B4, 0, 0, ipp::ICMP)));
    t.push_back(ok("mpls_egress_ipv6", eth().mpls(3).ipv6(A6, B6).udp(1, 2).build(), {MPLS, IPV6, UDP},
                   key6(A6, B6, 1, 2, ipp::UDP), 0, Prog::TcEgress));
    t.push_back(bad("mpls_9_labels_too_deep", mplsStack(9, false), NP_MAL_MPLS_TOO_DEEP, {MPLS}));
    t.push_back(bad("mpls_no_bottom_of_stack_frame_ends", eth().mpls(1).mpls(2).mplsBottom(false).build(),
                    NP_MAL_TRUNCATED_MPLS, {MPLS}));
    // without a bottom-of-stack bit the payload is read as more labels
    t.push_back(bad("mpls_no_bottom_of_stack_payload_read_as_labels",
                    eth().mpls(1).mpls(2).mplsBottom(false).payload(40, 0x10).build(), NP_MAL_MPLS_TOO_DEEP, {MPLS}));
    t.push_back(bad("mpls_non_ip_payload_control_word", eth().mpls(1).raw(Bytes{0, 0, 0, 0}).payload(46).build(),
                    NP_MAL_MPLS_BAD_PAYLOAD, {MPLS}));
    t.push_back(bad("mpls_payload_version_5", eth().mpls(1).raw(Bytes{0x50}).payload(40).build(),
                    NP_MAL_MPLS_BAD_PAYLOAD, {MPLS}));
    t.push_back(bad("mpls_truncated_label", eth().mpls(1).ipv4(A4, B4).truncate(14 + 3).build(),
                    NP_MAL_TRUNCATED_MPLS, {MPLS}));
    t.push_back(bad("mpls_nothing_after_bottom_label", eth().mpls(1).build(), NP_MAL_TRUNCATED_MPLS, {MPLS}));
    t.push_back(bad("mpls_ipv4_truncated", eth().mpls(1).ipv4(A4, B4).udp(1, 2).truncate(14 + 4 + 19).build(),
                    NP_MAL_TRUNCATED_IPV4, {MPLS}));
    t.push_back(bad("mpls_ipv6_bad_length", eth().mpls(1).ipv6(A6, B6).udp(1, 2).payloadLength(9).build(),
                    NP_MAL_IPV6_BAD_LENGTH, {MPLS}));

    // ---- IPv6 ----
    t.push_back(ok("ipv6_udp", eth().ipv6(A6, B6).udp(40000, 53).payload(30).build(), {IPV6, UDP},
                   key6(A6, B6, 40000, 53, ipp::UDP)));
    t.push_back(ok("ipv6_udp_egress", eth().ipv6(B6, A6).udp(53, 40000).payload(90).build(), {IPV6, UDP},
                   key6(B6, A6, 53, 40000, ipp::UDP), 0, Prog::TcEgress));
    t.push_back(ok("ipv6_icmpv6_echo_request", eth().ipv6(A6, B6).icmpv6(icmp_type::V6_ECHO_REQUEST, 0, 3, 4).payload(56).build(),
                   {IPV6, ICMPV6}, key6(A6, B6, 0, 0, ipp::ICMPV6)));
    t.push_back(ok("ipv6_icmpv6_echo_reply", eth().ipv6(B6, A6).icmpv6(icmp_type::V6_ECHO_REPLY, 0, 3, 4).payload(56).build(),
                   {IPV6, ICMPV6}, key6(B6, A6, 0, 0, ipp::ICMPV6)));
    t.push_back(ok("ipv6_icmpv6_neighbor_solicitation",
                   eth().ipv6(A6, "ff02::1:ff00:2", std::nullopt, {.hop_limit = 255}).icmpv6NeighborSolicit(ip6(B6)).build(),
                   {IPV6, ICMPV6}, key6(A6, "ff02::1:ff00:2", 0, 0, ipp::ICMPV6)));
    t.push_back(ok("ipv6_no_next_header", eth().ipv6(A6, B6, ipp::NONE).build(), {IPV6}, key6(A6, B6, 0, 0, ipp::NONE)));
    t.push_back(ok("ipv6_no_next_header_with_trailing_bytes", eth().ipv6(A6, B6, ipp::NONE).payload(16).build(), {IPV6},
                   key6(A6, B6, 0, 0, ipp::NONE)));
    t.push_back(ok("ipv6_hopbyhop_then_no_next_header", eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS).build(), {IPV6},
                   key6(A6, B6, 0, 0, ipp::NONE)));
    t.push_back(ok("ipv6_gre", eth().ipv6(A6, B6, ipp::GRE).payload(24).build(), {IPV6, OTHER_L4},
                   key6(A6, B6, 0, 0, ipp::GRE)));
    // ICMP belongs to IPv4 and ICMPv6 to IPv6: the other pairing is no ICMP message
    // (found by fuzz_packet: it was counted as icmp/icmpv6 and filed in icmp_stats
    // under the other family).
    t.push_back(ok("ipv6_next_header_1_is_not_icmp", eth().ipv6(A6, B6, ipp::ICMP).payload(24).build(), {IPV6, OTHER_L4},
                   key6(A6, B6, 0, 0, ipp::ICMP)));
    t.push_back(ok("ipv4_protocol_58_is_not_icmpv6", eth().ipv4(A4, B4, ipp::ICMPV6).payload(24).build(), {IPV4, OTHER_L4},
                   key4(A4, B4, 0, 0, ipp::ICMPV6)));
    t.push_back(ok("ipv6_esp", eth().ipv6(A6, B6, ipp::ESP).payload(24).build(), {IPV6, OTHER_L4},
                   key6(A6, B6, 0, 0, ipp::ESP)));
    t.push_back(ok("ipv6_in_ipv6_outer_only", eth().ipv6(A6, B6).ipv6(B6, A6).udp(1, 2).build(), {IPV6, OTHER_L4},
                   key6(A6, B6, 0, 0, 41)));
    t.push_back(ok("ipv6_hopbyhop_tcp", eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS).tcp(40000, 80, tf::SYN).build(),
                   {IPV6, TCP}, key6(A6, B6, 40000, 80, ipp::TCP), tf::SYN));
    t.push_back(ok("ipv6_hopbyhop_24_bytes_udp", eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS, 24).udp(9, 10).build(),
                   {IPV6, UDP}, key6(A6, B6, 9, 10, ipp::UDP)));
    t.push_back(ok("ipv6_routing_udp", eth().ipv6(A6, B6).ipv6Ext(ipp::ROUTING, 24).udp(40000, 53).payload(4).build(),
                   {IPV6, UDP}, key6(A6, B6, 40000, 53, ipp::UDP)));
    t.push_back(ok("ipv6_destopts_icmpv6", eth().ipv6(A6, B6).ipv6Ext(ipp::DSTOPTS, 16).icmpv6(icmp_type::V6_ECHO_REQUEST).build(),
                   {IPV6, ICMPV6}, key6(A6, B6, 0, 0, ipp::ICMPV6)));
    t.push_back(ok("ipv6_ah_tcp", eth().ipv6(A6, B6).ipv6Ext(ipp::AH, 24).tcp(40000, 80, tf::ACK).build(), {IPV6, TCP},
                   key6(A6, B6, 40000, 80, ipp::TCP), tf::ACK));
    t.push_back(ok("ipv6_ext_chain_6_headers",
                   ipv6Chain({ipp::HOPOPTS, ipp::DSTOPTS, ipp::ROUTING, ipp::AH, ipp::DSTOPTS, ipp::DSTOPTS}),
                   {IPV6, TCP}, key6(A6, B6, 40000, 22, ipp::TCP), tf::ACK));
    t.push_back(ok("ipv6_ext_chain_8_headers_limit",
                   ipv6Chain({ipp::HOPOPTS, ipp::DSTOPTS, ipp::ROUTING, ipp::DSTOPTS, ipp::DSTOPTS, ipp::DSTOPTS,
                              ipp::DSTOPTS, ipp::DSTOPTS}),
                   {IPV6, TCP}, key6(A6, B6, 40000, 22, ipp::TCP), tf::ACK));
    t.push_back(bad("ipv6_ext_chain_9_headers_too_many",
                    ipv6Chain({ipp::HOPOPTS, ipp::DSTOPTS, ipp::ROUTING, ipp::DSTOPTS, ipp::DSTOPTS, ipp::DSTOPTS,
                               ipp::DSTOPTS, ipp::DSTOPTS, ipp::DSTOPTS}),
                    NP_MAL_IPV6_EXT_TOO_MANY, {IPV6}));
    t.push_back(bad("ipv6_ext_chain_9_ending_in_fragment_too_many",
                    ipv6Chain({ipp::HOPOPTS, ipp::DSTOPTS, ipp::ROUTING, ipp::DSTOPTS, ipp::DSTOPTS, ipp::DSTOPTS,
                               ipp::DSTOPTS, ipp::DSTOPTS, ipp::FRAGMENT}),
                    NP_MAL_IPV6_EXT_TOO_MANY, {IPV6}));

    // ---- IPv6 fragments ----
    {
        CaseRow c;
        c.name = "ipv6_frag_first_then_later_same_flow";
        Bytes first = eth().ipv6(A6, B6).ipv6Frag(0xabcdef01, 0, true).tcp(40000, 80, tf::ACK).payload(44).build();
        Bytes later = eth().ipv6(A6, B6).ipv6Frag(0xabcdef01, 64, false, ipp::TCP).payload(30).build();
        c.steps = {{Prog::TcIngress, first, {IPV6, TCP, FRAG}}, {Prog::TcIngress, later, {IPV6, FRAG}}};
        c.flows = {{key6(A6, B6, 40000, 80, ipp::TCP), 2, first.size() + later.size(), tf::ACK}};
        c.frags = {frag(6, A6, B6, 0xabcdef01, ipp::TCP, 40000, 80)};
        t.push_back(std::move(c));
    }
    {
        CaseRow c;
        c.name = "ipv6_frag_after_hopbyhop_first_then_later";
        Bytes first = eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS).ipv6Frag(5, 0, true).icmpv6(icmp_type::V6_ECHO_REQUEST).payload(16).build();
        Bytes later = eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS).ipv6Frag(5, 24, false, ipp::ICMPV6).payload(16).build();
        c.steps = {{Prog::TcEgress, first, {IPV6, ICMPV6, FRAG}}, {Prog::TcEgress, later, {IPV6, FRAG}}};
        c.flows = {{key6(A6, B6, 0, 0, ipp::ICMPV6, Prog::TcEgress), 2, first.size() + later.size(), 0}};
        c.frags = {frag(6, A6, B6, 5, ipp::ICMPV6, 0, 0)};
        t.push_back(std::move(c));
    }
    t.push_back(ok("ipv6_frag_later_without_first_ports_0",
                   eth().ipv6(A6, B6).ipv6Frag(0x1234, 1448, true, ipp::TCP).payload(64).build(), {IPV6, FRAG},
                   key6(A6, B6, 0, 0, ipp::TCP)));
    {
        CaseRow c;
        c.name = "ipv6_frag_udp_first_then_later";
        Bytes first = eth().ipv6(A6, B6).ipv6Frag(77, 0, true).udp(5000, 4789).udpLength(8 + 40 + 60).payload(40).build();
        Bytes later = eth().ipv6(A6, B6).ipv6Frag(77, 48, false, ipp::UDP).payload(60).build();
        c.steps = {{Prog::TcIngress, first, {IPV6, UDP, FRAG}}, {Prog::TcIngress, later, {IPV6, FRAG}}};
        c.flows = {{key6(A6, B6, 5000, 4789, ipp::UDP), 2, first.size() + later.size(), 0}};
        c.frags = {frag(6, A6, B6, 77, ipp::UDP, 5000, 4789)};
        t.push_back(std::move(c));
    }
    {
        // RFC 8200: a Destination Options header may follow the Fragment header (it
        // is part of the fragmentable part), so a later fragment's Fragment header
        // names DSTOPTS while the first fragment resolves the chain to TCP.
        CaseRow c;
        c.name = "ipv6_frag_destopts_after_fragment_header";
        Bytes first = eth().ipv6(A6, B6).ipv6Frag(91, 0, true).ipv6Ext(ipp::DSTOPTS).tcp(40000, 80, tf::ACK).payload(36).build();
        Bytes later = eth().ipv6(A6, B6).ipv6Frag(91, 64, false, ipp::DSTOPTS).payload(30).build();
        c.steps = {{Prog::TcIngress, first, {IPV6, TCP, FRAG}}, {Prog::TcIngress, later, {IPV6, FRAG}}};
        c.flows = {{key6(A6, B6, 40000, 80, ipp::TCP), 2, first.size() + later.size(), tf::ACK}};
        c.frags = {frag(6, A6, B6, 91, ipp::TCP, 40000, 80)};
        t.push_back(std::move(c));
    }
    {
        // Same 5-tuple on both hooks: two flows, told apart by direction.
        CaseRow c;
        c.name = "same_tuple_ingress_and_egress_two_flows";
        Bytes f = eth().ipv4(A4, B4).udp(1111, 2222).payload(10).build();
        c.steps = {{Prog::TcIngress, f, {IPV4, UDP}}, {Prog::TcEgress, f, {IPV4, UDP}}, {Prog::TcIngress, f, {IPV4, UDP}}};
        c.flows = {{key4(A4, B4, 1111, 2222, ipp::UDP, Prog::TcIngress), 2, 2 * f.size(), 0},
                   {key4(A4, B4, 1111, 2222, ipp::UDP, Prog::TcEgress), 1, f.size(), 0}};
        t.push_back(std::move(c));
    }
    {
        // The same addresses and ports in IPv4 and in IPv6-mapped form are the same key.
        CaseRow c;
        c.name = "ipv4_and_mapped_ipv6_share_address_bytes_not_family";
        Bytes f4 = eth().ipv4(A4, B4).udp(1, 2).build();
        Bytes f6 = eth().ipv6(ip4Mapped(ip4(A4)), ip4Mapped(ip4(B4))).udp(1, 2).build();
        c.steps = {{Prog::TcIngress, f4, {IPV4, UDP}}, {Prog::TcIngress, f6, {IPV6, UDP}}};
        c.flows = {{key4(A4, B4, 1, 2, ipp::UDP), 1, f4.size(), 0},
                   {fkey(6, "::ffff:198.18.0.1", "::ffff:198.18.0.2", 1, 2, ipp::UDP), 1, f6.size(), 0}};
        t.push_back(std::move(c));
    }

    // ---- malformed: IPv4 ----
    // (Untagged, an IPv4 EtherType with < 20 bytes after it is refused by newer
    // kernels' test_run itself: see UntaggedShortIpHeaders. Behind a tag it is not.)
    t.push_back(bad("ipv4_truncated_header_vlan", eth().vlan(1).ipv4(A4, B4).tcp(1, 2).truncate(18 + 19).build(),
                    NP_MAL_TRUNCATED_IPV4, {VLAN}));
    t.push_back(bad("ipv4_ethertype_no_header_vlan", eth().vlan(1).ipv4(A4, B4).truncate(18).build(),
                    NP_MAL_TRUNCATED_IPV4, {VLAN}));
    {
        Ipv4Options o;
        o.options = Ipv4Options::timestamp(3);  // IHL 9 = 36 bytes
        t.push_back(bad("ipv4_truncated_in_options", eth().ipv4(A4, B4, std::nullopt, o).truncate(14 + 30).build(),
                        NP_MAL_TRUNCATED_IPV4));
        t.push_back(bad("ipv4_options_ihl_beyond_frame", eth().ipv4(A4, B4).ihl(15).build(), NP_MAL_TRUNCATED_IPV4));
    }
    t.push_back(bad("ipv4_ihl_4", eth().ipv4(A4, B4).ihl(4).tcp(1, 2).build(), NP_MAL_IPV4_BAD_IHL));
    t.push_back(bad("ipv4_ihl_0", eth().ipv4(A4, B4).ihl(0).udp(1, 2).build(), NP_MAL_IPV4_BAD_IHL));
    t.push_back(bad("ipv4_total_length_below_header", eth().ipv4(A4, B4).totalLength(19).udp(1, 2).build(),
                    NP_MAL_IPV4_BAD_LENGTH));
    t.push_back(bad("ipv4_total_length_below_options", [] {
                        Ipv4Options o;
                        o.options = Ipv4Options::routerAlert();
                        return eth().ipv4(A4, B4, std::nullopt, o).totalLength(20).udp(1, 2).build();
                    }(),
                    NP_MAL_IPV4_BAD_LENGTH));
    t.push_back(bad("ipv4_total_length_beyond_frame", eth().ipv4(A4, B4).tcp(1, 2).payload(10).truncate(14 + 45).build(),
                    NP_MAL_IPV4_BAD_LENGTH));
    t.push_back(bad("ipv4_total_length_ffff", eth().ipv4(A4, B4).totalLength(0xffff).udp(1, 2).build(),
                    NP_MAL_IPV4_BAD_LENGTH));
    t.push_back(bad("ipv4_version_6_in_ipv4_ethertype", eth().ipv4(A4, B4).ipVersion(6).udp(1, 2).build(),
                    NP_MAL_IPV4_BAD_VERSION));
    t.push_back(bad("ipv4_version_0", eth().ipv4(A4, B4).ipVersion(0).udp(1, 2).build(), NP_MAL_IPV4_BAD_VERSION));
    t.push_back(bad("ipv4_bad_ihl_egress", eth().ipv4(A4, B4).ihl(2).tcp(1, 2).build(), NP_MAL_IPV4_BAD_IHL, {},
                    Prog::TcEgress));
    t.push_back(bad("ipv4_bad_version_egress", eth().ipv4(A4, B4).ipVersion(15).tcp(1, 2).build(),
                    NP_MAL_IPV4_BAD_VERSION, {}, Prog::TcEgress));

    // ---- malformed: IPv6 ----
    t.push_back(bad("ipv6_truncated_header_vlan", eth().vlan(1).ipv6(A6, B6).udp(1, 2).truncate(18 + 39).build(),
                    NP_MAL_TRUNCATED_IPV6, {VLAN}));
    t.push_back(bad("ipv6_ethertype_no_header_qinq", eth().vlan(1, ethertype::QINQ).vlan(2).ipv6(A6, B6).truncate(23).build(),
                    NP_MAL_TRUNCATED_IPV6, {VLAN}));
    t.push_back(bad("ipv6_truncated_header_mpls", eth().mpls(1).ipv6(A6, B6).truncate(18 + 20).build(),
                    NP_MAL_TRUNCATED_IPV6, {MPLS}));
    t.push_back(bad("ipv6_payload_length_beyond_frame", eth().ipv6(A6, B6).udp(1, 2).payload(8).payloadLength(17).build(),
                    NP_MAL_IPV6_BAD_LENGTH));
    t.push_back(bad("ipv6_frame_truncated_in_payload", eth().ipv6(A6, B6).tcp(1, 2).payload(100).truncate(100).build(),
                    NP_MAL_IPV6_BAD_LENGTH));
    t.push_back(bad("ipv6_version_4_in_ipv6_ethertype", eth().ipv6(A6, B6).ipVersion(4).udp(1, 2).build(),
                    NP_MAL_IPV6_BAD_VERSION));
    t.push_back(bad("ipv6_bad_version_egress", eth().ipv6(A6, B6).ipVersion(0).udp(1, 2).build(), NP_MAL_IPV6_BAD_VERSION,
                    {}, Prog::TcEgress));
    t.push_back(bad("ipv6_ext_length_beyond_payload", eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS).extHdrLen(3).tcp(1, 2).build(),
                    NP_MAL_TRUNCATED_IPV6_EXT, {IPV6}));
    t.push_back(bad("ipv6_ext_header_cut_at_1_byte", eth().ipv6(A6, B6, ipp::HOPOPTS).raw(Bytes{6}).build(),
                    NP_MAL_TRUNCATED_IPV6_EXT, {IPV6}));
    t.push_back(bad("ipv6_ext_second_header_truncated",
                    eth().ipv6(A6, B6).ipv6Ext(ipp::HOPOPTS).ipv6Ext(ipp::ROUTING, 16).tcp(1, 2).payloadLength(8 + 12).build(),
                    NP_MAL_TRUNCATED_IPV6_EXT, {IPV6}));
    t.push_back(bad("ipv6_ah_length_beyond_payload", eth().ipv6(A6, B6).ipv6Ext(ipp::AH, 12).extHdrLen(20).udp(1, 2).build(),
                    NP_MAL_TRUNCATED_IPV6_EXT, {IPV6}));
    t.push_back(bad("ipv6_fragment_header_truncated", eth().ipv6(A6, B6, ipp::FRAGMENT).raw(Bytes{6, 0, 0, 0}).build(),
                    NP_MAL_TRUNCATED_IPV6_EXT, {IPV6}));

    // ---- malformed: L4 ----
    t.push_back(bad("ipv4_tcp_header_cut_by_total_length", eth().ipv4(A4, B4, ipp::TCP).raw(Bytes(10, 0)).build(),
                    NP_MAL_TRUNCATED_TCP, {IPV4}));
    t.push_back(bad("ipv4_tcp_total_length_ends_inside_tcp", eth().ipv4(A4, B4).tcp(1, 2).totalLength(20 + 19).build(),
                    NP_MAL_TRUNCATED_TCP, {IPV4}));
    t.push_back(bad("ipv4_tcp_doff_beyond_datagram", eth().ipv4(A4, B4).tcp(1, 2).tcpDataOffset(15).payload(20).build(),
                    NP_MAL_TRUNCATED_TCP, {IPV4}));
    t.push_back(bad("ipv6_tcp_header_truncated", eth().ipv6(A6, B6, ipp::TCP).raw(Bytes(19, 0)).build(),
                    NP_MAL_TRUNCATED_TCP, {IPV6}));
    t.push_back(bad("ipv6_tcp_options_beyond_payload", eth().ipv6(A6, B6).tcp(1, 2, tf::SYN, {2, 4, 5, 0xb4}).payloadLength(22).build(),
                    NP_MAL_TRUNCATED_TCP, {IPV6}));
    t.push_back(bad("ipv4_tcp_doff_4", eth().ipv4(A4, B4).tcp(1, 2).tcpDataOffset(4).build(), NP_MAL_TCP_BAD_DOFF, {IPV4}));
    t.push_back(bad("ipv4_tcp_doff_0", eth().ipv4(A4, B4).tcp(1, 2).tcpDataOffset(0).payload(8).build(), NP_MAL_TCP_BAD_DOFF,
                    {IPV4}));
    t.push_back(bad("ipv6_tcp_doff_3_egress", eth().ipv6(A6, B6).tcp(1, 2).tcpDataOffset(3).build(), NP_MAL_TCP_BAD_DOFF,
                    {IPV6}, Prog::TcEgress));
    t.push_back(bad("ipv4_udp_header_truncated", eth().ipv4(A4, B4, ipp::UDP).raw(Bytes{0, 1, 0, 2}).build(),
                    NP_MAL_TRUNCATED_UDP, {IPV4}));
    t.push_back(bad("ipv6_udp_header_truncated", eth().ipv6(A6, B6, ipp::UDP).raw(Bytes(7, 0)).build(), NP_MAL_TRUNCATED_UDP,
                    {IPV6}));
    t.push_back(bad("ipv4_udp_length_7", eth().ipv4(A4, B4).udp(1, 2).udpLength(7).payload(4).build(), NP_MAL_UDP_BAD_LENGTH,
                    {IPV4}));
    t.push_back(bad("ipv4_udp_length_0", eth().ipv4(A4, B4).udp(1, 2).udpLength(0).build(), NP_MAL_UDP_BAD_LENGTH, {IPV4}));
    t.push_back(bad("ipv4_udp_length_beyond_datagram", eth().ipv4(A4, B4).udp(1, 2).payload(10).udpLength(19).build(),
                    NP_MAL_UDP_BAD_LENGTH, {IPV4}));
    t.push_back(bad("ipv6_udp_length_beyond_payload", eth().ipv6(A6, B6).udp(1, 2).payload(10).udpLength(100).build(),
                    NP_MAL_UDP_BAD_LENGTH, {IPV6}));
    t.push_back(bad("ipv4_icmp_truncated_3_bytes", eth().ipv4(A4, B4, ipp::ICMP).raw(Bytes{8, 0, 0}).build(),
                    NP_MAL_TRUNCATED_ICMP, {IPV4}));
    t.push_back(bad("ipv4_icmp_no_bytes", eth().ipv4(A4, B4, ipp::ICMP).build(), NP_MAL_TRUNCATED_ICMP, {IPV4}));
    t.push_back(bad("ipv6_icmpv6_truncated_2_bytes", eth().ipv6(A6, B6, ipp::ICMPV6).raw(Bytes{128, 0}).build(),
                    NP_MAL_TRUNCATED_ICMP, {IPV6}));
    t.push_back(bad("ipv4_frag_first_tcp_truncated", eth().ipv4(A4, B4, ipp::TCP).ipv4Fragment(3, 0, true).raw(Bytes(8, 0)).build(),
                    NP_MAL_TRUNCATED_TCP, {IPV4, FRAG}));

    // ---- XDP: counts every frame it sees per ingress device, parses nothing ----
    t.push_back(xdp("xdp_ipv4_tcp", eth().ipv4(A4, B4).tcp(40000, 80, tf::SYN).build()));
    t.push_back(xdp("xdp_ipv6_udp_in_vlan", eth().vlan(3).ipv6(A6, B6).udp(1, 2).payload(100).build()));
    t.push_back(xdp("xdp_malformed_ipv4_still_counted", eth().ipv4(A4, B4).ihl(1).build()));
    // icmp_stats: type and code of ICMP / ICMPv6 messages, per direction and family
    t.push_back(icmpMsg("icmp_stats_v4_echo_request", eth().ipv4(A4, B4).icmp(icmp_type::ECHO_REQUEST, 0, 9, 1).payload(56).build(),
                        {IPV4, ICMP}, key4(A4, B4, 0, 0, ipp::ICMP), 8, 0));
    t.push_back(icmpMsg("icmp_stats_v4_port_unreachable_egress",
                        eth().ipv4(B4, A4).icmp(icmp_type::DEST_UNREACH, 3, 0, 0).payload(28).build(), {IPV4, ICMP},
                        key4(B4, A4, 0, 0, ipp::ICMP, Prog::TcEgress), 3, 3, Prog::TcEgress));
    t.push_back(icmpMsg("icmp_stats_v4_time_exceeded", eth().ipv4(B4, A4).icmp(11, 1, 0, 0).payload(28).build(),
                        {IPV4, ICMP}, key4(B4, A4, 0, 0, ipp::ICMP), 11, 1));
    t.push_back(icmpMsg("icmp_stats_v6_echo_reply_egress",
                        eth().ipv6(B6, A6).icmpv6(icmp_type::V6_ECHO_REPLY, 0, 3, 4).payload(8).build(), {IPV6, ICMPV6},
                        key6(B6, A6, 0, 0, ipp::ICMPV6, Prog::TcEgress), 129, 0, Prog::TcEgress));
    t.push_back(icmpMsg("icmp_stats_v6_port_unreachable", eth().ipv6(B6, A6).icmpv6(1, 4, 0, 0).payload(48).build(),
                        {IPV6, ICMPV6}, key6(B6, A6, 0, 0, ipp::ICMPV6), 1, 4));
    t.push_back(icmpMsg("icmp_stats_v6_neighbor_solicit",
                        eth().ipv6(A6, "ff02::1:ff00:2", std::nullopt, {.hop_limit = 255}).icmpv6NeighborSolicit(ip6(B6)).build(),
                        {IPV6, ICMPV6}, key6(A6, "ff02::1:ff00:2", 0, 0, ipp::ICMPV6), 135, 0));
    t.push_back(icmpMsg("icmp_stats_v4_behind_vlan", eth().vlan(7).ipv4(A4, B4).icmp(icmp_type::ECHO_REPLY, 0, 9, 1).build(),
                        {VLAN, IPV4, ICMP}, key4(A4, B4, 0, 0, ipp::ICMP), 0, 0));

    t.push_back(xdp("xdp_eth_header_only", PacketBuilder().eth().build()));
    {
        CaseRow c;
        c.name = "xdp_three_frames";
        for (std::size_t n : {0u, 100u, 1400u})
            c.steps.push_back({Prog::Xdp, eth().ipv4(A4, B4).udp(1, 2).payload(n).build(), {}, NP_MAL_NONE});
        t.push_back(std::move(c));
    }

    return t;
}

}  // namespace

const std::vector<CaseRow>& allCases()
{
    static const std::vector<CaseRow> cases = parseCases();
    return cases;
}

std::vector<CaseRow> casesWithBug(bool known_bug)
{
    std::vector<CaseRow> out;
    for (const CaseRow& c : allCases())
        if (c.bug.empty() != known_bug)
            out.push_back(c);
    return out;
}

}  // namespace netprobe::datapath_test
