"""A local high-availability cluster on loopback, from existing engines only: PostgreSQL 15 primary
and standby by synchronous streaming replication with automatic failover (pg_auto_failover: a
monitor and two nodes), N vault and N key-manager replicas (``evb … serve``, HTTPS, each server's
replicas sharing its key files), and haproxy in front passing TLS through (TCP mode).

    scripts/cluster up [--dir D] [--port P] [--vaults N] [--keymgrs N]
    scripts/cluster status [--dir D]
    scripts/cluster down [--dir D]

Every process runs in its own session and is recorded in D/pids; ``down`` stops exactly those.
The failover trials (tests/cluster) drive the same :class:`Cluster`: kill the primary's node
(keeper and postgres, as a machine dies), a replica, or haproxy, and bring them back.

``--auth trust`` holds on loopback only: a real cluster uses passwords or certificates.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO = Path(__file__).resolve().parents[1]  # the servers run from this checkout
PG_USER = "postgres"  # pg_autoctl refuses root
DATABASES = ("vault", "keymgr")


class ClusterError(Exception):
    """A step of the recipe failed; the message says which, with the last lines of its logs."""


TAIL_LINES = 15
DEFAULT_PORT = 25400
"""Below the kernel's ephemeral range (32768-60999 by default), from which every outgoing
connection takes its local port: a port in it can be held by some client's connection when a
server of the cluster binds it, or when a killed one restarts on it."""


@dataclass(frozen=True)
class Layout:
    """Where everything lives: ports from ``port`` up, files under ``root``."""

    root: Path
    port: int = DEFAULT_PORT
    vaults: int = 2
    keymgrs: int = 2

    @property
    def monitor_port(self) -> int:
        return self.port

    @property
    def node_ports(self) -> tuple[int, int]:
        return self.port + 1, self.port + 2

    @property
    def vault_port(self) -> int:
        """haproxy's vault front end."""
        return self.port + 10

    @property
    def keymgr_port(self) -> int:
        return self.port + 11

    def replica_ports(self, server: str) -> list[int]:
        first, count = (self.port + 20, self.vaults) if server == "vault" else (self.port + 40, self.keymgrs)
        return [first + i for i in range(count)]

    def db_url(self, dbname: str, synchronous: bool = True) -> str:
        """libpq's multi-host form: the servers connect to whichever node is read-write now."""
        ports = ",".join(map(str, self.node_ports))
        options = "" if synchronous else " options='-c synchronous_commit=local'"
        return (f"host=127.0.0.1,127.0.0.1 port={ports} dbname={dbname} user={PG_USER} sslmode=require "
                f"target_session_attrs=read-write connect_timeout=3{options}")

    @property
    def vault_url(self) -> str:
        return f"https://127.0.0.1:{self.vault_port}"

    @property
    def keymgr_url(self) -> str:
        return f"https://127.0.0.1:{self.keymgr_port}"

    def ports(self) -> list[int]:
        return [self.monitor_port, *self.node_ports, self.vault_port, self.keymgr_port,
                *self.replica_ports("vault"), *self.replica_ports("keymgr")]

    @property
    def ca(self) -> Path:
        return self.root / "tls" / "ca.pem"

    def save(self) -> None:
        (self.root / "cluster.json").write_text(json.dumps({**asdict(self), "root": str(self.root)}))

    @classmethod
    def load(cls, root: Path) -> Layout:
        try:
            saved = json.loads((root / "cluster.json").read_text())
        except OSError as exc:
            raise ClusterError(f"no cluster in {root} ({exc.strerror})") from exc
        return cls(Path(saved["root"]), saved["port"], saved["vaults"], saved["keymgrs"])


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def ephemeral_ports() -> range:
    """The kernel's range for outgoing connections' local ports."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def port_free(port: int) -> bool:
    """Whether a server can bind ``port`` on loopback now: nothing listens there and no
    connection holds it as its local port (SO_REUSEADDR, which PostgreSQL, uvicorn and haproxy
    set, still binds over a closed connection's TIME_WAIT)."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = layout.root
        self.pids, self.logs = self.root / "pids", self.root / "logs"
        self.pg = self.root / "pg"  # owned by postgres
        self._ssl = ssl.create_default_context(cafile=str(layout.ca)) if layout.ca.exists() else None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # what this object started, to reap

    # --- processes --------------------------------------------------------------------------

    def _pg_env(self) -> dict[str, str]:
        xdg = self.pg / "xdg"  # pg_autoctl's state per cluster, not in postgres's shared home
        return {**os.environ, "PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}", "HOME": str(self.pg),
                "XDG_CONFIG_HOME": str(xdg / "config"), "XDG_DATA_HOME": str(xdg / "data"),
                "XDG_RUNTIME_DIR": str(xdg / "run")}

    def _server_env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}

    def _as_postgres(self) -> dict[str, object]:
        if os.getuid() != 0:
            return {}
        return {"user": PG_USER, "group": pwd.getpwnam(PG_USER).pw_gid, "extra_groups": []}

    def spawn(self, name: str, args: Sequence[str], postgres: bool = False) -> int:
        """Start ``args`` in a session of its own (so a kill takes all its children) and record it."""
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    cwd=self.pg if postgres else self.root,
                                    env=self._pg_env() if postgres else self._server_env(),
                                    **self._as_postgres() if postgres else {})  # type: ignore[call-overload]
        (self.pids / f"{name}.pid").write_text(str(proc.pid))
        self._procs[name] = proc
        return int(proc.pid)

    def pid(self, name: str) -> int | None:
        try:
            return int((self.pids / f"{name}.pid").read_text())
        except (OSError, ValueError):
            return None

    def alive(self, name: str) -> bool:
        """Any process of the session ``name`` started still there (reaping it if it is ours)."""
        pid = self.pid(name)
        if pid is None:
            return False
        if name in self._procs and self._procs[name].poll() is not None:
            del self._procs[name]
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole session ``name`` started (a node: its keeper, postgres, backends)."""
        pid = self.pid(name)
        if pid is not None:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            self._wait(lambda: not self.alive(name), 10, f"{name} to die")

    def _wait(self, done: Callable[[], bool], seconds: float, what: str, *watch: str) -> None:
        """Until ``done``; the processes named in ``watch`` must live meanwhile: one that exits
        fails the wait at once instead of at the deadline. Either failure quotes their logs."""
        deadline = time.monotonic() + seconds
        while not done():
            for name in watch:
                if not self.alive(name):
                    raise ClusterError(f"{name} exited while waiting for {what}{self.tails(*watch)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out after {seconds:.0f} s waiting for {what}{self.tails(*watch)}")
            time.sleep(0.1)

    def tails(self, *names: str) -> str:
        """The last lines of these processes' logs, for an error message: CI shows only that."""
        out = []
        for name in names:
            log = self.logs / f"{name}.log"
            try:
                lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:]
            except OSError as exc:
                lines = [f"(unreadable: {exc.strerror})"]
            out.append(f"\n--- last lines of {log}:\n" + "\n".join(lines))
        return "".join(out)

    @contextmanager
    def step(self, what: str, *logs: str) -> Iterator[None]:
        """One step of ``up``: timed into logs/steps.log; any failure is a ClusterError naming
        the step, with the tails of ``logs``."""
        started = time.monotonic()
        try:
            yield
        except ClusterError as exc:
            raise ClusterError(f"step '{what}' failed after {time.monotonic() - started:.0f} s: {exc}") from exc
        except Exception as exc:
            raise ClusterError(f"step '{what}' failed after {time.monotonic() - started:.0f} s: "
                               f"{type(exc).__name__}: {exc}{self.tails(*logs)}") from exc
        with open(self.logs / "steps.log", "a") as record:
            record.write(f"{what}: {time.monotonic() - started:.1f} s\n")

    def pg_autoctl(self, *args: str) -> str:
        out = subprocess.run(["pg_autoctl", *args], capture_output=True, text=True, cwd=self.pg,
                             env=self._pg_env(), **self._as_postgres())  # type: ignore[call-overload]
        if out.returncode != 0:
            raise ClusterError(f"pg_autoctl {' '.join(args)}: {out.stderr.strip().splitlines()[-1:]}")
        return str(out.stdout)

    # --- PostgreSQL -------------------------------------------------------------------------

    def _sql(self, port: int, sql: str, dbname: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        # a statement timeout: a commit waiting for a standby that is not there would wait forever
        with psycopg.connect(f"host=127.0.0.1 port={port} dbname={dbname} user={PG_USER} sslmode=require "
                             "connect_timeout=2 options='-c statement_timeout=30s'", autocommit=True) as conn:
            cur = conn.execute(sql.encode())
            return cur.fetchall() if cur.description else []

    def states(self) -> list[tuple[str, int, str, str]]:
        """(name, port, reported state, assigned state) of each node, from the monitor."""
        rows = self._sql(self.layout.monitor_port, "SELECT nodename, nodeport, reportedstate, goalstate "
                         "FROM pgautofailover.node ORDER BY nodeid", "pg_auto_failover")
        return [(str(n), int(str(p)), str(r), str(g)) for n, p, r, g in rows]

    def health_checks_pass(self) -> bool:
        """The monitor's own health check reaches every node: until then it may still decide to
        fail over from a primary that its keeper has already restarted."""
        rows = self._sql(self.layout.monitor_port, "SELECT health FROM pgautofailover.node", "pg_auto_failover")
        return all(int(str(health)) == 1 for (health,) in rows)

    def primary(self) -> int:
        """The node number (1 or 2) the monitor has as primary."""
        for _, port, reported, goal in self.states():
            if goal in ("primary", "wait_primary", "single") and reported == goal:
                return self.layout.node_ports.index(port) + 1
        raise ClusterError("no primary now")

    def healthy(self) -> bool:
        """A primary and a standby in synchronous replication, both as the monitor wants them."""
        try:
            states = {(r, g) for _, _, r, g in self.states()}
        except Exception:  # the monitor restarting: not healthy yet
            return False
        return states == {("primary", "primary"), ("secondary", "secondary")}

    def wait_healthy(self, seconds: float = 180) -> None:
        """Until the monitor shows a primary and a synchronous standby, and the primary takes a
        write, three times over two seconds: the monitor's view lags a kill by a moment."""
        deadline = time.monotonic() + seconds
        try:
            for _ in range(3):
                self._wait(lambda: self.healthy() and self._try(self._writable) and self._try(self.health_checks_pass),
                           deadline - time.monotonic(), "primary + synchronous standby", "monitor", "node1", "node2")
                time.sleep(1)
        except ClusterError as exc:
            raise ClusterError(f"{exc}\n--- the monitor's view: {self._states_now()}") from exc

    def _states_now(self) -> str:
        try:
            return ", ".join(f"{name} {reported}/{goal}" for name, _, reported, goal in self.states())
        except Exception as exc:
            return f"unreachable, {type(exc).__name__}"

    def _writable(self) -> bool:
        """The primary streams to a synchronous standby (else a commit would wait for one) and
        commits a write."""
        port = self.layout.node_ports[self.primary() - 1]
        synchronous = self._sql(port, "SELECT count(*) FROM pg_stat_replication "
                                "WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')")
        if int(str(synchronous[0][0])) == 0:
            return False
        self._sql(port, "SELECT txid_current()")
        return True

    def start_node(self, n: int, create: bool = False) -> None:
        pgdata = str(self.pg / f"n{n}")
        if create:
            monitor = self._monitor_uri()
            args = ["create", "postgres", "--pgdata", pgdata, "--pgport", str(self.layout.node_ports[n - 1]),
                    "--hostname", "127.0.0.1", "--auth", "trust", "--ssl-self-signed", "--name", f"node{n}",
                    "--monitor", monitor, "--run"]
        else:
            args = ["run", "--pgdata", pgdata]
        self.spawn(f"node{n}", ["pg_autoctl", *args], postgres=True)

    def _monitor_uri(self) -> str:
        """The monitor writes its configuration file a moment after it serves SQL: ask again."""
        deadline = time.monotonic() + 30
        while True:
            try:
                return self.pg_autoctl("show", "uri", "--pgdata", str(self.pg / "monitor"),
                                       "--formation", "monitor").strip()
            except ClusterError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill_postgres(self, n: int) -> None:
        """SIGKILL node ``n``'s postmaster and every backend at once (its keeper, pg_autoctl,
        stays: it tells the monitor, which promotes the standby, and brings this node back as
        the new standby)."""
        pid_file = self.pg / f"n{n}" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == postmaster]
        for pid in (postmaster, *children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _up_postgres(self) -> None:
        """The timeouts are ceilings for a loaded 2-core machine (a start takes 30-90 s there)."""
        with self.step("the pg_auto_failover monitor", "monitor"):
            self.spawn("monitor", ["pg_autoctl", "create", "monitor", "--pgdata", str(self.pg / "monitor"),
                                   "--pgport", str(self.layout.monitor_port), "--hostname", "127.0.0.1",
                                   "--auth", "trust", "--ssl-self-signed", "--run"], postgres=True)
            self._wait(lambda: self._try(lambda: self.states() is not None), 120, "the monitor", "monitor")
        with self.step("node1, the first primary", "node1", "monitor"):
            self.start_node(1, create=True)
            self._wait(lambda: self._try(lambda: self.primary() == 1), 180, "node1 to be primary", "node1", "monitor")
            # pg_basebackup (node2's) asks for a spread checkpoint, paced over minutes when there
            # is much to write: write it now at full speed, so that one finds next to nothing
            self._sql(self.layout.node_ports[0], "CHECKPOINT")
        with self.step("node2, the synchronous standby", "node2", "node1", "monitor"):
            self.start_node(2, create=True)
            self.wait_healthy(300)
        with self.step("the databases", "node1"):
            for db in DATABASES:
                self._sql(self.layout.node_ports[0], f"CREATE DATABASE {db}")

    @staticmethod
    def _try(check: object) -> bool:
        try:
            return bool(check())  # type: ignore[operator]
        except Exception:
            return False

    # --- servers and haproxy ----------------------------------------------------------------

    def _server_args(self, server: str, port: int, synchronous: bool) -> list[str]:
        tls = self.root / "tls"
        common = ["--db", self.layout.db_url(server, synchronous), "--port", str(port),
                  "--tls-cert", str(tls / "server.pem"), "--tls-key", str(tls / "server-key.pem")]
        keys = self.root / "keys"
        if server == "vault":
            statement = (keys / "keymgr-statement.hex").read_text().strip()
            return [sys.executable, "-m", "host.cli", "vault", "serve", *common, "--key", str(keys / "vault.pem"),
                    "--keymgr-key", statement]
        return [sys.executable, "-m", "host.cli", "keymgr", "serve", *common, "--key", str(keys / "keymgr.pem"),
                "--master-key", str(keys / "keymgr-master.key"), "--vault", self.layout.vault_url,
                "--ca", str(self.layout.ca)]

    def healthy_server(self, port: int, path: str) -> bool:
        import httpx

        try:
            return httpx.get(f"https://127.0.0.1:{port}{path}", timeout=2, verify=self._ssl or True).status_code == 200
        except httpx.HTTPError:
            return False

    def start_replica(self, server: str, i: int, synchronous: bool = True) -> None:
        port = self.layout.replica_ports(server)[i]
        self.spawn(f"{server}{i}", self._server_args(server, port, synchronous))
        self._wait(lambda: self.healthy_server(port, f"/v1/{server}"), 180, f"{server} replica {i} on {port}",
                   f"{server}{i}")

    def restart_replicas(self, server: str, synchronous: bool = True, count: int | None = None) -> None:
        """Replace ``server``'s replicas (the first ``count`` of them run; the rest stay down)."""
        ports = self.layout.replica_ports(server)
        for i in range(len(ports)):
            self.kill(f"{server}{i}")
        for i in range(len(ports) if count is None else count):
            self.start_replica(server, i, synchronous)

    def _haproxy_config(self) -> str:
        lines = ["global", "    maxconn 4096", "defaults", "    mode tcp", "    timeout connect 2s",
                 "    timeout client 60s", "    timeout server 60s", "    retries 3", "    option redispatch"]
        for server, front in (("vault", self.layout.vault_port), ("keymgr", self.layout.keymgr_port)):
            lines += [f"frontend {server}", f"    bind 127.0.0.1:{front}", f"    default_backend {server}s",
                      f"backend {server}s", "    balance roundrobin"]
            lines += [f"    server {server}{i} 127.0.0.1:{port} check inter 500 fall 1 rise 1"
                      for i, port in enumerate(self.layout.replica_ports(server))]
        return "\n".join(lines) + "\n"

    def start_haproxy(self) -> None:
        config = self.root / "haproxy.cfg"
        config.write_text(self._haproxy_config())
        self.spawn("haproxy", ["haproxy", "-db", "-f", str(config)])
        self._wait(lambda: _listening(self.layout.vault_port) and _listening(self.layout.keymgr_port), 60,
                   "haproxy", "haproxy")

    def _keys(self) -> None:
        from keyfile import load_or_create_key, public_bytes
        from servers.keymgr.server import statement_key_path
        from servers.tls import init_folder

        init_folder(self.root / "tls")
        keys = self.root / "keys"
        keys.mkdir(mode=0o700, exist_ok=True)
        statement = load_or_create_key(statement_key_path(keys / "keymgr.pem"))  # the vault pins it
        (keys / "keymgr-statement.hex").write_text(public_bytes(statement.public_key()).hex())
        if not os.environ.get("EVB_ISSUER_KEY"):  # the servers trust this cluster's own card issuer
            from host.issuer import Issuer

            issuer = Issuer.load_or_create(keys / "issuer-key.pem")
            os.environ["EVB_ISSUER_KEY"] = issuer.public_key.hex()
            os.environ["EVB_ISSUER_KEY_FILE"] = str(keys / "issuer-key.pem")

    def up(self) -> None:
        if self.root.exists() and any(self.root.iterdir()):
            raise ClusterError(f"{self.root} is not empty: 'scripts/cluster down --dir {self.root}' first")
        ephemeral = ephemeral_ports()
        if any(port in ephemeral for port in self.layout.ports()):
            raise ClusterError(f"ports {self.layout.port}-{max(self.layout.ports())} are in the kernel's range for "
                               f"outgoing connections ({ephemeral.start}-{ephemeral.stop - 1}), which may take "
                               f"one of them at any time: choose a --port below {ephemeral.start - 60}")
        taken = [port for port in self.layout.ports() if not port_free(port)]
        if taken:  # another cluster, a process left from one, a connection: nothing would start there
            raise ClusterError(f"port(s) {', '.join(map(str, taken))} already in use: choose another --port")
        for folder in (self.root, self.pids, self.logs, self.pg):
            folder.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if os.getuid() == 0:
            shutil.chown(self.pg, PG_USER, PG_USER)
        self.layout.save()
        self._keys()
        self._ssl = ssl.create_default_context(cafile=str(self.layout.ca))
        self._up_postgres()
        for server in ("vault", "keymgr"):  # the first replica makes the schema and key files alone
            for i in range(len(self.layout.replica_ports(server))):
                with self.step(f"{server} replica {i}", f"{server}{i}"):
                    self.start_replica(server, i)
            if server == "vault":
                with self.step("haproxy", "haproxy"):
                    self.start_haproxy()  # the key managers reach the vault through it

    def down(self, keep_logs: bool = False) -> Path | None:
        """Stop every process of the cluster and remove its folder; ``keep_logs`` (after a failed
        start) moves the logs beside it first, and answers where."""
        names = [p.stem for p in self.pids.glob("*.pid")] if self.pids.exists() else []
        for name in sorted(names, key=lambda n: n in ("monitor",)):  # the monitor last
            self.kill(name, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while any(self.alive(n) for n in names) and time.monotonic() < deadline:
            time.sleep(0.2)
        for name in names:
            self.kill(name)
        kept = None
        if keep_logs and self.logs.exists():
            kept = self.root.with_name(f"{self.root.name}-logs-{time.strftime('%Y%m%dT%H%M%S')}")
            shutil.move(self.logs, kept)
        shutil.rmtree(self.root, ignore_errors=True)
        return kept

    def status(self) -> str:
        lines = [f"cluster in {self.root}"]
        try:
            for name, port, reported, goal in self.states():
                lines.append(f"  postgres {name} :{port}  {reported} (assigned {goal})")
        except Exception as exc:
            lines.append(f"  monitor unreachable: {exc}")
        for server in ("vault", "keymgr"):
            for i, port in enumerate(self.layout.replica_ports(server)):
                up = "up" if self.healthy_server(port, f"/v1/{server}") else "DOWN"
                lines.append(f"  {server} replica {i} :{port}  {up}")
        front = "up" if self.alive("haproxy") else "DOWN"
        lines.append(f"  haproxy {front}: EVB_VAULT={self.layout.vault_url} EVB_KEYMGR={self.layout.keymgr_url} "
                     f"EVB_CA={self.layout.ca}")
        return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("EVB_CLUSTER_DIR", "/tmp/evb-cluster")))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the first of the ports used (up to +60)")
    parser.add_argument("--vaults", type=int, default=2)
    parser.add_argument("--keymgrs", type=int, default=2)
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    try:
        if args.command == "up":
            cluster = Cluster(Layout(root, args.port, args.vaults, args.keymgrs))
            try:
                cluster.up()
            except BaseException:
                kept = cluster.down(keep_logs=True)
                if kept:
                    print(f"scripts/cluster up: stopped; the logs are kept in {kept}", file=sys.stderr)
                raise
            print(cluster.status())
        elif args.command == "status":
            print(Cluster(Layout.load(root)).status())
        else:
            Cluster(Layout.load(root)).down()
            print(f"cluster in {root} stopped and removed")
    except ClusterError as exc:
        print(f"scripts/cluster {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
