"""Attach/detach lifecycle: SIGTERM leaves nothing behind, SIGKILL + restart never
duplicates programs (tcx and clsact), and interfaces that come and go while the
agent runs (inside a namespace, without --interface-filter) are followed."""

import os
import signal
import time
import unittest

from netprobe_e2e import (E2ETestCase, attachments, kernel_stats, log, netprobe_attachments, qdiscs, require_tools,
                          run, tc_netprobe_filters, wait_for)


class LifecycleTest(E2ETestCase):
    def setUp(self):
        require_tools("ping")

    # -- helpers -------------------------------------------------------------------

    def assertOneSet(self, ifname: str, tc: str, xdp_mode: str = "off", netns=None) -> dict:
        """Exactly one netprobe program on each hook of the mode, none on the others.
        xdp_mode: native, generic, off (also --xdp-mode=auto on a veth: XDP only on
        physical devices), or any (one XDP program in either mode)."""
        if xdp_mode != "off":
            modes = [m for _, m in attachments(ifname, netns)["xdp_modes"]]
            kernel = {"native": ["driver"], "generic": ["generic"]}.get(xdp_mode)
            if kernel is None:
                self.assertIn(modes, (["driver"], ["generic"]), f"XDP on {ifname}")
            else:
                self.assertEqual(modes, kernel, f"XDP mode on {ifname}")
        a = netprobe_attachments(ifname, netns)
        want = {k: [] for k in a}
        want[f"{tc}_ingress"] = ["netprobe_tc_in"]
        want[f"{tc}_egress"] = ["netprobe_tc_eg"]
        if xdp_mode != "off":
            want["xdp"] = ["netprobe_xdp"]
        got = {k: sorted(name.split(":")[0] for _, name in v) for k, v in a.items()}
        self.assertEqual(got, want, f"attachments of {ifname}: {a}")
        if tc == "clsact":
            for d in ("ingress", "egress"):
                self.assertEqual(len(tc_netprobe_filters(ifname, d, netns)), 1,
                                 f"tc filter show dev {ifname} {d}: {tc_netprobe_filters(ifname, d, netns)}")
        return a

    def assertCounts(self, agent, veth, n: int = 10):
        before = agent.interfaces()[veth.host]["ingress_packets"]
        run(["ping", "-q", "-c", str(n), "-i", "0.01", veth.host_ip], netns=veth.ns)
        wait_for(lambda: agent.interfaces()[veth.host]["ingress_packets"] >= before + n, 10,
                 f"{n} pings counted on {veth.host}")

    # -- SIGTERM -------------------------------------------------------------------

    def sigterm_case(self, *args: str, tc: str, xdp: str = "off"):
        v = self.make_veth()
        self.assertNotIn("clsact", qdiscs(v.host))
        agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=500ms", *args)
        self.assertOneSet(v.host, tc, xdp)
        info = agent.interfaces()[v.host]
        self.assertEqual(info["tc_mode"], tc)
        if xdp == "any":
            self.assertIn(info["xdp_mode"], ("native", "generic"))
        else:
            self.assertEqual(info["xdp_mode"], xdp)
        self.assertCounts(agent, v)
        progs, links = agent.bpf_ids()
        log(f"agent {agent.pid} holds programs {sorted(progs)} links {sorted(links)}")
        self.assertEqual(agent.stop(signal.SIGTERM), 0, agent.output())
        self.assertIn("shutting down", agent.output())
        self.assertNothingAttached(v.host, agent_prog_ids=progs)
        self.assertNotIn("clsact", qdiscs(v.host), "clsact qdisc left on the veth after SIGTERM")
        self.assertEqual(tc_netprobe_filters(v.host, "ingress") + tc_netprobe_filters(v.host, "egress"), [])

    def test_sigterm_default_modes(self):
        self.sigterm_case(tc="tcx")

    def test_sigterm_tcx_native(self):
        self.sigterm_case("--tc-mode=tcx", "--xdp-mode=native", tc="tcx", xdp="native")

    def test_sigterm_clsact_generic(self):
        self.sigterm_case("--tc-mode=clsact", "--xdp-mode=generic", tc="clsact", xdp="generic")

    def test_sigint_exits_zero(self):
        v = self.make_veth()
        agent = self.start_agent(f"--interface-filter={v.host}", "--xdp-mode=off")
        self.assertOneSet(v.host, "tcx", "off")
        progs, _ = agent.bpf_ids()
        self.assertEqual(agent.stop(signal.SIGINT), 0, agent.output())
        self.assertNothingAttached(v.host, agent_prog_ids=progs)

    def test_sigterm_touches_nothing_freed(self):
        """With glibc's per-thread cache off and every freed byte overwritten
        (MALLOC_PERTURB_), a use after free at exit reads garbage every time instead of
        now and then: the security pipeline's subscription once outlived its collector and
        the agent ended with "std::system_error: Invalid argument" in ~1 of 3 CI runs.
        The subsystems with a shutdown step are on: history, security, L7, a flow log, an
        events log."""
        v = self.make_veth()
        env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.tcache_count=0", MALLOC_PERTURB_="165")
        agent = self.start_agent(f"--interface-filter={v.host}", "--collect-interval=300ms", "--l7=on",
                                 "--series-step=2s", f"--flow-log={os.path.join(self.tmpdir(), 'flows.log')}",
                                 f"--events-log={os.path.join(self.tmpdir(), 'events.log')}", env=env)
        self.assertCounts(agent, v)
        agent.wait_collections(3)
        self.assertEqual(agent.stop(signal.SIGTERM), 0, agent.output())
        self.assertIn("shutting down", agent.output())
        self.assertNotIn("fatal", agent.output())

    # -- SIGKILL, then restart ------------------------------------------------------

    def test_sigkill_restart_tcx(self):
        v = self.make_veth()
        args = (f"--interface-filter={v.host}", "--collect-interval=500ms")
        agent = self.start_agent(*args)
        self.assertOneSet(v.host, "tcx")
        progs, _ = agent.bpf_ids()
        self.assertEqual(agent.stop(signal.SIGKILL), -signal.SIGKILL)
        # tcx and XDP links die with their process
        self.assertNothingAttached(v.host, agent_prog_ids=progs)

        agent2 = self.start_agent(*args)
        self.assertOneSet(v.host, "tcx")
        self.assertCounts(agent2, v)
        progs2, _ = agent2.bpf_ids()
        self.assertEqual(agent2.stop(signal.SIGTERM), 0, agent2.output())
        self.assertNothingAttached(v.host, agent_prog_ids=progs2)
        self.assertNotIn("clsact", qdiscs(v.host))

    def test_sigkill_restart_clsact(self):
        v = self.make_veth()
        args = (f"--interface-filter={v.host}", "--collect-interval=500ms", "--tc-mode=clsact", "--xdp-mode=generic")
        agent = self.start_agent(*args)
        first = self.assertOneSet(v.host, "clsact", "generic")
        self.assertEqual(agent.stop(signal.SIGKILL), -signal.SIGKILL)
        # clsact filters are not links: they outlive the process; the XDP link does not
        time.sleep(0.5)
        left = netprobe_attachments(v.host)
        log(f"after SIGKILL: {left}")
        self.assertEqual(left["xdp"], [])
        self.assertEqual([n for _, n in left["clsact_ingress"]], [n for _, n in first["clsact_ingress"]])
        self.assertEqual([n for _, n in left["clsact_egress"]], [n for _, n in first["clsact_egress"]])

        agent2 = self.start_agent(*args)
        second = self.assertOneSet(v.host, "clsact", "generic")
        # the leftovers were replaced, not joined
        self.assertNotEqual(second["clsact_ingress"], first["clsact_ingress"])
        self.assertCounts(agent2, v)
        m = agent2.metrics()
        self.assertEqual(m.get("netprobe_interface_attached", interface=v.host, tc_mode="clsact",
                               xdp_mode="generic"), 1)
        progs2, _ = agent2.bpf_ids()
        self.assertEqual(agent2.stop(signal.SIGTERM), 0, agent2.output())
        self.assertNothingAttached(v.host, agent_prog_ids=progs2)
        self.assertEqual(tc_netprobe_filters(v.host, "ingress") + tc_netprobe_filters(v.host, "egress"), [])
        if "clsact" in qdiscs(v.host):
            # The restarted agent found the killed one's qdisc and does not own it, so it leaves it
            # (empty) in place. Harmless, but worth knowing: see the report.
            log(f"note: an empty clsact qdisc remains on {v.host} after SIGKILL + restart + SIGTERM")

    # -- a crash loop under load -------------------------------------------------------

    def crash_loop(self, tc: str, xdp: str, *mode_args: str, kills: int = 20):
        """kills SIGKILLs of the agent while iperf3 streams through the veth: after every
        restart exactly one NetProbe program per hook and counting resumes; after the final
        SIGTERM nothing is left."""
        require_tools("iperf3")
        v = self.make_veth()
        port = 5201
        srv = self.spawn(["iperf3", "-s", "-B", v.host_ip, "-p", str(port)], log_name="iperf3-server.log")
        wait_for(lambda: run(["ss", "-Hltn", f"sport = :{port}"]).stdout.strip(), 10, "iperf3 listening")
        load = self.spawn(["iperf3", "-c", v.host_ip, "-p", str(port), "-u", "-b", "100M", "-l", "1000",
                           "-t", "600"], netns=v.ns, log_name="iperf3-client.log")
        args = (f"--interface-filter={v.host}", "--collect-interval=250ms") + mode_args
        restarts = []
        for i in range(kills):
            t0 = time.monotonic()
            agent = self.start_agent(*args)
            restarts.append(time.monotonic() - t0)
            self.assertOneSet(v.host, tc, xdp)
            # counting resumes: the load shows up in the new agent's counters
            first = agent.interfaces()[v.host]["ingress_packets"]
            wait_for(lambda: agent.interfaces()[v.host]["ingress_packets"] > first + 1000, 10,
                     f"restart {i + 1}: the agent counting the load")
            self.assertTrue(load.running(), load.output())
            self.assertEqual(agent.stop(signal.SIGKILL), -signal.SIGKILL)
        log(f"{kills} SIGKILLs under load ({tc}/{xdp}): restart to ready "
            f"min {min(restarts):.2f} s, max {max(restarts):.2f} s")
        agent = self.start_agent(*args)
        self.assertOneSet(v.host, tc, xdp)
        load.stop()
        srv.stop()
        # with the load gone: its counters agree with the veth's over a quiet window
        rx = "netprobe_interface_rx_packets_total"
        before_a = agent.wait_stable([rx], settle=2).get(rx, interface=v.host)
        before_k = kernel_stats(v.host)["rx_packets"]
        run(["ping", "-q", "-c", "20", "-i", "0.01", v.host_ip], netns=v.ns)
        after_a = agent.wait_stable([rx], settle=2).get(rx, interface=v.host)
        after_k = kernel_stats(v.host)["rx_packets"]
        log(f"after the crash loop: agent counted {after_a - before_a} packets, the veth {after_k - before_k}")
        self.assertEqual(after_a - before_a, after_k - before_k)
        self.assertGreaterEqual(after_a - before_a, 20)
        progs, _ = agent.bpf_ids()
        self.assertEqual(agent.stop(signal.SIGTERM), 0, agent.output())
        self.assertNothingAttached(v.host, agent_prog_ids=progs)
        self.assertEqual(tc_netprobe_filters(v.host, "ingress") + tc_netprobe_filters(v.host, "egress"), [])
        if tc == "tcx":
            self.assertNotIn("clsact", qdiscs(v.host))

    def test_crash_loop_tcx(self):
        self.crash_loop("tcx", "off")  # auto: no XDP on a veth

    def test_crash_loop_clsact(self):
        self.crash_loop("clsact", "generic", "--tc-mode=clsact", "--xdp-mode=generic")

    # -- interfaces that come and go --------------------------------------------------

    def test_follows_interfaces_in_namespace(self):
        ns = self.make_netns()     # the agent's world: only lo at first
        remote = self.make_netns()  # where the traffic comes from
        # no --interface-filter: every up, non-loopback interface of *this namespace only*
        agent = self.start_agent("--collect-interval=300ms", netns=ns)
        self.assertEqual(agent.interfaces(), {})
        log(agent.output().strip().splitlines()[-1])

        v = self.make_veth(ns=remote, host_ns=ns)  # 'host' end inside the agent's namespace
        wait_for(lambda: v.host in agent.interfaces(), 15, f"{v.host} to appear in /api/v1/interfaces")
        self.assertEqual(set(agent.interfaces()), {v.host})  # not lo, not the peer in the other namespace
        self.assertEqual(agent.interfaces()[v.host]["index"], v.host_ifindex)
        self.assertOneSet(v.host, "tcx", netns=ns)
        run(["ping", "-q", "-c", "10", "-i", "0.01", v.host_ip], netns=remote)
        m = agent.wait_collections(2)  # the pings are over: two collections later all are counted
        self.assertGreaterEqual(agent.interfaces()[v.host]["ingress_packets"], 10)
        self.assertGreaterEqual(agent.interfaces()[v.host]["egress_packets"], 10)
        self.assertGreaterEqual(m.get("netprobe_interface_rx_packets_total", interface=v.host), 10)
        flows = agent.flows(protocol="icmp", src_ip=v.peer_ip, dst_ip=v.host_ip)
        self.assertEqual(flows["total"], 1, flows)
        self.assertEqual(flows["flows"][0]["packets"], 10)

        # a second interface that is created down and comes up later
        v2 = self.make_veth(ns=remote, host_ns=ns)
        wait_for(lambda: set(agent.interfaces()) == {v.host, v2.host}, 15, f"{v2.host} to appear")
        run(["ip", "link", "set", v2.host, "down"], netns=ns)
        run(["ip", "link", "del", v.host], netns=ns)
        wait_for(lambda: v.host not in agent.interfaces(), 15, f"{v.host} to disappear from /api/v1/interfaces")
        wait_for(lambda: not agent.metrics().find("netprobe_interface_rx_packets_total", interface=v.host), 10,
                 f"{v.host} to disappear from /metrics")
        run(["ip", "link", "del", v2.host], netns=ns)
        wait_for(lambda: agent.interfaces() == {}, 15, "no interfaces left")
        self.assertTrue(agent.proc.running())
        self.assertIn("gone, forgetting it", agent.output())

        # a new interface after the others went away is still picked up
        v3 = self.make_veth(ns=remote, host_ns=ns)
        wait_for(lambda: v3.host in agent.interfaces(), 15, f"{v3.host} to appear")
        self.assertOneSet(v3.host, "tcx", netns=ns)
        progs, _ = agent.bpf_ids()
        self.assertEqual(agent.stop(signal.SIGTERM), 0, agent.output())
        self.assertNothingAttached(v3.host, netns=ns, agent_prog_ids=progs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
