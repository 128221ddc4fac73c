"""The engine supervisor (``python -m gpt4llm.backends.supervisor``) and the fleet's start, on real
processes and a real HTTP server on loopback (issue 22, point 8): a stop signal at any moment, even
while the server is being started, leaves no server behind; a server that dies is reported in its
log; readiness polling does not go through an http_proxy for 127.0.0.1; gpt4llm keeps no log file
open."""

import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from gpt4llm.backends.engines import Fleet

SUPERVISOR = [sys.executable, "-m", "gpt4llm.backends.supervisor"]


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line carries ``marker``."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmd and state != "Z":
            out.append(int(pid))
    return out


def sleeper(marker: str) -> list[str]:
    """A 'server' that would run for a minute unless stopped; the marker names it in /proc."""
    return [sys.executable, "-c", "import sys, time; time.sleep(60)", marker]


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0])
def test_sigterm_at_any_moment_leaves_no_server(delay, tmp_path):
    """SIGTERM to the supervisor, as PR_SET_PDEATHSIG sends it when gpt4llm dies, from right after
    its start (before it even handles signals) to when the server runs: the supervisor ends and
    no server is left (the sleeper would otherwise live for 60 s)."""
    marker = f"gpt4llm-sup-{os.getpid()}-{delay}"
    with open(tmp_path / "log", "ab") as log:
        sup = subprocess.Popen([*SUPERVISOR, "--parent", str(os.getpid()), "--", *sleeper(marker)], stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(delay)
    sup.send_signal(signal.SIGTERM)
    sup.wait(timeout=30)
    deadline = time.time() + 10
    while processes_with(marker) and time.time() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


def test_a_stop_signal_while_the_server_is_being_started_still_stops_it(tmp_path):
    """The window between installing the handler and having the server's handle, made certain:
    SIGTERM arrives during Popen (the server process exists, run() has no handle on it yet). The
    old handler returned when it had no handle, so the server ran on its 60 s and the supervisor
    with it; now the supervisor stops it and ends at once."""
    marker = f"gpt4llm-sup-{os.getpid()}-window"
    program = textwrap.dedent(f"""
        import os, signal, subprocess, sys
        from gpt4llm.backends import supervisor
        real = subprocess.Popen
        def popen_then_sigterm(*args, **kwargs):
            child = real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGTERM)  # handled before Popen's caller gets the handle
            return child
        subprocess.Popen = popen_then_sigterm
        sys.exit(supervisor.main(["--", *{sleeper(marker)!r}]))
    """)
    p = subprocess.Popen([sys.executable, "-c", program], start_new_session=True, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out, _ = p.communicate(timeout=30)  # before: still waiting for the 60 s sleeper
    assert p.returncode == 128 + signal.SIGTERM, out  # the server was stopped by SIGTERM (shell convention)
    assert processes_with(marker) == []


def test_a_server_that_dies_by_itself_is_reported_in_the_log():
    """kill -9 leaves no word in a server's own log; the supervisor writes how it ended, and exits
    with the status a shell gives a process killed by signal 9: 128 + 9."""
    p = subprocess.run([*SUPERVISOR, "--", "sh", "-c", "echo serving; kill -9 $$"], capture_output=True, text=True,
                       timeout=30, start_new_session=True)
    assert p.returncode == 137
    assert p.stdout.splitlines()[0] == "serving" and "was killed by signal 9 (SIGKILL)" in p.stdout.splitlines()[-1]


def test_a_supervisor_whose_parent_is_already_gone_starts_nothing(tmp_path):
    """If gpt4llm died before the supervisor asked for its death signal, nothing may start: the
    parent the supervisor was given is not its parent any more."""
    flag = tmp_path / "started"
    p = subprocess.run([*SUPERVISOR, "--parent", "999999999", "--", "touch", str(flag)], timeout=30,
                       start_new_session=True)
    assert p.returncode == 1 and not flag.exists()


@pytest.fixture
def static_engine(tmp_path):
    """A real HTTP server standing in for an engine: Python's http.server over a directory where
    /v1/models is a file, started by the fleet as a ``command`` engine."""
    www = tmp_path / "www" / "v1"
    www.mkdir(parents=True)
    (www / "models").write_text('{"object": "list", "data": [{"id": "stub"}]}')
    fleet = Fleet("command", f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1 --directory {www.parent}",
                  model="stub", local_model="local:stub", served_name="stub", replicas=1, tensor_parallel=1, gpus=None,
                  log_dir=tmp_path / "engines", timeout=20)
    yield fleet
    fleet.stop(grace=5)


def test_readiness_does_not_go_through_an_http_proxy(static_engine, monkeypatch):
    """With http_proxy pointing at a proxy that is down, the server on 127.0.0.1 is still seen
    ready (before: every poll went to the proxy and the start failed after the timeout)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, dead)
    urls = static_engine.start()
    assert len(urls) == 1 and urls[0].startswith("http://127.0.0.1:")


def test_gpt4llm_closes_the_log_files_it_opens(static_engine):
    """The server writes its log through its own descriptor; gpt4llm closes its copy once the
    server is started. Before, the file object was dropped unclosed: Python reports that as a
    ResourceWarning when it collects it, and the descriptor stayed open until then."""
    log = (static_engine.log_dir / "stub-0.log").resolve()  # <log dir>/<model>-<replica>.log, as the README says
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        static_engine.start()
        gc.collect()
    assert log.exists()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert [m for m in unclosed if log.name in m] == []
    mine = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            mine.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the descriptor listdir itself used
            pass
    assert str(log) not in mine
