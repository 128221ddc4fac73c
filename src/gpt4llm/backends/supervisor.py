"""Run one engine server so that it never outlives gpt4llm.

``engines.Fleet`` starts each replica as ``python -m gpt4llm.backends.supervisor --parent PID --
COMMAND...`` in a process group of its own (``start_new_session``), its output going to the
replica's log. The supervisor:

- asks the kernel for SIGTERM when gpt4llm dies (``PR_SET_PDEATHSIG``; Linux), and starts nothing
  if gpt4llm died before it asked (its parent is no longer ``--parent``);
- on SIGTERM or SIGINT stops its whole group: the server and every worker it forked get SIGTERM,
  then SIGKILL after ``GPT4LLM_ENGINE_GRACE`` seconds (default 10);
- never loses such a signal: one that arrives while the server is being started is remembered
  and acted on once the server exists. (The handler used to return when there was no server yet,
  so the parent-death SIGTERM of a gpt4llm killed with -9 in that window left the server running
  with no one left to stop it.)
- when the server ends by itself (a crash, the OOM killer) writes one line saying how to the log,
  since a server killed with -9 writes nothing itself, stops what is left of its group, and exits
  with the server's status (128 + N for a signal N, as a shell does).

Its own imports are the standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
USAGE = "usage: python -m gpt4llm.backends.supervisor [--parent PID] [--] COMMAND [ARG...]"


class _Stop(Exception):
    """Raised by the signal handler to leave ``Popen.wait`` (only once the server exists)."""


def ask_for_parent_death_signal() -> None:
    """SIGTERM to this process when its parent thread exits; a no-op where prctl does not exist."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError):  # not Linux: gpt4llm still stops the group at exit
        return
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def group_members() -> list[int]:
    """Every other live process of this process group (the server and the workers it forked)."""
    me, group, out = os.getpid(), os.getpgid(0), []
    try:
        names = os.listdir("/proc")
    except OSError:  # no /proc (not Linux): the group's SIGTERM is all we can do
        return out
    for name in names:
        if name.isdigit() and int(name) != me:
            try:
                if os.getpgid(int(name)) == group:
                    out.append(int(name))
            except OSError:  # gone meanwhile
                pass
    return out


def describe(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "?"
    return f"was killed by signal {-code} ({name})"


class Supervisor:
    def __init__(self, command: list[str], grace: float):
        self.command, self.grace = command, grace
        self.child: subprocess.Popen | None = None
        self.requested = False  # SIGTERM or SIGINT came
        self.armed = False  # the server exists: the handler may interrupt the wait

    def on_signal(self, signum, frame) -> None:
        self.requested = True
        if self.armed:
            self.armed = False  # a second signal must not interrupt the stopping
            raise _Stop
        # Before the server exists, raising could leave Popen half done (a server started with
        # no handle on it); run() checks the flag as soon as Popen returns.

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        if self.requested:
            return 128 + signal.SIGTERM
        try:
            self.child = subprocess.Popen(self.command)
        except OSError as e:  # not installed, not executable: one line in the log, as a shell says it
            print(f"gpt4llm supervisor: cannot start {self.command[0]}: {e.strerror or e}", flush=True)
            return 127
        try:
            self.armed = True
            if not self.requested:
                code = self.child.wait()
                self.armed = False
                print(f"gpt4llm supervisor: the server (pid {self.child.pid}) {describe(code)}", flush=True)
        except _Stop:
            pass
        self.stop()
        code = self.child.returncode
        return code if code >= 0 else 128 - code

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL to whatever is left after the grace period."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM reaches us too
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        # poll() first: it reaps the server, which then no longer counts as a member.
        while time.monotonic() < deadline and (self.child.poll() is None or group_members()):
            time.sleep(0.05)
        for pid in group_members():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.child.wait()


def parse(argv: list[str]) -> tuple[int | None, list[str]]:
    parent = None
    if argv[:1] == ["--parent"] and len(argv) > 1:
        parent, argv = int(argv[1]), argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise SystemExit(USAGE)
    return parent, argv


def main(argv: list[str] | None = None) -> int:
    ask_for_parent_death_signal()
    parent, command = parse(sys.argv[1:] if argv is None else argv)
    if os.getppid() != parent if parent is not None else os.getppid() == 1:
        return 1  # gpt4llm died before the kernel was asked to tell us: start nothing
    if os.getpgid(0) != os.getpid():
        os.setpgid(0, 0)  # a group of our own, whoever started us: stop() signals the whole group
    return Supervisor(command, float(os.environ.get("GPT4LLM_ENGINE_GRACE", "10"))).run()


if __name__ == "__main__":
    sys.exit(main())
