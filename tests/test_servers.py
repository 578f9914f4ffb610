"""The test servers themselves: a server whose port another process took first starts
again on new ports (a port picked free can be taken before the server binds it)."""

from __future__ import annotations

import socket

import pytest

from hangar.testing.servers import FakeGCSServer, SeaweedFSServer


@pytest.mark.parametrize("kind", [FakeGCSServer, SeaweedFSServer])
def test_a_server_whose_port_is_taken_starts_on_new_ports(kind: type) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: the port is taken
        taken = holder.getsockname()[1]
        server = kind()
        server.port = taken
        with server:
            assert server.port != taken
            assert server.create_bucket()  # it answers on its new port
            assert "address already in use" not in server.log_tail().lower()  # this start's log
