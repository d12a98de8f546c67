"""One boot of the Debian image under systemd-nspawn: systemd as PID 1, the root file system an
overlay on tmpfs (`--volatile=overlay`: the cached image is never written), the network
namespace the test runs in shared with it. The user data, the shims and the per-boot settings
are bound in; the shims record into `out`, which the test reads from outside.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

SHIMS = Path(__file__).resolve().parent / "shims"


class BootError(Exception):
    """The container did not reach the state a step waited for."""


class Container:
    """A booted container; `run` executes a command inside it (all its namespaces)."""

    def __init__(self, rootfs: Path, work: Path, name: str, user_data: str, files: dict[str, str]):
        self.name = name
        self.work = work
        self.out = work / "out"
        self.console = work / "console.log"
        if work.exists():
            shutil.rmtree(work)
        self.out.mkdir(parents=True)
        (work / "part-001").write_text(user_data)
        (work / "part-001").chmod(0o700)
        binds = ["--bind-ro", f"{SHIMS}:/opt/planb-boot/shims", "--bind-ro", f"{work / 'part-001'}:/var/lib/cloud/instance/scripts/part-001", "--bind", f"{self.out}:/var/lib/planb-boot"]
        for i, (dest, content) in enumerate(sorted(files.items())):
            src = work / f"file-{i}"
            src.write_text(content)
            binds += ["--bind-ro", f"{src}:{dest}"]
        # --keep-unit --register=no: no host systemd is asked for anything (CI machines need not
        # run it). --link-journal=no: the journal stays inside, read with `journal()`.
        cmd = [
            "systemd-nspawn", "--quiet", "--boot", f"--directory={rootfs}", "--volatile=overlay",
            f"--machine={name}", "--register=no", "--keep-unit", "--resolv-conf=off", "--timezone=off",
            "--link-journal=no", "--console=read-only", *binds,
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.console.open("wb"), stderr=subprocess.STDOUT)
        self.leader = self._wait_leader(deadline=time.monotonic() + 30)

    def _wait_leader(self, deadline: float) -> int:
        """The container's PID 1 (systemd) as the host sees it: nspawn's child running systemd."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BootError(f"systemd-nspawn exited with {self.proc.returncode}:\n{self.console.read_text(errors='replace')}")
            for child in _children(self.proc.pid):
                if _comm(child) == "systemd":
                    return child
            time.sleep(0.05)
        raise BootError(f"no systemd under systemd-nspawn after 30 s:\n{self.console.read_text(errors='replace')}")

    def run(self, *cmd: str, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        """`cmd` inside the container, as root."""
        done = subprocess.run(
            ["nsenter", f"--target={self.leader}", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--", *cmd],
            capture_output=True, text=True, timeout=timeout,
        )
        if check and done.returncode != 0:
            raise BootError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def wait_until(self, what: str, ready, deadline_s: float, interval: float = 0.2):
        """Polls `ready()` until it returns something truthy (returned) or `deadline_s` passes."""
        deadline = time.monotonic() + deadline_s
        while True:
            value = ready()
            if value:
                return value
            if self.proc.poll() is not None:
                raise BootError(f"the container stopped while waiting for {what}")
            if time.monotonic() > deadline:
                raise BootError(f"{what}: not within {deadline_s:.0f} s")
            time.sleep(interval)

    def signal(self) -> str | None:
        """The first line the cfn-signal shim wrote, once user data has signalled."""
        f = self.out / "cfn-signal"
        text = f.read_text() if f.exists() else ""
        return text.splitlines()[0] if text.endswith("\n") else None

    def unit(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-P", prop, unit).stdout.strip()

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", "--all", "-o", "short-monotonic", *args).stdout

    def stop(self) -> None:
        """Powers the container off (SIGTERM to nspawn), killing it if that takes over 30 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill(self.leader)
                self.proc.wait(timeout=30)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
