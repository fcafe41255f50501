"""The managed Apache Kafka broker: fetched from Maven Central, run in KRaft mode on 127.0.0.1.

One :class:`KafkaManager` owns one *data dir*, which holds everything about its
broker: the generated ``server.properties``, the KRaft log directories, the
broker's own log file and a ``broker.json`` state file (pid, ports, version).
``dataplump kafka up/status/down/logs`` and the test suite's session broker are
all this class, so the broker users run is the broker the tests exercise.

The jars come from a small POM shipped in this package (``kafka-pom.xml``),
copied with Maven into a jar cache shared by every data dir::

    $DATAPLUMP_CACHE_DIR (default ~/.cache/dataplump)/kafka/<version>/libs/*.jar

Example::

    manager = KafkaManager(Path(".dataplump/kafka"), port=9092)
    manager.install()          # once per machine; no-op when the jars are cached
    info = manager.up()        # formats storage on first start, waits for metadata
    print(info.bootstrap)      # 127.0.0.1:9092
    manager.down()
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dataplump.errors import KafkaServiceError

MIN_JAVA = 17
DEFAULT_PORT = 9092
DEFAULT_HEAP = "1g"
_POM = "kafka-pom.xml"
_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <RollingFile name="file" fileName="{log}" filePattern="{log}.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <SizeBasedTriggeringPolicy size="50 MB"/>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.controller" level="info"/>
    <Root level="info"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def cache_dir() -> Path:
    """Where fetched artifacts live: ``$DATAPLUMP_CACHE_DIR`` or ``~/.cache/dataplump``."""
    if env := os.environ.get("DATAPLUMP_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dataplump"


def kafka_version() -> str:
    """The Kafka version pinned in the shipped POM."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.fromstring(resources.files(__package__).joinpath(_POM).read_text())  # noqa: S314 (our own file)
    version = root.findtext("m:properties/m:kafka.version", namespaces=ns)
    if not version:
        raise KafkaServiceError(f"{_POM} has no kafka.version property: the package is damaged")
    return version


def java_major_version(java: str) -> int:
    """Major version of the ``java`` executable, from ``java -version``."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise KafkaServiceError(f"cannot run {java}: {exc.strerror}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise KafkaServiceError(f"cannot tell the Java version from `{java} -version`")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    """The ``java`` to run Kafka with: ``$JAVA_HOME/bin/java``, else ``java`` on PATH; 17+."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaServiceError(
            f"Java not found: Kafka needs Java {MIN_JAVA} or newer; "
            "install it (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    major = java_major_version(java)
    if major < MIN_JAVA:
        raise KafkaServiceError(
            f"{java} is Java {major}, Kafka needs Java {MIN_JAVA} or newer: "
            "install a newer JDK or point JAVA_HOME at one"
        )
    return java


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def metadata_ok(
    bootstrap: str, timeout: float = 2.0, client_config: Mapping[str, str] | None = None
) -> bool:
    """True when a metadata request to ``bootstrap`` succeeds within ``timeout`` seconds.

    ``client_config`` adds librdkafka settings (security) for clusters that need them.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**(client_config or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return False


def _pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (reaping it first if it is our own exited child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().split(")", 1)[1].split()[0] != "Z"
    return True


@dataclass(frozen=True)
class BrokerStatus:
    """What ``kafka status`` reports about one data dir's broker."""

    data_dir: Path
    running: bool
    reachable: bool
    pid: int | None
    bootstrap: str | None
    version: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "data_dir": str(self.data_dir),
            "running": self.running,
            "reachable": self.reachable,
            "pid": self.pid,
            "bootstrap": self.bootstrap,
            "version": self.version,
        }


@dataclass(frozen=True)
class BrokerInfo:
    """The result of :meth:`KafkaManager.up`."""

    bootstrap: str
    pid: int
    already_running: bool
    seconds: float


@dataclass(frozen=True)
class QuorumMember:
    """This node's place in a KRaft quorum of several nodes (a local test cluster).

    Every node of one cluster shares ``voters`` and ``cluster_id``; each has its own
    ``node_id`` and a fixed ``controller_port`` (the one ``voters`` names for it).
    """

    node_id: int
    controller_port: int
    voters: str
    """``controller.quorum.voters``: ``1@127.0.0.1:PORT,2@127.0.0.1:PORT,...``."""
    cluster_id: str
    """The id every node's storage is formatted with (:func:`new_cluster_id`)."""


class KafkaManager:
    """Install, start, inspect and stop one KRaft node (broker and controller) on 127.0.0.1.

    Alone by default (node 1, its own one-voter quorum on a controller port chosen at
    each start); with ``quorum`` one node of a cluster whose nodes are started apart
    (:meth:`up` with ``wait=False``, then :meth:`wait_ready` once they all run).
    ``extra_properties`` are appended to ``server.properties`` as given (listeners
    with SASL/TLS, retention, replication of internal topics, ...); they win over the
    defaults written here. ``scram_users`` (name to password) are SCRAM credentials
    written into the metadata log when the storage is formatted, once per mechanism in
    ``scram_mechanisms``: KRaft has no other way to have them before the broker
    answers its first login. A data dir formatted earlier keeps the users it has.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = DEFAULT_PORT,
        heap: str = DEFAULT_HEAP,
        extra_properties: Mapping[str, str] | None = None,
        jar_cache: Path | None = None,
        scram_users: Mapping[str, str] | None = None,
        scram_mechanisms: Sequence[str] = ("SCRAM-SHA-512",),
        quorum: QuorumMember | None = None,
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self._scram_users = dict(scram_users or {})
        self._scram_mechanisms = tuple(scram_mechanisms)
        for name, password in self._scram_users.items():
            # kafka-storage's --add-scram syntax quotes values with `"` and has no escape.
            if not name or not password or any(c in name + password for c in '"\n\r'):
                raise KafkaServiceError(
                    f"SCRAM user {name!r}: the name and password must be non-empty, "
                    'one line and without `"`'
                )
        unknown = set(self._scram_mechanisms) - {"SCRAM-SHA-256", "SCRAM-SHA-512"}
        if unknown:
            raise KafkaServiceError(
                f"unknown SCRAM mechanism {sorted(unknown)[0]}: use SCRAM-SHA-256 or SCRAM-SHA-512"
            )
        self.quorum = quorum
        self.version = kafka_version()
        self.libs_dir = (jar_cache or cache_dir()) / "kafka" / self.version / "libs"

    # -- paths -----------------------------------------------------------------
    @property
    def log_file(self) -> Path:
        return self.data_dir / "logs" / "server.log"

    @property
    def _state_file(self) -> Path:
        return self.data_dir / "broker.json"

    @property
    def _properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log_dirs(self) -> Path:
        return self.data_dir / "data"

    # -- install ---------------------------------------------------------------
    def installed(self) -> bool:
        return (self.libs_dir / ".complete").exists()

    def install(self, *, quiet: bool = True) -> bool:
        """Copy the broker's jars from Maven Central into the cache; False if already there."""
        if self.installed():
            return False
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaServiceError(
                "Maven (mvn) not found: it fetches Kafka's jars; install it (apt-get install maven)"
            )
        staging = self.libs_dir.with_name(f"libs.partial-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pom = staging / "pom.xml"
        pom.write_text(resources.files(__package__).joinpath(_POM).read_text())
        cmd = [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies"]
        cmd += [f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        if quiet:
            cmd.append("-q")
        proc = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout or "").strip().splitlines()[-3:])
            raise KafkaServiceError(
                f"Maven could not fetch Kafka {self.version} (exit {proc.returncode}): {tail}"
            )
        pom.unlink()
        (staging / ".complete").write_text(self.version + "\n")
        shutil.rmtree(self.libs_dir, ignore_errors=True)
        staging.rename(self.libs_dir)
        return True

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{min(256, _megabytes(self.heap))}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={self.log_file.parent}",
            "-cp",
            str(self.libs_dir / "*"),
            main,
            *args,
        ]

    # -- state -----------------------------------------------------------------
    def _read_state(self) -> dict[str, object]:
        try:
            loaded = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _running_pid(self) -> int | None:
        pid = self._read_state().get("pid")
        if not isinstance(pid, int) or not _pid_alive(pid):
            return None
        try:  # a recycled pid is not our broker
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return pid
        return pid if str(self._properties_file).encode() in cmdline else None

    def _bootstrap_of_state(self) -> str | None:
        port = self._read_state().get("port")
        return f"127.0.0.1:{port}" if isinstance(port, int) else None

    # -- lifecycle -------------------------------------------------------------
    def up(self, *, timeout: float = 90.0, wait: bool = True) -> BrokerInfo:
        """Start the broker unless it runs; return once a metadata request succeeds.

        ``wait=False`` returns once the process is started: a node of a cluster cannot
        answer before a majority of its quorum runs (:meth:`wait_ready` then).
        """
        started = time.monotonic()
        pid = self._running_pid()
        if pid is not None:
            bootstrap = self._bootstrap_of_state() or f"127.0.0.1:{self.port}"
            if wait:
                self._wait_ready(bootstrap, pid, deadline=started + timeout)
            return BrokerInfo(bootstrap, pid, True, time.monotonic() - started)

        if not self.installed():
            raise KafkaServiceError(
                f"Kafka {self.version} jars are not in {self.libs_dir}: "
                "run `dataplump kafka install` (or `make setup`) first"
            )
        java = find_java()
        if not port_is_free(self.port):
            raise KafkaServiceError(
                f"port {self.port} on 127.0.0.1 is already in use by another program: "
                "pick another with --port, or stop that program"
            )
        controller_port = self.quorum.controller_port if self.quorum else free_port()
        self._write_configs(controller_port)
        self._format_storage(java)

        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        stdout = (self.log_file.parent / "stdout.log").open("ab")
        try:
            proc = subprocess.Popen(
                self._java_command(java, "kafka.Kafka", str(self._properties_file)),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # survives the CLI that started it, ignores its Ctrl-C
            )
        finally:
            stdout.close()
        state = {
            "pid": proc.pid,
            "port": self.port,
            "controller_port": controller_port,
            "version": self.version,
            "started_at": time.time(),
        }
        self._state_file.write_text(json.dumps(state, indent=2) + "\n")
        bootstrap = f"127.0.0.1:{self.port}"
        if wait:
            self._wait_ready(bootstrap, proc.pid, deadline=started + timeout)
        return BrokerInfo(bootstrap, proc.pid, False, time.monotonic() - started)

    def wait_ready(self, *, timeout: float = 90.0) -> None:
        """Return once the running broker answers a metadata request (after ``up(wait=False)``)."""
        pid = self._running_pid()
        if pid is None:
            raise KafkaServiceError(
                f"no Kafka broker of {self.data_dir} runs: {self._log_tail()} (see {self.log_file})"
            )
        bootstrap = self._bootstrap_of_state() or f"127.0.0.1:{self.port}"
        self._wait_ready(bootstrap, pid, deadline=time.monotonic() + timeout)

    def _write_configs(self, controller_port: int) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "log4j2.xml").write_text(_LOG4J2.format(log=self.log_file))
        quorum = self.quorum
        voters = quorum.voters if quorum else f"1@127.0.0.1:{controller_port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(quorum.node_id if quorum else 1),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._log_dirs),
            # One node: internal topics cannot have more replicas than that (a cluster's
            # starter raises them in extra_properties).
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            **self.extra_properties,
        }
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        self._properties_file.write_text("# written by dataplump kafka up\n" + text)

    def _format_storage(self, java: str) -> None:
        if (self._log_dirs / "meta.properties").exists():
            return
        cluster_id = self.quorum.cluster_id if self.quorum else _kafka_uuid()
        cmd = self._java_command(
            java,
            "kafka.tools.StorageTool",
            "format",
            # One token: a base64 id may begin with "-", which argparse4j would read as a flag.
            f"--cluster-id={cluster_id}",
            "--config",
            str(self._properties_file),
            "--ignore-formatted",
            *(
                f'--add-scram={mechanism}=[name="{name}",password="{password}"]'
                for name, password in self._scram_users.items()
                for mechanism in self._scram_mechanisms
            ),
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
            for password in self._scram_users.values():  # the tool may echo its arguments
                tail = tail.replace(password, "***")
            raise KafkaServiceError(f"formatting Kafka storage in {self._log_dirs} failed: {tail}")

    def _wait_ready(self, bootstrap: str, pid: int, *, deadline: float) -> None:
        while True:
            if metadata_ok(bootstrap, timeout=1.0):
                return
            if not _pid_alive(pid):
                raise KafkaServiceError(
                    f"the Kafka broker exited during start-up: {self._log_tail()} "
                    f"(see `dataplump kafka logs`, {self.log_file})"
                )
            if time.monotonic() > deadline:
                raise KafkaServiceError(
                    f"the Kafka broker (pid {pid}) did not answer a metadata request at "
                    f"{bootstrap} in time: {self._log_tail()} (see {self.log_file})"
                )
            time.sleep(0.2)

    def _log_tail(self, lines: int = 2) -> str:
        for path in (self.log_file, self.log_file.parent / "stdout.log"):
            with contextlib.suppress(OSError):
                found = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
                interesting = [ln for ln in found if " ERROR " in ln or "Exception" in ln]
                if interesting or found:
                    return " | ".join((interesting or found)[-lines:])
        return "no log output"

    def status(self) -> BrokerStatus:
        """Whether this data dir's broker runs and answers a metadata request."""
        state = self._read_state()
        pid = self._running_pid()
        bootstrap = self._bootstrap_of_state()
        reachable = pid is not None and bootstrap is not None and metadata_ok(bootstrap)
        version = state.get("version")
        return BrokerStatus(
            data_dir=self.data_dir,
            running=pid is not None,
            reachable=reachable,
            pid=pid,
            bootstrap=bootstrap if pid is not None else None,
            version=version if isinstance(version, str) else None,
        )

    def down(self, *, timeout: float = 30.0) -> bool:
        """Stop the broker: SIGTERM (controlled shutdown), SIGKILL after ``timeout``.

        Returns False when no broker of this data dir was running. Returns once
        the process is gone and its port is free.
        """
        pid = self._running_pid()
        if pid is None:
            return False
        port = self._read_state().get("port")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        if isinstance(port, int):
            port_deadline = time.monotonic() + 10
            while not port_is_free(port) and time.monotonic() < port_deadline:
                time.sleep(0.1)
        return True

    def kill(self) -> bool:
        """SIGKILL the broker at once (for fault tests); False when none was running."""
        pid = self._running_pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.05)
        return True

    def follow_log(self, *, lines: int = 50, follow: bool = False) -> Iterator[str]:
        """The last ``lines`` lines of the broker log, then new ones as they come if ``follow``."""
        if not self.log_file.exists():
            raise KafkaServiceError(
                f"no broker log at {self.log_file}: the broker was never started with this data dir"
            )
        with self.log_file.open(errors="replace") as handle:
            yield from _last_lines(handle.read(), lines)
            while follow:
                line = handle.readline()
                if line:
                    yield line.rstrip("\n")
                else:
                    time.sleep(0.25)


def _last_lines(text: str, count: int) -> list[str]:
    return text.splitlines()[-count:] if count > 0 else []


def _megabytes(heap: str) -> int:
    unit = heap[-1].lower()
    number = int(heap[:-1]) if unit in "kmg" else int(heap)
    return {"k": number // 1024, "m": number, "g": number * 1024}.get(unit, number // 2**20)


def new_cluster_id() -> str:
    """A fresh id for the nodes of one cluster (:class:`QuorumMember`)."""
    return _kafka_uuid()


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
