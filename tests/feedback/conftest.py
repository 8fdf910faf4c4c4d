"""A real server for the labeling app: `rlhfkit label serve` in a subprocess on a free port."""
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


class Server:
    def __init__(self, db: str, admin: str = "adm", extra: tuple = ()):
        self.db, self.admin, self.extra, self.proc = db, admin, [str(x) for x in extra], None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "Server":
        self.proc = subprocess.Popen([sys.executable, "-m", "rlhfkit.cli", "label", "serve", "--db", self.db,
                                      "--port", str(self.port), "--admin_token", self.admin, *self.extra], env=ENV,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        for _ in range(200):
            try:
                httpx.get(self.url + "/label", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise AssertionError(self.proc.stderr.read().decode()[-2000:])

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=10)


@pytest.fixture()
def server_for():
    started = []

    def make(db: str, *extra) -> Server:
        server = Server(db, extra=extra).start()
        started.append(server)
        return server
    yield make
    for s in started:
        s.stop(signal.SIGKILL)
