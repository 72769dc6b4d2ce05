"""Hostile peers and broken surroundings for imaphook's fault-injection tests
(Python 3 standard library only; used by the test_faults*.py modules).

- HostileImap: a scripted fake IMAP server, plain TCP on 127.0.0.1, for what
  Dovecot cannot be made to do. It plays a small, well-behaved server
  (greeting, CAPABILITY, LOGIN/AUTHENTICATE PLAIN, STATUS, SELECT, FETCH,
  NOOP, LOGOUT) until the point of attack (the greeting, or the first
  command after the log-in), where it runs one of ATTACKS: a literal
  length near 2^64, 100,000 nested parentheses, a 1 GiB line (streamed,
  never built in memory), NUL bytes, a stop in the middle of a literal, a
  byte a second, a garbage greeting, a BYE in the middle, a flood of
  untagged responses. Every connection is recorded (Session: bytes sent,
  how it ended), so that a test sees that the client hung up early and
  came back.
- CutGate: harness.ImapGate that, on release, lets through only the first
  bytes of the held answer and drops the rest: the client sees a FETCH
  answer stop in the middle (with the server stopped meanwhile).
- DropProxy: harness.TcpProxy that can cut every connection it relays (a
  network blip that makes the client connect again).
- Tmpfs: a tiny tmpfs mounted for the test (a state_dir that fills up),
  unmounted in clean-up.
- vm_status(pid) (VmRSS/VmHWM from /proc) and run_measured() (a program's
  Result and peak RSS, through the harness's IMAPHOOK_WRAP hook).
- known_bug(name): the decorator of a test that shows a reported bug.
"""

import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path

from . import harness


# ------------------------------------------------------------ known bugs

def known_bug(name):
    """Decorates a test that shows a reported bug (name): an expected
    failure (an unexpected success fails the run: time to remove the
    decorator), skipped under IMAPHOOK_WRAP, where it would only wait for
    its time-outs again."""
    def wrap(fn):
        fn = unittest.expectedFailure(fn)
        return unittest.skipIf(bool(harness.WRAP), "known bug %s: not run under %s"
                               % (name, (harness.WRAP or ["a wrapper"])[0]))(fn)
    return wrap


# ------------------------------------------------------------ memory

def vm_status(pid):
    """{"VmRSS": KiB, "VmHWM": KiB, ...} of a live process, from
    /proc/PID/status; {} when it has gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid, encoding="ascii", errors="replace") as f:
            for line in f:
                m = re.match(r"^(Vm\w+):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return out


# Runs argv[2:] and writes its peak RSS (KiB) to fd argv[1]. A small
# process of its own: ru_maxrss of a child vforked straight from the test
# process would include the test process's own peak (Linux carries the old
# address space's high-water mark over an exec).
_RSS_WRAPPER = """
import os, resource, signal, subprocess, sys
fd = int(sys.argv[1])
rc = subprocess.call(sys.argv[2:], pass_fds=())
os.write(fd, b"%d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
os.close(fd)
if rc < 0:
    signal.signal(-rc, signal.SIG_DFL)
    os.kill(os.getpid(), -rc)
sys.exit(rc)
"""


def run_measured(argv, timeout=60, env=None):
    """Runs argv like harness.run_program (IMAPHOOK_WRAP, sanitizer and
    wrapper checks) and returns (Result, its peak RSS in KiB)."""
    argv = [str(a) for a in argv]
    wrapped, log = harness.wrap_argv(argv)
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    try:
        p = subprocess.Popen([sys.executable, "-c", _RSS_WRAPPER, str(wfd)] + wrapped,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=harness.project_env(env),
                             pass_fds=(wfd,), start_new_session=True)
    finally:
        os.close(wfd)
    try:
        out, err = p.communicate(timeout=harness.scaled(timeout))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        os.close(rfd)
        partial = harness.Result(argv, None, out, err.decode("utf-8", errors="replace"),
                                 time.monotonic() - t0)
        raise AssertionError("still running after %s s, killed:\n%s"
                             % (timeout, partial.describe()))
    with os.fdopen(rfd, "rb") as f:
        rss = int(f.read() or b"0")
    result = harness.Result(argv, p.returncode, out, err.decode("utf-8", errors="replace"),
                            time.monotonic() - t0)
    harness.check_sanitizers(result.command, result.rc, result.stderr)
    harness.check_wrapper(result.command, result.rc, log)
    return result, rss


# --------------------------------------------------------- hostile IMAP

CRLF = b"\r\n"
GiB = 1 << 30


class PeerGone(Exception):
    """The client closed the connection (or the server is stopping)."""


class Session:
    """One client connection of a HostileImap: what the script sends and
    reads, and what happened (for the test's assertions)."""

    def __init__(self, server, sock, number):
        self.server = server
        self.sock = sock
        self.number = number
        self.started = time.monotonic()
        self.ended = None
        self.end = None                 # "peer closed", "script done", "stopped", "error: ..."
        self.bytes_sent = 0
        self.commands = []              # command lines read (bytes, without CRLF)
        self.attacked = False
        self._buf = b""

    @property
    def duration(self):
        return (self.ended or time.monotonic()) - self.started

    def __repr__(self):
        return "<Session %d: %d bytes sent, %s after %.1f s, commands %r>" % (
            self.number, self.bytes_sent, self.end or "open", self.duration,
            [c[:60] for c in self.commands])

    def send(self, data):
        if self.server.stopping.is_set():
            raise PeerGone("stopping")
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise PeerGone(str(e))
        self.bytes_sent += len(data)

    def line(self, text):
        self.send(text.encode("utf-8", errors="surrogateescape") + CRLF
                  if isinstance(text, str) else text + CRLF)

    def hold(self, seconds=None):
        """Says nothing until the client hangs up (or seconds pass, or the
        server stops)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        self.sock.settimeout(0.2)
        while not self.server.stopping.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._recv()
        raise PeerGone("stopping")

    def _recv(self):
        """What the client sent within 0.2 s (b"" if nothing)."""
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return b""
        except OSError as e:
            raise PeerGone(str(e))
        if not data:
            raise PeerGone("peer closed")
        return data

    def _line_in_buffer(self, deadline=None):
        """Reads until a whole line is buffered (True) or the monotonic
        deadline passes (False)."""
        self.sock.settimeout(0.2)
        while CRLF not in self._buf:
            if self.server.stopping.is_set():
                raise PeerGone("stopping")
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._buf += self._recv()
        return True

    def wait_done(self, seconds):
        """IDLE: waits for the client's DONE line (True) or seconds (False)."""
        if not self._line_in_buffer(time.monotonic() + seconds):
            return False
        line, self._buf = self._buf.split(CRLF, 1)
        self.commands.append(line)
        return True

    def read_command(self):
        """The next command line of the client (bytes, CRLF removed);
        synchronizing literals in it are answered with "+" and read."""
        line = b""
        while True:
            self._line_in_buffer()
            part, self._buf = self._buf.split(CRLF, 1)
            line += part
            m = re.search(rb"\{(\d+)(\+?)\}$", part)
            if m is None:
                self.commands.append(line)
                return line
            if not m.group(2):
                self.line("+ go on")
            need = int(m.group(1))
            while len(self._buf) < need:
                data = self.sock.recv(65536)
                if not data:
                    raise PeerGone("peer closed")
                self._buf += data
            line += CRLF + self._buf[:need]
            self._buf = self._buf[need:]


CAPS = "IMAP4rev1 AUTH=PLAIN SASL-IR UNSELECT"


def normal_answer(s, tag, verb, line):
    """The answer of a small, well-behaved server to one command."""
    caps = s.server.caps
    if verb == "CAPABILITY":
        s.line("* CAPABILITY " + caps)
        s.line(tag + " OK CAPABILITY done")
    elif verb in ("LOGIN", "AUTHENTICATE"):
        s.line(tag + " OK [CAPABILITY %s] logged in" % caps)
    elif verb == "IDLE" and s.server.idle_for is not None:
        # ends IDLE itself after idle_for seconds, unless DONE comes first
        s.line("+ idling")
        s.wait_done(s.server.idle_for)
        s.line(tag + " OK IDLE done")
    elif verb == "STATUS":
        s.line('* STATUS "INBOX" (UIDNEXT 2 UIDVALIDITY 7 MESSAGES 1)')
        s.line(tag + " OK STATUS done")
    elif verb in ("SELECT", "EXAMINE"):
        s.line("* 1 EXISTS")
        s.line("* OK [UIDVALIDITY 7] ok")
        s.line("* OK [UIDNEXT 2] ok")
        s.line(tag + " OK [READ-ONLY] done")
    elif verb == "LOGOUT":
        s.line("* BYE logging out")
        s.line(tag + " OK bye")
        raise PeerGone("logout")
    else:                               # NOOP, UNSELECT, UID FETCH, ID, ENABLE...
        s.line(tag + " OK %s done" % verb)


# Attacks: functions (session, tag) -> None that write the hostile answer
# in place of the normal one (tag is None at the greeting). Each may send
# forever: sending stops when the client hangs up.

def attack_literal_2_64(s, tag):
    # 2^64 - 1: fits in a uint64 and must still be refused as a size
    s.send(b"* STATUS INBOX (MESSAGES {18446744073709551615}\r\n" + b"x" * 4096)
    s.hold()


def attack_literal_overflow(s, tag):
    # 2^64 + 4: wraps around to 4 if the length is not checked for overflow
    s.send(b"* 1 FETCH (BODY[] {18446744073709551620}\r\nabcd)\r\n")
    s.line("%s OK done" % tag)
    s.hold()


def attack_nested_parens(s, tag):
    n = 100000
    s.send(b"* STATUS INBOX " + b"(" * n + b"MESSAGES 1" + b")" * n + CRLF)
    s.line("%s OK done" % tag)
    s.hold()


def attack_huge_line(s, tag):
    # a 1 GiB response line, streamed in 64 KiB pieces
    s.send(b"* OK ")
    chunk = b"a" * 65536
    for _ in range(GiB // len(chunk)):
        s.send(chunk)
    s.send(CRLF)
    s.line("%s OK done" % tag)
    s.hold()


def attack_nul_bytes(s, tag):
    s.send(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2\x00\x00 UIDVALIDITY 7)\r\n")
    s.send(b"* OK \x00\x00\x00 hello\r\n")
    s.line("%s OK \x00 done" % tag)
    s.hold()


def attack_stop_mid_literal(s, tag):
    s.send(b"* STATUS {100}\r\n0123456789")
    s.hold()                            # and never a byte more


def attack_close_mid_literal(s, tag):
    s.send(b"* STATUS {100}\r\n0123456789")
    s.sock.shutdown(socket.SHUT_RDWR)
    raise PeerGone("closed by the script")


def attack_trickle(s, tag):
    # a byte a second, for ever: a never-ending response line
    text = itertools.cycle(b"* OK trickle trickle ")
    while True:
        s.send(bytes([next(text)]))
        if s.server.stopping.wait(1.0):
            raise PeerGone("stopping")


def attack_garbage_greeting(s, tag):
    s.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
           b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\xff\xfe\r\n")
    s.hold()


def attack_bye_mid(s, tag):
    s.line("* 1 EXISTS")
    s.line("* BYE hostile server going away now")
    s.sock.shutdown(socket.SHUT_RDWR)
    raise PeerGone("closed by the script")


def attack_bye_and_stay(s, tag):
    # BYE, then the connection stays open without another word
    s.line("* BYE hostile server going away now")
    s.hold()


def attack_flood(s, tag):
    # untagged responses as fast as they go, the tagged answer never
    burst = b"".join(b"* %d EXISTS\r\n* OK [ALERT] flood %d\r\n" % (i, i)
                     for i in range(1, 2001))
    while True:
        s.send(burst)


ATTACKS = {
    # name: (function, where: "greeting" or "command", what the client must say)
    "literal_2_64": (attack_literal_2_64, "command", r"(?i)literal|too (large|long|big)|limit"),
    "literal_overflow": (attack_literal_overflow, "command", r"(?i)literal|too (large|long|big)|limit"),
    "nested_parens": (attack_nested_parens, "command", r"(?i)nest|deep|depth|limit"),
    "huge_line": (attack_huge_line, "command", r"(?i)line|too (large|long|big)|limit"),
    "nul_bytes": (attack_nul_bytes, "command", r"(?i)nul|\\0|bad response|invalid"),
    "stop_mid_literal": (attack_stop_mid_literal, "command", r"(?i)no answer within|time"),
    "close_mid_literal": (attack_close_mid_literal, "command", r"(?i)clos|lost|eof|reset"),
    "trickle": (attack_trickle, "command", r"(?i)no answer within|time"),
    "garbage_greeting": (attack_garbage_greeting, "greeting", r"(?i)greeting|bad response"),
    "bye_mid": (attack_bye_mid, "command", r"hostile server going away now"),
    # a BYE on a connection the server then keeps open: noticed at the time-out
    "bye_and_stay": (attack_bye_and_stay, "command",
                     r"hostile server going away now|no answer within"),
    "flood": (attack_flood, "command", r"(?i)no answer within|time|too many|flood|limit"),
}


class HostileImap:
    """A fake IMAP server on 127.0.0.1:port (plain text) that attacks its
    clients; see ATTACKS.

        srv = HostileImap("huge_line").start()
        cfg.add_connection(name="main", host="127.0.0.1", port=srv.port,
                           secure=False, username="u", password="p", timeout=2)
        ...
        srv.stop()

    attack: a name of ATTACKS or None (a well-behaved server). Every client
    connection is a Session in .sessions. caps: the capabilities it
    advertises; idle_for: with IDLE among them, the seconds after which
    it ends an IDLE itself; answers: {VERB: [lines]}, the answer to a
    command in place of the normal one ("{tag}" in a line is its tag)."""

    def __init__(self, attack=None, caps=CAPS, idle_for=None, answers=None):
        if attack is not None and attack not in ATTACKS:
            raise ValueError("no attack %r" % attack)
        self.attack = attack
        self.caps = caps
        self.idle_for = idle_for
        self.answers = dict(answers or {})
        self.port = None
        self.sessions = []
        self.errors = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._listener = None
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<HostileImap %s on %s: %d connection(s)>" % (self.attack, self.port,
                                                            len(self.sessions))

    def start(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True, name="hostile-%d" % self.port)
        t.start()
        self._threads.append(t)
        harness._track(self)
        return self

    def stop(self):
        self.stopping.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sessions = list(self.sessions)
        for s in sessions:
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        harness._untrack(self)

    _emergency_stop = stop

    def _accept(self):
        number = itertools.count(1)
        listener = self._listener
        listener.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            s = Session(self, sock, next(number))
            with self._lock:
                self.sessions.append(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, s):
        fn, where, _ = ATTACKS[self.attack] if self.attack else (None, None, None)
        try:
            if where == "greeting":
                s.attacked = True
                fn(s, None)
            s.line("* OK hostile IMAP server ready")
            while True:
                line = s.read_command()
                words = line.split(b" ", 2)
                tag = words[0].decode("ascii", errors="replace")
                verb = words[1].decode("ascii", errors="replace").upper() if len(words) > 1 else ""
                if verb == "UID" and len(words) > 2:
                    verb = "UID " + words[2].split(b" ", 1)[0].decode("ascii", "replace").upper()
                setup = verb in ("CAPABILITY", "LOGIN", "AUTHENTICATE", "ID", "ENABLE", "LOGOUT")
                if where == "command" and not setup and not s.attacked:
                    s.attacked = True
                    fn(s, tag)
                    s.end = "script done"
                    return
                if verb in self.answers:
                    for text in self.answers[verb]:
                        s.line(text.replace("{tag}", tag))
                    continue
                normal_answer(s, tag, verb, line)
        except PeerGone as e:
            s.end = "peer closed" if "stopping" not in str(e) else "stopped"
            if str(e) in ("logout", "closed by the script"):
                s.end = str(e)
        except Exception as e:              # shown by the test
            s.end = "error: %r" % e
            self.errors.append("session %d: %r" % (s.number, e))
        finally:
            s.ended = time.monotonic()
            try:
                s.sock.close()
            except OSError:
                pass

    def wait_sessions(self, count, timeout=30):
        """Waits until count connections have come and gone (the client
        hung up or the script ended); returns them."""
        def done():
            with self._lock:
                ended = [s for s in self.sessions if s.ended is not None]
            return len(ended) >= count and ended
        return harness.wait_until(done, timeout=harness.scaled(timeout),
                                  what="%d finished connection(s) to %r: %r"
                                  % (count, self, self.sessions))


# ----------------------------------------------------------- proxies

class CutGate(harness.ImapGate):
    """An ImapGate whose release(cut=N) forwards only the first N bytes of
    the held answer and drops everything after it on that connection (the
    client is left with a FETCH answer stopped in the middle; the
    connection ends when the server side does). release() without cut
    behaves as ImapGate's."""

    def __init__(self, host, port, pattern):
        super().__init__(host, port, pattern)
        self.cut = None
        self.held_data = b""

    def release(self, cut=None):
        self.cut = cut
        super().release()

    def _on_server(self, data, conn):
        if conn.get("dead"):
            return b""
        if conn.get("hold"):
            self.held_data = data
            self._released.wait(60)
            conn["hold"] = False
            if self.cut is not None:
                conn["dead"] = True
                return data[:self.cut]
        return None


class DropProxy(harness.TcpProxy):
    """A TcpProxy whose drop_all() cuts every connection it relays now (the
    client sees its connection reset and connects again)."""

    def drop_all(self):
        with self._lock:
            socks = list(self._socks)
            self._socks.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(socks) // 2


# ------------------------------------------------------------- tmpfs

class Tmpfs:
    """A tmpfs of size bytes mounted on a new directory below the run's
    temporary directory (needs root). unmount() (also at exit) takes it
    away; a busy mount is detached lazily."""

    def __init__(self, size, prefix="tmpfs"):
        self.size = size
        self.path = harness.make_tmpdir(prefix)
        self.mounted = False

    def mount(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("mounting a tmpfs needs root")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0711" % self.size,
                            "tmpfs", str(self.path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise AssertionError("mount -t tmpfs on %s failed: %s" % (self.path, p.stdout))
        self.mounted = True
        harness._track(self)
        return self

    def free(self):
        """Bytes available to a user of the file system now."""
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave=0, name="filler"):
        """Writes a file that leaves at most `leave` bytes free; returns its
        path."""
        path = Path(self.path) / name
        with open(path, "ab") as f:
            block = b"\0" * 4096
            while self.free() > leave:
                try:
                    f.write(block)
                    f.flush()
                except OSError:
                    break
        return path

    def unmount(self):
        if not self.mounted:
            return
        for args in (["umount", str(self.path)], ["umount", "-l", str(self.path)]):
            if subprocess.run(args, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.2)
        self.mounted = False
        harness._untrack(self)

    _emergency_stop = unmount
