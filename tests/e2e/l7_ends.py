"""The shared set-up of the L7 tests that count both ends of a real client and server:
a node namespace with a veth (clients in its peer namespace), an agent with --l7=on on it,
and the agent's request counts per (method, status class) for one service, client and
server side."""

import collections

from netprobe_e2e import E2ETestCase, log, wait_for


class L7BothEndsCase(E2ETestCase):
    settle_timeout = 20  # seconds for both ends to reach the expected count

    def setUp(self) -> None:
        self.node = self.make_netns()
        self.veth = self.make_veth(host_ns=self.node)
        self.ip = self.veth.peer_ip

    def agent(self):
        agent = self.start_agent(f"--interface-filter={self.veth.host}", "--collect-interval=500ms",
                                 "--socket-netns=own", "--l7=on", netns=self.node)
        agent.wait_collections(2)
        return agent

    def counts(self, agent, protocol: str, side: str, port: int) -> collections.Counter:
        out = collections.Counter()
        for s in agent.metrics().find("netprobe_l7_requests_total", protocol=protocol, side=side,
                                      service=f"{self.ip}:{port}"):
            out[(s.labels["method"], s.labels["status_class"])] += int(s.value)
        return out

    def settle(self, agent, protocol: str, port: int, want_total: int) -> dict:
        """Waits until both ends have at least want_total requests, then for two more
        collections (nothing more may arrive), and returns {side: Counter}."""
        def both():
            c = {side: self.counts(agent, protocol, side, port) for side in ("client", "server")}
            return c if all(sum(v.values()) >= want_total for v in c.values()) else None
        try:
            wait_for(both, self.settle_timeout, f"{want_total} {protocol} requests on both ends")
        except AssertionError:
            log(f"so far: client {self.counts(agent, protocol, 'client', port)}, "
                f"server {self.counts(agent, protocol, 'server', port)}; parse events: "
                f"{[(s.labels, s.value) for s in agent.metrics().find('netprobe_l7_parse_events_total')]}")
            raise
        agent.wait_collections(2)
        return {side: self.counts(agent, protocol, side, port) for side in ("client", "server")}
