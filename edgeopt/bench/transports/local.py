"""The local machine: argv lists through `subprocess`, files copied."""

from __future__ import annotations

import os
import shutil

from edgeopt.bench.transports.base import HomePath, Transport


class LocalTransport(Transport):
    remote = False  # no shell in between: the argv runs as is, in a process group of its own

    def _argv(self, argv: list[str]) -> list[str]:
        return [os.path.expanduser(a) if isinstance(a, HomePath) else a for a in argv]

    def push(self, local: str, remote: str) -> None:
        shutil.copyfile(local, remote)
