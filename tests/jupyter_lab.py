"""JupyterLab for the browser tests: a server on loopback with a token, kept to a folder.

:func:`jupyter_lab` starts ``python -m jupyterlab`` serving a folder, waits until it answers,
and stops it however the test ends. Everything the server and its kernels would keep in the
user's home (lab settings, workspaces, runtime files, the IPython folder, Jupyter's config
folder) goes to a state folder of the test's own instead: a developer's own
``~/.jupyter`` (a password, another root, an ``nbgrader_config.py`` naming another course)
cannot change what the test sees, and the test leaves nothing behind. The environment's own
``share/jupyter`` and ``etc/jupyter`` (the lab extensions, the enabled server extensions,
nbgrader's formgrader among them) are still found: Jupyter looks there through
``sys.prefix`` whatever these variables say.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabServer", "free_port", "jupyter_lab"]


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab.

    Attributes:
        base: its address, ``http://127.0.0.1:<port>``; token: the token it asks for.
        log: the file its output goes to (quote its end when something fails).
    """

    base: str
    token: str
    log: Path

    def log_tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of the server's log."""
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    """A TCP port free on loopback now (the server is told not to try another)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(
    root: Path,
    state: Path,
    *,
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = 120,
) -> Iterator[LabServer]:
    """JupyterLab serving ``root`` on loopback with a random token, started in ``root``.

    Args:
        root (Path): the folder served, and the server's working folder (where nbgrader's
            server extensions look for ``nbgrader_config.py``).
        state (Path): a folder for the server's settings, workspaces, runtime files,
            config folder, IPython folder and log (``jupyterlab.log``); created.
        env (Mapping[str, str] | None): variables added to the server's environment (its
            kernels inherit them).
        start_timeout_s (float): how long to wait for the server to answer.

    Yields:
        The running server; it is stopped (terminated, killed after 30 s) on exit.

    Raises:
        RuntimeError: the server exited or did not answer in time; the message ends with
            its log.
    """
    port, token = free_port(), secrets.token_hex(16)
    settings = state / "lab-settings"
    # No news or update checks: their notification would sit over the page, and there is
    # no network to fetch them from.
    notification = settings / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    for name in ("config", "runtime", "ipython", "workspaces"):
        (state / name).mkdir(exist_ok=True)
    server_env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"),
        JUPYTER_CONFIG_DIR=str(state / "config"),
        JUPYTER_RUNTIME_DIR=str(state / "runtime"),
        IPYTHONDIR=str(state / "ipython"),
        **(env or {}),
    )
    log = state / "jupyterlab.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",  # the port asked for, or fail: we poll that one
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ]
            + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
            cwd=root,
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    lab = LabServer(f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{lab.base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    state_ = "exited" if server.poll() is not None else "did not answer"
                    raise RuntimeError(
                        f"JupyterLab {state_} (port {port}); its log ends:\n{lab.log_tail()}"
                    ) from None
                time.sleep(0.2)  # polling a server that is starting; nothing to wait on
        yield lab
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
