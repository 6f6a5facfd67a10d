"""A RabbitMQ instance of NetProbe's tests (Debian's rabbitmq-server), all of it under one
temporary directory: its own node name, Mnesia and log directories, configuration file,
enabled-plugins file and Erlang cookie (HOME); its own epmd on a port of its own, bound
to loopback (started by the caller, in the foreground, so that it is stopped by its PID:
the broker is told not to start one), and its distribution port on loopback too. The
AMQP listener is ADDRESS:PORT. Used by tests/e2e/test_l7_mq.py and
tests/data/l7/record.py."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the package's own (the /usr/sbin wrapper su's to rabbitmq)


@dataclass
class RabbitMq:
    epmd: list[str]     # argv of its epmd (foreground)
    server: list[str]   # argv of the broker (foreground)
    env: dict[str, str]
    log_dir: str


def prepare(d: str, address: str, port: int, epmd_port: int, dist_port: int, node: str) -> RabbitMq:
    for sub in ("mnesia", "log"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "rabbitmq.conf"), "w") as f:
        f.write(f"listeners.tcp.default = {address}:{port}\n"
                "loopback_users = none\n"              # guest/guest from the test's address
                "log.console = false\n"
                "log.file.level = info\n")
    with open(os.path.join(d, "enabled_plugins"), "w") as f:
        f.write("[].\n")
    open(os.path.join(d, "rabbitmq-env.conf"), "w").close()  # not /etc/rabbitmq's
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": d,  # the Erlang cookie
        "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": f"{node}@localhost",
        "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
        "RABBITMQ_CONFIG_FILE": os.path.join(d, "rabbitmq.conf"),
        "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
        "RABBITMQ_PID_FILE": os.path.join(d, "rabbitmq.pid"),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
    }
    return RabbitMq(epmd=["epmd", "-port", str(epmd_port), "-address", "127.0.0.1"],
                    server=[RABBITMQ_SERVER], env=env, log_dir=os.path.join(d, "log"))


def accepting(address: str, port: int) -> bool:
    """Whether the AMQP listener accepts a connection (it opens last, when the broker has booted)."""
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False
