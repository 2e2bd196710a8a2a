"""Throwaway Redis servers for tests: a standalone server and a 3-master Redis Cluster.

Every server runs the machine's `redis-server` on a free loopback port picked by the kernel, so the
shared server on 6379 (which other sessions' CI also uses) is never touched. Waits are bounded: each
one polls with a short interval until a deadline and then raises with the tail of the server's log.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import redis

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"
SHARED_REDIS_PORT = 6379
POLL_INTERVAL = 0.05
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0
# A port the kernel handed out can be taken again before redis-server binds it: start over a few times.
START_ATTEMPTS = 3

AppendFsync = Literal["always", "everysec", "no"]


class RedisServerError(RuntimeError):
    """A throwaway server did not start, answer or stop in time."""


# Servers still running when the interpreter exits (a test run interrupted between fixture setup and
# teardown) are killed here, so no redis-server outlives the pytest process that started it.
_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.kill()


def free_port(avoid: Iterable[int] = ()) -> int:
    """A loopback TCP port that was free a moment ago (never 6379, nor one of `avoid`)."""
    avoided = {SHARED_REDIS_PORT, *avoid}
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in avoided:
            return port
    raise RedisServerError("no free loopback port")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every POLL_INTERVAL until it is true; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise RedisServerError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_INTERVAL)


def _launcher() -> list[str]:
    """A prefix that makes the server die with the thread that started it (setpriv, util-linux).

    The atexit hook misses a pytest killed by SIGTERM (a CI timeout) or SIGKILL; the parent-death
    signal does not. Start servers from the main thread, as the fixtures do: the signal follows the
    starting thread, not the process.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise RedisServerError(f"{binary} is not on PATH (Debian package redis-server)")
    return path


class RedisServer:
    """One redis-server process with its own data dir; stop/kill/restart keep the dir and the port."""

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        appendonly: bool = False,
        appendfsync: AppendFsync = "everysec",
        cluster: bool = False,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        self._own_dir = base_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-")) if base_dir is None else base_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.cluster = cluster
        self.extra_config = dict(extra_config or {})
        self.port = 0
        self.cluster_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses --------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "redis.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_running() else None

    def client(self, **kwargs: object) -> redis.Redis:
        """A synchronous client with short timeouts (the caller closes it)."""
        options: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 2.0}
        options.update(kwargs)
        return redis.Redis(host=self.host, port=self.port, **options)  # type: ignore[arg-type]

    # -- life cycle -------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the server (first time: on a new free port; later: on the same port) and wait for PING."""
        if self.is_running():
            return self
        first_start = self.port == 0
        attempts = START_ATTEMPTS if first_start else 1
        for attempt in range(1, attempts + 1):
            if first_start:
                self.port = free_port()
                if self.cluster:
                    # Explicit bus port: the default port+10000 may be taken or above 65535.
                    self.cluster_port = free_port(avoid=[self.port])
            self._spawn()
            try:
                self._wait_for_ping(timeout)
                return self
            except RedisServerError:
                lost_port_race = "Address already in use" in self.log_tail()
                self.kill()
                if not (lost_port_race and attempt < attempts):
                    raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM (Redis flushes the AOF and exits); SIGKILL if it has not exited by the deadline."""
        process = self._process
        if process is None or process.poll() is not None:
            self._forget()
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
        self._forget()

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed that was not already on disk."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)
        self._forget()

    def restart(self, *, crash: bool = False, timeout: float = START_TIMEOUT) -> Self:
        """Stop (or kill -9 when `crash`) and start again on the same port with the same data dir."""
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        """Kill the process and remove the data dir when this object made it."""
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    # -- internals --------------------------------------------------------------------------------

    def _config(self) -> str:
        settings: dict[str, str] = {
            "bind": self.host,
            "port": str(self.port),
            "dir": f'"{self.dir}"',
            "logfile": f'"{self.log_path}"',
            "daemonize": "no",
            # No RDB snapshots: what survives a crash is exactly what the AOF settings promise.
            "save": '""',
            "appendonly": "yes" if self.appendonly else "no",
            "appendfsync": self.appendfsync,
        }
        if self.cluster:
            settings |= {
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": "5000",
                "cluster-port": str(self.cluster_port),
            }
        settings |= self.extra_config
        return "".join(f"{name} {value}\n" for name, value in settings.items())

    def _spawn(self) -> None:
        config_path = self.dir / "redis.conf"
        config_path.write_text(self._config())
        # A new session: a Ctrl-C meant for pytest reaches pytest only, whose teardown then stops us.
        self._process = subprocess.Popen(
            [*_launcher(), _require(REDIS_SERVER), str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _live.add(self)

    def _forget(self) -> None:
        self._process = None
        _live.discard(self)

    def _answers_ping(self) -> bool:
        if not self.is_running():
            raise RedisServerError(f"redis-server on port {self.port} exited:\n{self.log_tail()}")
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:  # refused while starting, or LOADING while it replays the AOF
            return False
        finally:
            client.close()

    def _wait_for_ping(self, timeout: float) -> None:
        try:
            wait_until(self._answers_ping, timeout, f"redis-server on port {self.port} to answer PING")
        except RedisServerError as exc:
            raise RedisServerError(f"{exc}\n{self.log_tail()}") from None


class RedisClusterNodes:
    """A Redis Cluster of `masters` masters and no replicas, made by `redis-cli --cluster create`."""

    def __init__(self, base_dir: Path | None = None, masters: int = 3) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self._own_dir = base_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-cluster-")) if base_dir is None else base_dir
        self.nodes = [RedisServer(self.dir / f"node{i}", cluster=True) for i in range(masters)]

    @property
    def url(self) -> str:
        """The URL of one node; a cluster client discovers the others from it."""
        return self.nodes[0].url

    @property
    def addresses(self) -> list[str]:
        return [f"{node.host}:{node.port}" for node in self.nodes]

    def start(self, timeout: float = CLUSTER_TIMEOUT) -> Self:
        try:
            for node in self.nodes:
                node.start()
            self._create(timeout)
            wait_until(self._all_nodes_ok, timeout, "cluster_state:ok on every node")
        except BaseException:
            self.cleanup()  # never leave half a cluster running
            raise
        return self

    def cluster_info(self, node: RedisServer) -> dict[str, str]:
        client = node.client(socket_timeout=2.0)
        try:
            text = client.execute_command("CLUSTER INFO")
        finally:
            client.close()
        if isinstance(text, bytes):
            text = text.decode()
        if isinstance(text, dict):  # a redis-py version that parses the reply itself
            return {str(k): str(v) for k, v in text.items()}
        return dict(line.split(":", 1) for line in str(text).splitlines() if ":" in line)

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def _create(self, timeout: float) -> None:
        command = [
            _require(REDIS_CLI),
            "--cluster",
            "create",
            *self.addresses,
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RedisServerError(f"redis-cli --cluster create took over {timeout:.0f}s") from exc
        if result.returncode != 0:
            raise RedisServerError(f"redis-cli --cluster create failed:\n{result.stdout}\n{result.stderr}")

    def _all_nodes_ok(self) -> bool:
        # Every node must see every slot served and every peer: gossip reaches the nodes one by one,
        # and a client that asks a node which has not caught up yet gets CLUSTERDOWN.
        for node in self.nodes:
            try:
                info = self.cluster_info(node)
            except redis.RedisError:
                return False
            if (
                info.get("cluster_state") != "ok"
                or info.get("cluster_slots_ok") != "16384"
                or info.get("cluster_known_nodes") != str(len(self.nodes))
            ):
                return False
        return True
