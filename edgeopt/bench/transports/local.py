"""The local machine: argv lists through `subprocess`, files copied."""

from __future__ import annotations

import os
import shutil

from edgeopt.bench.transports.base import HomePath, Transport


class LocalTransport(Transport):
    def _argv(self, argv: list[str]) -> list[str]:
        argv = [os.path.expanduser(a) if isinstance(a, HomePath) else a for a in argv]
        if self.profile.env:
            return ["env", *(f"{k}={v}" for k, v in self.profile.env.items()), *argv]
        return argv

    def push(self, local: str, remote: str) -> None:
        shutil.copyfile(local, remote)
