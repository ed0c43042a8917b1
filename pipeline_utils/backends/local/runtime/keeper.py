"""The daemon's end of the keeper channel: custom-arg values handed to the supervisor and back after a restart.

The supervisor (:mod:`.supervisor`) holds them in memory only; messages are JSON datagrams on a private
``SOCK_SEQPACKET`` socket pair, so they never appear on a disk, a command line or in an environment.
"""

from __future__ import annotations

import json
import socket
import sys

from pipeline_utils.backends.local.runtime.supervisor import KEEPER_MESSAGE_LIMIT


class Keeper:
    """Tells the supervisor what it must keep for the next daemon, and reads what the previous one left."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel

    def kept_secrets(self) -> dict[str, dict[str, str]]:
        """The custom-arg values of every deployment, as the supervisor kept them (read once, at start)."""
        message = self.channel.recv(KEEPER_MESSAGE_LIMIT)
        return dict(json.loads(message or b"{}").get("secrets") or {})

    def remember(self, name: str, values: dict[str, str]) -> None:
        """Keep ``values`` as the custom args of deployment ``name``."""
        self._send({"set": name, "values": values})

    def forget(self, name: str) -> None:
        """Drop what is kept for deployment ``name``."""
        self._send({"forget": name})

    def _send(self, change: dict) -> None:
        try:
            self.channel.send(json.dumps(change).encode())
        except OSError as exc:
            print(f"mlops runtime: the supervisor did not take a keeper message: {exc}", file=sys.stderr, flush=True)
