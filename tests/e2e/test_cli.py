"""Command line: every bad input is one line on stderr starting "netprobe-agent: "
that names the problem, a non-zero exit and nothing attached; --help; and the
NETWORK_INTERFACE environment variable.

Every invocation carries --interface-filter (or NETWORK_INTERFACE) naming a test
veth, so an agent that wrongly starts can never attach to the host's interfaces.
"""

import os
import signal
import socket
import subprocess
import unittest

from netprobe_e2e import AGENT, E2ETestCase, foreign_netprobe_prog_ids, free_port, log, netprobe_attachments, \
    netprobe_prog_ids, require_tools, wait_for


class CliTest(E2ETestCase):
    def setUp(self):
        self.veth = self.make_veth()
        self.env = {k: v for k, v in os.environ.items() if k != "NETWORK_INTERFACE"}

    def run_agent(self, *args: str, env=None, wrapper=(), timeout: float = 20, netns=None):
        """Runs the agent to completion: (exit status, stdout, stderr)."""
        d = self.tmpdir()
        out_path, err_path = os.path.join(d, "stdout"), os.path.join(d, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = self.spawn(list(wrapper) + [AGENT] + list(args), env=env or self.env, stdout=out, stderr=err,
                           name="netprobe-agent", netns=netns)
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.stop(signal.SIGTERM)
                self.fail(f"agent {args} did not exit within {timeout}s")
        with open(out_path) as f1, open(err_path) as f2:
            return rc, f1.read(), f2.read()

    def assertRejected(self, *args: str, names: tuple, env=None, wrapper=(), netns=None, timeout: float = 20):
        """One stderr line naming every string of names, non-zero exit, nothing left attached."""
        before = netprobe_prog_ids()
        rc, out, err = self.run_agent(*args, env=env, wrapper=wrapper, netns=netns, timeout=timeout)
        log(f"{' '.join(list(wrapper) + list(args))} -> exit {rc}, stderr {err!r}")
        self.assertNotEqual(rc, 0, f"accepted {args}")
        self.assertGreater(rc, 0, f"died of a signal: {rc}")
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, f"expected exactly one stderr line, got {lines!r} (stdout {out!r})")
        self.assertTrue(err.endswith("\n"), repr(err))
        self.assertTrue(lines[0].startswith("netprobe-agent: "), lines[0])
        for n in names:
            self.assertIn(n, lines[0])
        # nothing attached to the veth, and every program the agent loaded is gone again
        self.assertNothingAttached(self.veth.host)
        wait_for(lambda: not (netprobe_prog_ids() - before - foreign_netprobe_prog_ids()), 10,
                 "the rejected agent's BPF programs to be freed")
        return lines[0]

    def base(self) -> list:
        return [f"--interface-filter={self.veth.host}", f"--metrics-port={free_port()}",
                "--metrics-address=127.0.0.1"]

    # -- flags ---------------------------------------------------------------------

    def test_unknown_flag(self):
        self.assertRejected(*self.base(), "--bogus-flag=1", names=("--bogus-flag",))

    def test_bad_duration(self):
        self.assertRejected(*self.base(), "--collect-interval=5x", names=("--collect-interval", "5x"))

    def test_interval_too_short(self):
        self.assertRejected(*self.base(), "--collect-interval=50ms", names=("--collect-interval", "100ms"))

    def test_bad_flow_timeout(self):
        self.assertRejected(*self.base(), "--flow-timeout=soon", names=("--flow-timeout",))

    def test_bad_modes(self):
        self.assertRejected(*self.base(), "--xdp-mode=turbo", names=("--xdp-mode", "turbo"))
        self.assertRejected(*self.base(), "--tc-mode=ebpf", names=("--tc-mode", "ebpf"))
        self.assertRejected(*self.base(), "--log-level=loud", names=("--log-level", "loud"))
        self.assertRejected(*self.base(), "--netfilter-hooks=input,bogus", names=("--netfilter-hooks", "bogus"))

    def test_bad_numbers(self):
        self.assertRejected(f"--interface-filter={self.veth.host}", "--metrics-port=70000",
                            names=("--metrics-port", "70000"))
        self.assertRejected(*self.base(), "--top-flows=5000", names=("--top-flows", "5000"))
        self.assertRejected(*self.base(), "--max-flows=0", names=("--max-flows",))
        self.assertRejected(*self.base(), "--flow-table-size=0", names=("--flow-table-size",))

    def test_negative_counts(self):
        """Negative counts are rejected by name (they once wrapped to huge unsigned values)."""
        self.assertRejected(*self.base(), "--top-flows=-1", names=("--top-flows", "-1"), timeout=5)
        self.assertRejected(*self.base(), "--max-flows=-1", names=("--max-flows", "-1"), timeout=5)

    def test_unknown_interface(self):
        self.assertRejected(*self.base()[1:], "--interface-filter=nope0", names=("nope0",))
        # a bad name among good ones attaches to none of them
        self.assertRejected(*self.base()[1:], f"--interface-filter={self.veth.host},nope0", names=("nope0",))

    def test_empty_interface_filter(self):
        # Inside a namespace of its own: should an empty filter ever be taken as "no filter",
        # the agent could only see that namespace's interfaces, never the host's.
        ns = self.make_netns()
        self.assertRejected("--metrics-address=127.0.0.1", "--interface-filter=", names=("--interface-filter",),
                            netns=ns)
        self.assertRejected("--metrics-address=127.0.0.1", "--interface-filter= , ", names=("--interface-filter",),
                            netns=ns)

    def test_port_in_use(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            self.assertRejected(f"--interface-filter={self.veth.host}", f"--metrics-port={port}",
                                "--metrics-address=127.0.0.1", names=(str(port), "in use"))

    def test_missing_capability_setpriv(self):
        require_tools("setpriv")
        line = self.assertRejected(*self.base(), names=("CAP_BPF",),
                                   wrapper=("setpriv", "--bounding-set=-bpf,-sys_admin", "--"))
        self.assertIn("capabilit", line)

    def test_missing_capability_capsh(self):
        require_tools("capsh")
        self.assertRejected(*self.base(), names=("CAP_BPF",), wrapper=("capsh", "--drop=cap_bpf,cap_sys_admin",
                                                                         "--", "-c", 'exec "$0" "$@"'))

    # -- good input ------------------------------------------------------------------

    def test_help(self):
        rc, out, err = self.run_agent("--help")
        self.assertEqual(rc, 0)
        self.assertEqual(err, "")
        for flag in ("--metrics-port", "--metrics-address", "--collect-interval", "--interface-filter", "--xdp-mode",
                     "--tc-mode", "--flow-table-size", "--max-flows", "--flow-timeout", "--top-flows",
                     "--log-level"):
            self.assertIn(flag, out)
        rc, out, err = self.run_agent("--version")
        self.assertEqual((rc, err), (0, ""))
        self.assertTrue(out.startswith("netprobe-agent "), out)

    def test_network_interface_env(self):
        other = self.make_veth()
        env = dict(self.env, NETWORK_INTERFACE=self.veth.host)
        agent = self.start_agent(env=env)  # no --interface-filter
        self.assertEqual(set(agent.interfaces()), {self.veth.host})
        self.assertTrue(netprobe_attachments(self.veth.host)["tcx_ingress"])
        self.assertEqual({k: v for k, v in netprobe_attachments(other.host).items() if v}, {})
        self.assertEqual(agent.stop(), 0)
        self.assertNothingAttached(self.veth.host)

        # a list, with spaces
        agent = self.start_agent(env=dict(self.env, NETWORK_INTERFACE=f"{self.veth.host}, {other.host}"))
        self.assertEqual(set(agent.interfaces()), {self.veth.host, other.host})
        self.assertEqual(agent.stop(), 0)

        # the flag wins over the environment
        agent = self.start_agent(f"--interface-filter={other.host}", env=dict(self.env, NETWORK_INTERFACE="nope0"))
        self.assertEqual(set(agent.interfaces()), {other.host})
        self.assertEqual(agent.stop(), 0)
        self.assertNothingAttached(other.host)

        # an unknown interface from the environment is rejected like one from the flag
        self.assertRejected(f"--metrics-port={free_port()}", "--metrics-address=127.0.0.1",
                            env=dict(self.env, NETWORK_INTERFACE="nope0"), names=("nope0",))


if __name__ == "__main__":
    unittest.main(verbosity=2)
