"""Coexistence with another product's tcx programs (a CNI's, Cilium's): a foreign program
(tests/bpf/foreign_tcx.bpf.c) attached first on the veth counts every packet and ends
the chain with TC_ACT_OK, as a CNI does for the traffic it passes. The agent, started
after it in tcx mode, must see the same packets as the foreign program (it runs first
in the chain and hands every packet on), must not take the foreign program's place, and
must leave it attached and counting when it stops."""

import os
import subprocess

from netprobe_e2e import AGENT, E2ETestCase, log, run, wait_for

BUILD = os.environ.get("NETPROBE_BUILD_DIR") or os.path.join(os.path.dirname(os.path.dirname(AGENT)), "build")
FOREIGN = os.path.join(BUILD, "tests", "bpf", "np_foreign_tcx")


class CoexistenceTest(E2ETestCase):
    def test_foreign_tcx_program_attached_first_keeps_running_and_both_count(self):
        self.assertTrue(os.access(FOREIGN, os.X_OK), f"{FOREIGN}: build first")
        node = self.make_netns()
        v = self.make_veth(host_ns=node)
        foreign = subprocess.Popen(["ip", "netns", "exec", node, FOREIGN, v.host], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def stop_foreign():
            if foreign.poll() is None:
                foreign.stdin.close()
                try:
                    foreign.wait(5)
                except subprocess.TimeoutExpired:
                    foreign.kill()
                    foreign.wait()
        self.defer("foreign tcx programs", stop_foreign)
        self.assertEqual(foreign.stdout.readline().strip(), "ready", foreign.stderr.read() if foreign.poll() else "")

        def seen() -> tuple[int, int]:
            foreign.stdin.write("count\n")
            foreign.stdin.flush()
            a, b = foreign.stdout.readline().split()
            return int(a), int(b)

        agent = self.start_agent(f"--interface-filter={v.host}", "--tc-mode=tcx", "--xdp-mode=off",
                                 "--collect-interval=500ms", "--socket-monitor=off", netns=node)

        def counters():
            i = agent.interfaces()[v.host]
            return i["ingress_packets"], i["egress_packets"]

        def settled():
            # both sides stop moving over three collections: the same window for each
            return agent.wait_stable([], key=lambda _: (counters(), seen()), settle=3)

        settled()
        a0, f0 = counters(), seen()
        p = run(["ping", "-n", "-q", "-c", "20", "-i", "0.05", "-W", "1", v.host_ip], netns=v.ns, check=False)
        self.assertIn(" 0% packet loss", p.stdout)
        settled()
        a1, f1 = counters(), seen()
        agent_in, agent_eg = a1[0] - a0[0], a1[1] - a0[1]
        foreign_in, foreign_eg = f1[0] - f0[0], f1[1] - f0[1]
        log(f"20 pings: agent ingress {agent_in} / egress {agent_eg}; foreign program {foreign_in} / {foreign_eg}")
        self.assertGreaterEqual(agent_in, 20)
        self.assertEqual((agent_in, agent_eg), (foreign_in, foreign_eg))

        # the agent goes; the foreign programs stay attached and keep counting
        agent.stop()
        b = seen()
        p = run(["ping", "-n", "-q", "-c", "5", "-i", "0.05", "-W", "1", v.host_ip], netns=v.ns, check=False)
        self.assertIn(" 0% packet loss", p.stdout)
        after = wait_for(lambda: (s := seen())[0] - b[0] >= 5 and s, 5, "the foreign program counting on")
        log(f"after the agent stopped: foreign program {after[0] - b[0]} / {after[1] - b[1]}")
        self.assertGreaterEqual(after[1] - b[1], 5)


if __name__ == "__main__":
    import unittest
    unittest.main()
