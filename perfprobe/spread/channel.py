"""Load processes on this machine: fresh interpreters, each answering calls over a socket pair.

Calls are numbered, so an answer left in the pipe by a call the coordinator stopped waiting
for (Ctrl-C) is never taken for a later call's. A load process ignores SIGINT (the coordinator
decides what Ctrl-C stops), ends cleanly on SIGTERM, and ends when its pipe closes (the
coordinator died): on every way out it releases its shared memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from perfprobe.errors import LoadFailed, LoadProcessLost, PerfprobeError
from perfprobe.spread.member import LoadProcess, MemberSpec

SLICE_S = 0.1  # how often a wait for an answer checks that the process is still alive


def _portable(exc: BaseException, index: int) -> BaseException:
    """An exception the coordinator can re-raise: ours as they are, any other as a LoadFailed naming it."""
    if isinstance(exc, PerfprobeError):
        return type(exc)(str(exc))
    return LoadFailed(f"load process {index}: {type(exc).__name__}: {exc}")


def _wait_readable(conn: Connection, greenlets: bool) -> None:
    """Wait for the next call without stalling greenlet workers (they run while the hub waits)."""
    if greenlets:
        from gevent.socket import wait_read

        wait_read(conn.fileno())
    else:
        conn.poll(None)


def _end_on_sigterm(*_: object) -> None:
    raise SystemExit(143)


def serve(conn: Connection, spec: MemberSpec) -> None:
    """A load process's main: build the load, then answer numbered calls until told to close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _end_on_sigterm)
    if spec.greenlets:
        from perfprobe.greenlets import patch_for_greenlets

        patch_for_greenlets()
    member: LoadProcess | None = None
    try:
        try:
            member = LoadProcess(spec)
            conn.send((0, "ok", member.hello()))
        except BaseException as exc:  # noqa: BLE001 — reported to the coordinator, which says it once
            conn.send((0, "error", _portable(exc, spec.index)))
            return
        while True:
            _wait_readable(conn, spec.greenlets)
            try:
                number, method, args = conn.recv()
            except (EOFError, OSError):
                return  # the coordinator is gone
            if method == "close":
                conn.send((number, "ok", member.close()))
                member = None
                return
            try:
                reply: tuple[int, str, Any] = (number, "ok", member.call(method, args))
            except Exception as exc:
                reply = (number, "error", _portable(exc, spec.index))
            conn.send(reply)
    finally:
        if member is not None:
            member.close()
        with contextlib.suppress(OSError):
            conn.close()


class LocalMember:
    """The coordinator's end of one local load process.

    The process is a fresh interpreter (``python -m perfprobe.spread.channel FD``) in a session
    of its own: it re-imports no caller's ``__main__`` (as ``multiprocessing``'s spawn would), and
    Ctrl-C at the terminal reaches only the coordinator, which stops it in order.
    """

    def __init__(self, spec: MemberSpec, start_timeout_s: float = 120.0) -> None:
        self.index = spec.index
        self.region_token = spec.region_token
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "perfprobe.spread.channel", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self._number = 0
        self._pending = 0  # the number of the call whose answer is awaited
        self.lost: str | None = None
        self.start_timeout_s = start_timeout_s
        # sent from a thread: a spec with large data items fills the socket until the process reads it,
        # and every process of the group should be starting meanwhile, not one after the other
        self._spec_sender = threading.Thread(target=self._send_spec, args=(spec,), daemon=True, name="perfprobe-spec")
        self._spec_sender.start()

    def _send_spec(self, spec: MemberSpec) -> None:
        with contextlib.suppress(OSError):  # the process died: ``started`` says so
            self.conn.send(spec)

    def started(self) -> Any:
        """The process's hello, once it has built its load (or the error that stopped it)."""
        return self._answer(0, self.start_timeout_s)

    def submit(self, method: str, *args: Any) -> None:
        self._spec_sender.join()  # one writer at a time on the connection
        self._number += 1
        self._pending = self._number
        try:
            self.conn.send((self._number, method, args))
        except OSError:
            raise self._lost_now() from None

    def result(self, timeout_s: float) -> Any:
        return self._answer(self._pending, timeout_s)

    def _answer(self, number: int, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.conn.poll(SLICE_S):
                try:
                    got, status, value = self.conn.recv()
                except (EOFError, OSError):
                    raise self._lost_now() from None
                if got != number:
                    continue  # the answer to a call given up on
                if status == "error":
                    raise value
                return value
            if self.process.poll() is not None:
                raise self._lost_now()
            if time.monotonic() >= deadline:
                self.lost = f"load process {self.index} (pid {self.process.pid}) did not answer in {timeout_s:g} s"
                raise LoadProcessLost(self.lost)

    def _lost_now(self) -> LoadProcessLost:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1.0)
        code = self.process.returncode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self.lost = f"load process {self.index} (pid {self.process.pid}) died ({how})"
        return LoadProcessLost(self.lost)

    def close(self, timeout_s: float) -> list[str]:
        """Ask the process to release everything and end; end it by force if it does not."""
        problems: list[str] = []
        if self.lost is None and self.process.poll() is None:
            try:
                self.submit("close")
                problems = list(self.result(timeout_s))
            except LoadProcessLost as exc:
                if self.process.returncode == 0:  # it had ended by itself, cleanly: it could not start, and said why
                    self.lost = None
                else:
                    problems.append(str(exc))
            except PerfprobeError as exc:
                problems.append(str(exc))
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout_s)
        if self.process.poll() is None:  # a stopped process (SIGSTOP) takes SIGTERM only once it runs again
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGCONT)
        for end in (self.process.terminate, self.process.kill):  # SIGTERM first: it still releases its regions
            if self.process.poll() is not None:
                break
            end()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5.0)
        with contextlib.suppress(OSError):
            self.conn.close()
        return problems


def main() -> None:
    """``python -m perfprobe.spread.channel FD``: a load process, its spec arriving first on FD."""
    conn = Connection(int(sys.argv[1]))
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return
    serve(conn, spec)


if __name__ == "__main__":
    main()
