"""What every testbed offers its tests, whatever its hosts are (containers or namespaces):
the three hosts by name, their addresses, and closing their connections.

A testbed class mixes this in and provides ``_hosts`` (the connected hosts by name) and
``wait_ready()`` (connects them all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NetbedError
from .host import Host, Router

SERVICES = ("client", "router", "server")


class ThreeHosts:
    """client, router and server, connected on first use."""

    _hosts: dict[str, Host]

    if TYPE_CHECKING:
        def wait_ready(self) -> None: ...

    def host(self, name: str) -> Host:
        if name not in SERVICES:
            raise NetbedError(f"no host {name!r}: the hosts are {', '.join(SERVICES)}")
        if name not in self._hosts:
            self.wait_ready()
        return self._hosts[name]

    @property
    def client(self) -> Host:
        return self.host("client")

    @property
    def server(self) -> Host:
        return self.host("server")

    @property
    def router(self) -> Router:
        router = self.host("router")
        assert isinstance(router, Router)
        return router

    @property
    def hosts(self) -> dict[str, Host]:
        return {name: self.host(name) for name in SERVICES}

    def close_connections(self) -> None:
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
