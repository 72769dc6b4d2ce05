"""Shared machinery of imaphook's integration tests (Python 3 standard library
only).

What it offers:

- Dovecot: a private Dovecot 2.3 (tests/fixtures/start-dovecot.sh) on two
  free 127.0.0.1 ports, implicit TLS and plain/STARTTLS, with a self-signed
  certificate, users added while it runs, and ImapClient, an independent
  imaplib client for setting up and checking mailboxes.
- Config: writes an imaphook configuration file (libconfig syntax, mode
  0600) from Python values.
- run_cli / run_program: run a program of the sanitizer build and return a
  Result (rc, stdout bytes, stderr text, parsed JSON).
- Receiver: a threaded HTTP/1.1 webhook receiver that records requests,
  answers from a script, and checks Standard Webhooks signatures.
- Daemon: runs imaphookd -c FILE in the background (log waits, signals).
- For the daemon tests: DaemonTestCase (a user per test, a config with the
  API on, signed receivers, delivery assertions), Api and Metrics (/healthz,
  /metrics parsed, waiting for polls), TcpProxy and ImapGate (watch, delay
  or hold a plain-text IMAP conversation), queued_files / dead_letters /
  trigger_state (what the daemon keeps in its state_dir), shared_dovecot()
  (one Dovecot for several modules), ImapClient.append_many (hundreds of
  messages in one MULTIAPPEND) and ImapClient.attributes (size, flags,
  internal date as the server says).
- make_message / message_bytes: test messages (non-ASCII, HTML, attachments).
- mutf7_encode / mutf7_decode: IMAP modified UTF-7 mailbox names.
- IntegrationTestCase: assertions that show a program's output on failure,
  and helpers that clean up after themselves.

Every run of a project program is checked for sanitizer reports: an
"AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer" or
"runtime error:" in its stderr, or exit status 86 (ASan/LSan) or 87 (UBSan),
fails the test with the report. Nothing started here outlives the test run:
Dovecot instances, daemons and receivers are also stopped at exit.

Environment: IMAPHOOK_BUILD (the directory of the sanitizer build, default
build/san), IMAPHOOK_TOP (the repository, default: found from this file),
IMAPHOOK_KEEP_TMP=1 keeps the temporary directory (its path is printed).
IMAPHOOK_WRAP runs every project program under a wrapper (valgrind: `make
check-valgrind`), IMAPHOOK_TIME_FACTOR multiplies the waits (see "wrapper").
"""

import atexit
import base64
import datetime
import email.policy
import hashlib
import hmac
import http.server
import imaplib
import itertools
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

TOP = Path(os.environ.get("IMAPHOOK_TOP") or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("IMAPHOOK_BUILD") or TOP / "build" / "san")
FIXTURES = TOP / "tests" / "fixtures"

# The same options as the Makefile's SAN_ENV, for runs outside make.
SAN_ENV_DEFAULTS = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86:strict_string_checks=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87",
    "LSAN_OPTIONS": "suppressions=%s:print_suppressions=0" % (TOP / "tests" / "lsan.supp"),
}
SAN_EXIT_CODES = {86: "AddressSanitizer/LeakSanitizer", 87: "UndefinedBehaviorSanitizer"}
SAN_PATTERN = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")


# ---------------------------------------------------------------- basics

_tmp_root = None
_tmp_lock = threading.Lock()
_tmp_counter = itertools.count(1)


def tmp_root():
    """The run's temporary directory (mode 0711, so that Dovecot's users can
    reach directories below it). Removed at exit unless IMAPHOOK_KEEP_TMP."""
    global _tmp_root
    with _tmp_lock:
        if _tmp_root is None:
            _tmp_root = Path(tempfile.mkdtemp(prefix="imaphook-it-"))
            os.chmod(_tmp_root, 0o711)
            atexit.register(_remove_tmp_root)
        return _tmp_root


def _remove_tmp_root():
    if _tmp_root is None:
        return
    _stop_everything()      # registered earlier, so it would run after us
    if os.environ.get("IMAPHOOK_KEEP_TMP"):
        sys.stderr.write("integration tests: kept %s\n" % _tmp_root)
        return
    shutil.rmtree(_tmp_root, ignore_errors=True)


def make_tmpdir(prefix="t"):
    """A new, empty directory (mode 0711) below tmp_root()."""
    path = tmp_root() / ("%s-%d" % (prefix, next(_tmp_counter)))
    path.mkdir(mode=0o711)
    os.chmod(path, 0o711)
    return path


def write_file(path, content, mode=0o600):
    """Writes content (str as UTF-8, or bytes) to path with the given mode;
    returns the path."""
    path = Path(path)
    if isinstance(content, str):
        content = content.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, content)
    finally:
        os.close(fd)
    return path


_ports_given = set()


def free_port():
    """A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0,
    read, closed), never the same one twice in a run."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no free port found")


def loopback_alias():
    """A host name other than "localhost" that resolves to 127.0.0.1 (from
    /etc/hosts or the machine's own name), or None. The fixture's
    certificate does not name it, so it serves to test host name checks."""
    names = []
    try:
        with open("/etc/hosts", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[0] == "127.0.0.1":
                    names.extend(fields[1:])
    except OSError:
        pass
    names.append(socket.gethostname())
    for name in names:
        if name.lower().startswith("localhost") or name.lower() == "ip6-localhost":
            continue
        try:
            addrs = {ai[4][0] for ai in socket.getaddrinfo(name, None, socket.AF_INET)}
        except OSError:
            continue
        if addrs == {"127.0.0.1"}:
            return name
    return None


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value, which is returned;
    raises AssertionError after timeout seconds (times IMAPHOOK_TIME_FACTOR)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def project_env(extra=None):
    """os.environ with the sanitizer options (the Makefile's, unless already
    set) and extra (a dict; None values remove a variable)."""
    env = dict(os.environ)
    for key, value in SAN_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def binary(name):
    """Path of a program of the sanitizer build: "imaphook", "imaphookd",
    "tools/hookrecv". Fails with a hint when it has not been built."""
    path = BUILD / name
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing: build it with `make san` (IMAPHOOK_BUILD=%s)"
                             % (path, BUILD))
    return path


# ------------------------------------------------------------- sanitizers

class SanitizerError(AssertionError):
    """A program of the project reported a sanitizer error."""


def check_sanitizers(what, rc, stderr):
    """Raises SanitizerError when rc is a sanitizer exit status or stderr
    holds a sanitizer report."""
    stderr = stderr or ""
    if rc in SAN_EXIT_CODES or SAN_PATTERN.search(stderr):
        cause = SAN_EXIT_CODES.get(rc, "sanitizer report")
        raise SanitizerError("%s: %s (exit status %s):\n%s" % (what, cause, rc, stderr))


# ------------------------------------------------------------ wrapper
# IMAPHOOK_WRAP: a command put before every run of a project program
# (run_program, run_cli, Daemon), e.g. "valgrind --error-exitcode=99
# --log-file={log}.%p ...". "{log}" becomes a fresh path per run; after the
# exit, files starting with it that hold a valgrind error (ERROR SUMMARY
# above 0, or an error record) fail the test, as does exit status 99.
# IMAPHOOK_TIME_FACTOR (default 1) multiplies the tests' waits for slow
# wrappers.

WRAP = shlex.split(os.environ.get("IMAPHOOK_WRAP") or "")
WRAP_EXIT = 99
TIME_FACTOR = float(os.environ.get("IMAPHOOK_TIME_FACTOR") or 1)
_WRAP_ERROR = re.compile(r"ERROR SUMMARY: [1-9]|^==\d+== (Invalid |Conditional jump|"
                         r"Use of uninitialised|Syscall param|Mismatched free|"
                         r"Source and destination overlap|.* are definitely lost|"
                         r".* are indirectly lost)", re.M)


def scaled(seconds):
    """seconds times IMAPHOOK_TIME_FACTOR (None stays None)."""
    return None if seconds is None else seconds * TIME_FACTOR


def wrap_argv(argv):
    """(argv with IMAPHOOK_WRAP before it, the run's log prefix or None)."""
    if not WRAP:
        return list(argv), None
    log = tmp_root() / ("wrap-%d.log" % next(_tmp_counter))
    return [a.replace("{log}", str(log)) for a in WRAP] + list(argv), log


def check_wrapper(what, rc, log):
    """Raises SanitizerError when the wrapper reported errors in the run
    whose log prefix is log."""
    if log is None:
        return
    texts = []
    for path in sorted(log.parent.glob(log.name + "*")):
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
    text = "\n".join(texts)
    if rc == WRAP_EXIT or _WRAP_ERROR.search(text):
        raise SanitizerError("%s: %s reported errors (exit status %s):\n%s"
                             % (what, WRAP[0], rc, text[-20000:]))


# ---------------------------------------------------------- running programs

class Result:
    """What a finished program did."""

    def __init__(self, argv, rc, stdout, stderr, duration):
        self.argv = [str(a) for a in argv]
        self.rc = rc                    # exit status (negative: killed by that signal)
        self.stdout = stdout            # bytes
        self.stderr = stderr            # str (UTF-8, undecodable bytes replaced)
        self.duration = duration        # seconds
        self._json = self._json_error = None
        self._parsed = False

    @property
    def json(self):
        """stdout parsed as JSON, or None when it is empty or not JSON."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.stdout.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                self._json_error = str(e)
        return self._json

    @property
    def text(self):
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def command(self):
        return " ".join(self.argv)

    def describe(self, limit=4000):
        """The command, its exit status and output, for failure messages."""
        out = self.text
        if len(out) > limit:
            out = out[:limit] + "\n[... %d more bytes]" % (len(self.stdout) - limit)
        return "$ %s\nexit status %s after %.2f s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self.command, self.rc, self.duration, out.rstrip("\n"), self.stderr.rstrip("\n"))

    def __repr__(self):
        return "<Result rc=%s %s>" % (self.rc, self.command)


def run_program(argv, stdin=None, timeout=30, env=None, cwd=None, check_sanitizers_=True):
    """Runs argv to completion. stdin: None (empty), bytes or str. Raises
    AssertionError when it runs longer than timeout seconds (it is killed
    first) or reports a sanitizer error."""
    argv = [str(a) for a in argv]
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    wrapped, log = wrap_argv(argv)
    timeout = scaled(timeout)
    t0 = time.monotonic()
    try:
        p = subprocess.run(wrapped, input=stdin if stdin is not None else b"",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=project_env(env), cwd=cwd)
    except subprocess.TimeoutExpired as e:
        partial = Result(argv, None, e.stdout or b"",
                         (e.stderr or b"").decode("utf-8", errors="replace"),
                         time.monotonic() - t0)
        raise AssertionError("still running after %s s, killed:\n%s" % (timeout, partial.describe()))
    result = Result(argv, p.returncode, p.stdout, p.stderr.decode("utf-8", errors="replace"),
                    time.monotonic() - t0)
    if check_sanitizers_:
        check_sanitizers(result.command, result.rc, result.stderr)
        check_wrapper(result.command, result.rc, log)
    return result


def _config_path(config):
    if isinstance(config, Config):
        if config.path is None or not config.written:
            config.write()
        return config.path
    return config


def run_cli(config, *args, stdin=None, timeout=30, env=None, cwd=None):
    """Runs `imaphook -c CONFIG ARGS...` (config: a Config, a path, or None
    for no -c) and returns its Result; checked for sanitizer reports."""
    argv = [binary("imaphook")]
    path = _config_path(config)
    if path is not None:
        argv += ["-c", path]
    argv += list(args)
    return run_program(argv, stdin=stdin, timeout=timeout, env=env, cwd=cwd)


# ------------------------------------------------------------------- config

class Raw(str):
    """Text written into a configuration file as it is."""


def lc_quote(s):
    """s as a libconfig string literal."""
    out = ['"']
    for ch in str(s):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _is_scalar(v):
    return isinstance(v, (Raw, bool, int, float, str, os.PathLike))


def lc_value(v, indent=""):
    """A Python value in libconfig syntax: str/Path -> string, bool, int
    (with L when it needs 64 bits), float, dict -> group, list of scalars ->
    array [..], other lists and tuples -> list (..), Raw -> as is."""
    inner = indent + "  "
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) + ("" if -2**31 <= v < 2**31 else "L")
    if isinstance(v, float):
        r = repr(v)
        return r if ("." in r or "e" in r) else r + ".0"
    if isinstance(v, (str, os.PathLike)):
        return lc_quote(os.fspath(v))
    if isinstance(v, dict):
        lines = ["{"]
        for key, value in v.items():
            if value is not None:
                lines.append("%s%s = %s;" % (inner, key, lc_value(value, inner)))
        lines.append(indent + "}")
        return "\n".join(lines)
    if isinstance(v, (list, tuple)):
        if isinstance(v, list) and all(_is_scalar(x) for x in v):
            return "[ " + ", ".join(lc_value(x, inner) for x in v) + " ]" if v else "[ ]"
        if all(_is_scalar(x) for x in v):
            return "( " + ", ".join(lc_value(x, inner) for x in v) + " )" if v else "( )"
        items = [inner + lc_value(x, inner) for x in v]
        return "(\n" + ",\n".join(items) + "\n" + indent + ")"
    raise TypeError("no libconfig form for %r" % (v,))


class Config:
    """An imaphook configuration file built from Python values.

        cfg = Config()                               # in a new temp directory
        cfg.add_connection(**dovecot.connection(user, password))
        cfg.add_webhook("crm", receiver.url(), secret="whsec_...")
        cfg.add_trigger("inbox", "main", "INBOX", ["crm"], interval=1)
        cfg.write()                                  # mode 0600; returns the path
        run_cli(cfg, "test-connection")

    Settings whose value is None are left out. Top-level settings other than
    the lists go in cfg.settings (state_dir defaults to DIR/state); cfg.api
    is the api group (a dict) or None; cfg.extra is raw text appended at the
    end. line_of() finds the line of a text in the written file.
    """

    def __init__(self, directory=None, name="imaphook.conf", **settings):
        self.dir = Path(directory) if directory is not None else make_tmpdir("config")
        self.path = self.dir / name
        self.settings = {"state_dir": self.dir / "state"}
        self.settings.update(settings)
        self.api = None
        self.connections = []
        self.webhooks = []
        self.triggers = []
        self.extra = ""
        self.text = None
        self.written = False

    def set(self, **settings):
        self.settings.update(settings)
        self.written = False
        return self

    def add_connection(self, name="main", **keys):
        """Appends a connection group; returns its dict (still editable
        before write())."""
        group = {"name": name}
        group.update(keys)
        self.connections.append(group)
        self.written = False
        return group

    def add_webhook(self, name, url, **keys):
        group = {"name": name, "url": url}
        group.update(keys)
        self.webhooks.append(group)
        self.written = False
        return group

    def add_trigger(self, name, connection, mailbox, webhooks, **keys):
        group = {"name": name, "connection": connection, "mailbox": mailbox,
                 "webhooks": list(webhooks) if isinstance(webhooks, (list, tuple)) else webhooks}
        group.update(keys)
        self.triggers.append(group)
        self.written = False
        return group

    def connection(self, name):
        return next(c for c in self.connections if c["name"] == name)

    def trigger(self, name):
        return next(t for t in self.triggers if t["name"] == name)

    def webhook(self, name):
        return next(w for w in self.webhooks if w["name"] == name)

    def remove_trigger(self, name):
        self.triggers = [t for t in self.triggers if t["name"] != name]
        self.written = False

    def enable_api(self, **keys):
        """Adds an api group listening on a free 127.0.0.1 port; returns
        the port."""
        port = free_port()
        self.api = {"listen": "127.0.0.1:%d" % port}
        self.api.update(keys)
        self.written = False
        return port

    @property
    def state_dir(self):
        return Path(self.settings["state_dir"])

    def render(self):
        lines = ["# written by tests/integration/harness.py"]
        for key, value in self.settings.items():
            if value is not None:
                lines.append("%s = %s;" % (key, lc_value(value)))
        if self.api is not None:
            lines.append("api = %s;" % lc_value(self.api))
        for key in ("connections", "webhooks", "triggers"):
            groups = getattr(self, key)
            if groups:
                lines.append("%s = %s;" % (key, lc_value(list(groups))))
        if self.extra:
            lines.append(self.extra.rstrip("\n"))
        return "\n".join(lines) + "\n"

    def write(self, path=None):
        """Writes the file (mode 0600) and returns its path."""
        if path is not None:
            self.path = Path(path)
        self.text = self.render()
        write_file(self.path, self.text, 0o600)
        self.written = True
        return self.path

    def file(self, name, content, mode=0o600):
        """Writes another file (a password, a secret, a token) next to the
        configuration; returns its path."""
        return write_file(self.dir / name, content, mode)

    def line_of(self, needle, nth=1):
        """The 1-based number of the line of the written text holding the
        nth occurrence of needle."""
        if self.text is None:
            raise AssertionError("line_of() before write()")
        seen = 0
        for number, line in enumerate(self.text.split("\n"), 1):
            if needle in line:
                seen += 1
                if seen == nth:
                    return number
        raise AssertionError("%r is not in %s:\n%s" % (needle, self.path, self.text))

    def __fspath__(self):
        return os.fspath(_config_path(self))


# ------------------------------------------------------- modified UTF-7

def mutf7_encode(name):
    """A UTF-8 (Python str) mailbox name in IMAP modified UTF-7 (RFC 3501
    5.1.3): "Entwürfe" -> "Entw&APw-rfe", "a&b" -> "a&-b"."""
    out, pending = [], []

    def flush():
        if pending:
            b64 = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + b64.rstrip("=").replace("/", ",") + "-")
            del pending[:]

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(wire):
    """The inverse of mutf7_encode. Raises ValueError on malformed input."""
    out, i = [], 0
    while i < len(wire):
        ch = wire[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = wire.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated &-sequence in %r" % wire)
        if end == i + 1:
            out.append("&")
        else:
            b64 = wire[i + 1:end].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64, validate=True).decode("utf-16-be"))
        i = end + 1
    return "".join(out)


def imap_quote(s):
    """s as an IMAP quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_mailbox(name):
    """A UTF-8 mailbox name as an IMAP argument (modified UTF-7, quoted)."""
    return imap_quote(mutf7_encode(name))


# ---------------------------------------------------------------- messages

def make_message(subject="Test message", sender=("Sender", "sender@example.org"),
                 to=(("Receiver", "receiver@example.org"),), cc=(), body="Hello.\n",
                 html=None, attachments=(), date=None, message_id=None, headers=None,
                 cte=None):
    """An email.message.EmailMessage. Addresses are "a@b" or (name, address)
    (names may be non-ASCII: they are RFC 2047 encoded, as is a non-ASCII
    subject); sender, to and cc are one address or a list of them. html adds a text/html
    alternative. attachments: (filename, content_type, data) tuples, data
    bytes or str. date: a datetime (default now, UTC). headers: extra
    headers, a dict or (name, value) pairs. cte: the Content-Transfer-Encoding
    of the text parts ("quoted-printable", "base64"; default 7bit or 8bit)."""
    def addr(a):
        if isinstance(a, str):
            return Address(addr_spec=a)
        name, address = a
        return Address(display_name=name, addr_spec=address)

    def addrs(v):
        if isinstance(v, str) or (isinstance(v, tuple) and len(v) == 2
                                  and all(isinstance(x, str) for x in v)):
            v = [v]
        return [addr(a) for a in v]

    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = addrs(sender)
    if to:
        msg["To"] = addrs(to)
    if cc:
        msg["Cc"] = addrs(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime.datetime.now(datetime.timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain="example.org")
    for name, value in (headers.items() if isinstance(headers, dict) else headers or ()):
        msg[name] = value
    msg.set_content(body, cte=cte)
    if html is not None:
        msg.add_alternative(html, subtype="html", cte=cte)
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        if isinstance(data, str):
            msg.add_attachment(data, subtype=subtype, filename=filename)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def message_bytes(msg=None, **kw):
    """A message as raw RFC 5322 bytes with CRLF line ends: msg (an
    EmailMessage, str or bytes) or make_message(**kw)."""
    if msg is None:
        msg = make_message(**kw)
    if isinstance(msg, EmailMessage):
        return msg.as_bytes(policy=email.policy.SMTP)
    if isinstance(msg, str):
        msg = msg.encode("utf-8")
    return re.sub(rb"\r?\n", b"\r\n", msg)


# ------------------------------------------------------------------ Dovecot

class ImapError(AssertionError):
    """The fixture's IMAP server refused a setup or verification command."""


class Mailbox:
    """One LIST answer: name (UTF-8), wire (modified UTF-7), delimiter, flags."""

    def __init__(self, name, wire, delimiter, flags):
        self.name, self.wire, self.delimiter, self.flags = name, wire, delimiter, flags

    def __repr__(self):
        return "Mailbox(%r, %r, %r)" % (self.name, self.delimiter, sorted(self.flags))


_LIST_RE = re.compile(rb'^\((?P<flags>[^)]*)\) (?P<delim>NIL|"(?:\\.|[^"\\])*") ?(?P<name>.*)$',
                      re.S)


def _unquote(b):
    if b.startswith(b'"') and b.endswith(b'"') and len(b) >= 2:
        return re.sub(rb'\\(.)', rb'\1', b[1:-1])
    return b


class ImapClient:
    """An imaplib connection to the fixture, logged in, for setting up and
    checking mail independently of imaphook. Mailbox names are UTF-8 (str);
    the client encodes them. Every refused command raises ImapError. Usable
    as a context manager; the raw imaplib object is .imap."""

    def __init__(self, dovecot, user, password, mode="tls", host="127.0.0.1", timeout=30):
        ctx = ssl.create_default_context(cafile=str(dovecot.cert_path))
        if mode == "tls":
            c = imaplib.IMAP4_SSL(host, dovecot.port_tls, ssl_context=ctx, timeout=timeout)
        else:
            c = imaplib.IMAP4(host, dovecot.port_plain, timeout=timeout)
            if mode == "starttls":
                c.starttls(ssl_context=ctx)
            elif mode != "plain":
                raise ValueError("mode is tls, starttls or plain, not %r" % mode)
        c._encoding = "utf-8"   # non-ASCII passwords
        try:
            c.login(user, password)
        except imaplib.IMAP4.error as e:
            c.shutdown()
            raise ImapError("LOGIN %s: %s" % (user, e))
        self.imap = c
        self.user = user
        self.selected = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.imap is not None:
            try:
                self.imap.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
            self.imap = None

    def _check(self, what, typ, data):
        if typ != "OK":
            raise ImapError("%s: %s %r" % (what, typ, data))
        return data

    def command(self, name, *args):
        """Runs any command (arguments as they go on the wire); returns the
        untagged data imaplib collected for name."""
        typ, data = self.imap._simple_command(name, *args)
        self._check("%s %s" % (name, " ".join(args)), typ, data)
        return self.imap._untagged_response(typ, data, name)[1]

    def capabilities(self):
        """The CAPABILITY list of the logged-in session, upper case."""
        typ, data = self.imap.capability()
        return set(self._check("CAPABILITY", typ, data)[0].decode().upper().split())

    # mailboxes

    def create(self, name, subscribe=False):
        self._check("CREATE %s" % name, *self.imap.create(imap_mailbox(name)))
        if subscribe:
            self.subscribe(name)

    def delete(self, name):
        self._check("DELETE %s" % name, *self.imap.delete(imap_mailbox(name)))

    def rename(self, old, new):
        self._check("RENAME %s %s" % (old, new),
                    *self.imap.rename(imap_mailbox(old), imap_mailbox(new)))

    def subscribe(self, name):
        self._check("SUBSCRIBE %s" % name, *self.imap.subscribe(imap_mailbox(name)))

    def unsubscribe(self, name):
        self._check("UNSUBSCRIBE %s" % name, *self.imap.unsubscribe(imap_mailbox(name)))

    def _parse_list(self, data):
        out = []
        for item in data:
            if item is None or item == b"":
                continue
            if isinstance(item, tuple):          # the name came as a literal
                head, name = item[0], item[1]
                m = _LIST_RE.match(head)
            else:
                m = _LIST_RE.match(item)
                name = _unquote(m.group("name")) if m else None
            if m is None:
                raise ImapError("cannot parse LIST answer %r" % (item,))
            flags = set(m.group("flags").decode().split())
            delim = m.group("delim")
            delim = None if delim == b"NIL" else _unquote(delim).decode()
            wire = name.decode("utf-8")
            out.append(Mailbox(mutf7_decode(wire), wire, delim, flags))
        return out

    def list(self, pattern="*"):
        """LIST "" pattern -> [Mailbox]."""
        return self._parse_list(self._check("LIST", *self.imap.list('""', imap_quote(pattern))))

    def mailboxes(self):
        """{UTF-8 name: Mailbox} of every mailbox."""
        return {m.name: m for m in self.list()}

    def subscribed(self):
        """The set of subscribed mailbox names (LSUB)."""
        return {m.name for m in self._parse_list(self._check("LSUB", *self.imap.lsub('""', '"*"')))}

    def status(self, mailbox, items=("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY",
                                      "HIGHESTMODSEQ")):
        """STATUS -> {item: int}."""
        data = self._check("STATUS %s" % mailbox,
                           *self.imap.status(imap_mailbox(mailbox), "(%s)" % " ".join(items)))
        line = data[-1] if not isinstance(data[-1], tuple) else data[-1][-1]
        m = re.search(rb"\(([^()]*)\)\s*$", line)
        if m is None:
            raise ImapError("cannot parse STATUS answer %r" % (data,))
        words = m.group(1).decode().split()
        return {words[i].upper(): int(words[i + 1]) for i in range(0, len(words) - 1, 2)}

    # messages

    def append(self, mailbox, message, flags=(), internal_date=None):
        """APPENDs message (EmailMessage, bytes or str) with flags (a list of
        flags/keywords) and internal_date (datetime, naive = UTC); returns the
        new message's UID (from APPENDUID)."""
        raw = message_bytes(message)
        flag_list = "(%s)" % " ".join(flags) if flags else None
        date = None
        if internal_date is not None:
            if internal_date.tzinfo is None:
                internal_date = internal_date.replace(tzinfo=datetime.timezone.utc)
            date = imaplib.Time2Internaldate(internal_date)
        data = self._check("APPEND %s" % mailbox,
                           *self.imap.append(imap_mailbox(mailbox), flag_list, date, raw))
        m = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[-1] or b"")
        if m is None:
            raise ImapError("APPEND %s: no APPENDUID in %r" % (mailbox, data))
        return int(m.group(1))

    def select(self, mailbox, readonly=False):
        """SELECT (or EXAMINE); returns the number of messages."""
        data = self._check("SELECT %s" % mailbox,
                           *self.imap.select(imap_mailbox(mailbox), readonly))
        self.selected = mailbox
        return int(data[0])

    def _ensure_selected(self, mailbox, readonly=True):
        if mailbox is not None:
            self.select(mailbox, readonly)
        elif self.selected is None:
            raise ValueError("no mailbox selected")

    def uids(self, mailbox=None):
        """The UIDs of the mailbox, ascending."""
        self._ensure_selected(mailbox)
        data = self._check("UID SEARCH", *self.imap.uid("SEARCH", "ALL"))
        return sorted(int(x) for x in (data[0] or b"").split())

    def flags(self, mailbox=None, uids="1:*", recent=False):
        """{uid: set of flags} for the messages of uids (an IMAP set).
        \\Recent, which depends on the session rather than the message, is
        left out unless recent is true."""
        self._ensure_selected(mailbox)
        data = self._check("UID FETCH FLAGS", *self.imap.uid("FETCH", uids, "(UID FLAGS)"))
        out = {}
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                item = item[0]
            u = re.search(rb"UID (\d+)", item)
            f = re.search(rb"FLAGS \(([^)]*)\)", item)
            if u and f:
                flags = set(f.group(1).decode().split())
                if not recent:
                    flags = {x for x in flags if x.lower() != "\\recent"}
                out[int(u.group(1))] = flags
        return out

    def fetch(self, mailbox, uid, item="BODY.PEEK[]"):
        """The bytes of one FETCH item (default the whole message, without
        setting \\Seen) of the message with that UID."""
        self._ensure_selected(mailbox)
        data = self._check("UID FETCH %s" % item, *self.imap.uid("FETCH", str(uid), "(%s)" % item))
        for part in data:
            if isinstance(part, tuple):
                return part[1]
        raise ImapError("UID FETCH %s %s: no literal in %r" % (uid, item, data))

    def store(self, mailbox, uids, op, flags):
        """UID STORE uids op (flags); op is "+FLAGS", "-FLAGS" or "FLAGS"."""
        self._ensure_selected(mailbox, readonly=False)
        self._check("UID STORE", *self.imap.uid("STORE", str(uids), op,
                                                "(%s)" % " ".join(flags)))

    def expunge(self, mailbox, uids):
        """Flags uids \\Deleted and UID EXPUNGEs them."""
        self.store(mailbox, uids, "+FLAGS", ["\\Deleted"])
        self._check("UID EXPUNGE", *self.imap.uid("EXPUNGE", str(uids)))

    def append_many(self, mailbox, messages, flags=()):
        """APPENDs every message (EmailMessage, bytes or str) in one
        MULTIAPPEND command with LITERAL+ literals (RFC 3502, RFC 7888: one
        round trip, atomic); returns their UIDs in order (from APPENDUID).
        Hundreds of messages take milliseconds instead of seconds."""
        raws = [message_bytes(m) for m in messages]
        if not raws:
            return []
        imap = self.imap
        flag_part = (" (%s)" % " ".join(flags)).encode("ascii") if flags else b""
        tag = imap._new_tag()
        imap.tagged_commands[tag] = None
        parts = [tag, b" APPEND ", imap_mailbox(mailbox).encode("ascii")]
        for raw in raws:
            parts += [flag_part, b" {%d+}\r\n" % len(raw), raw]
        parts.append(b"\r\n")
        imap.send(b"".join(parts))
        typ, data = imap._command_complete("APPEND", tag)
        self._check("MULTIAPPEND %s (%d messages)" % (mailbox, len(raws)), typ, data)
        m = re.search(rb"\[APPENDUID \d+ ([\d:,]+)\]", data[-1] or b"")
        if m is None:
            raise ImapError("MULTIAPPEND %s: no APPENDUID in %r" % (mailbox, data))
        uids = []
        for r in m.group(1).split(b","):
            lo, _, hi = r.partition(b":")
            uids.extend(range(int(lo), int(hi or lo) + 1))
        if len(uids) != len(raws):
            raise ImapError("MULTIAPPEND %s: %d UIDs for %d messages: %r"
                            % (mailbox, len(uids), len(raws), data))
        return uids

    def attributes(self, mailbox=None, uids="1:*"):
        """{uid: {"flags": set (without \\Recent), "size": RFC822.SIZE,
        "internalDate": the INTERNALDATE string}} as the server says."""
        self._ensure_selected(mailbox)
        data = self._check("UID FETCH", *self.imap.uid(
            "FETCH", str(uids), "(UID FLAGS RFC822.SIZE INTERNALDATE)"))
        out = {}
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                item = item[0]
            u = re.search(rb"UID (\d+)", item)
            f = re.search(rb"FLAGS \(([^)]*)\)", item)
            z = re.search(rb"RFC822\.SIZE (\d+)", item)
            d = re.search(rb'INTERNALDATE "([^"]+)"', item)
            if u and f and z and d:
                out[int(u.group(1))] = {
                    "flags": {x for x in f.group(1).decode().split() if x.lower() != "\\recent"},
                    "size": int(z.group(1)),
                    "internalDate": d.group(1).decode(),
                }
        return out


_live = set()           # Dovecot, Daemon and Receiver objects to stop at exit
_live_lock = threading.Lock()


def _track(obj):
    with _live_lock:
        _live.add(obj)


def _untrack(obj):
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _stop_everything():
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj._emergency_stop()
        except Exception as e:   # keep stopping the others
            sys.stderr.write("integration tests: cannot stop %r: %s\n" % (obj, e))


def _sigterm(signum, frame):
    # unittest records SystemExit as a test error and goes on; it lets
    # KeyboardInterrupt through, and atexit then stops everything
    raise KeyboardInterrupt("SIGTERM")


# A test run killed with SIGTERM still stops its servers (atexit runs).
if (threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
    signal.signal(signal.SIGTERM, _sigterm)


_shared_dovecot = None


def shared_dovecot():
    """One Dovecot for every test module that asks (started on the first
    call, stopped at exit): saves a start and a stop per module. Tests that
    share it add their own users, and one that stops it starts it again."""
    global _shared_dovecot
    if _shared_dovecot is None:
        _shared_dovecot = Dovecot.start_new()
    elif not _shared_dovecot.running:
        _shared_dovecot.start()
    return _shared_dovecot


class Dovecot:
    """A private Dovecot on 127.0.0.1: port_tls (implicit TLS) and
    port_plain (plain text, STARTTLS), certificate cert_path (CN=localhost,
    SAN DNS:localhost and IP:127.0.0.1), passwd-file users, Maildir mail
    below DIR/mail, SPECIAL-USE mailboxes Drafts (subscribed), Sent and
    Trash created for every user.

        def setUpModule():
            global dovecot
            dovecot = harness.Dovecot.start_new()
        def tearDownModule():
            dovecot.stop()

    It is stopped at exit too, whatever happened. Needs root (the test is
    skipped otherwise) and the dovecot-imapd package.
    """

    host = "127.0.0.1"

    def __init__(self, directory=None, extra_conf=None):
        self.dir = Path(directory) if directory is not None else make_tmpdir("dovecot")
        if extra_conf is not None:
            # dovecot.conf.tmpl includes it: it survives restarts
            write_file(self.dir / "extra.conf", extra_conf.replace("@DIR@", str(self.dir)),
                       0o644)
        self.port_tls = free_port()
        self.port_plain = free_port()
        self.pid = None
        self.users = {}
        self._counter = itertools.count(1)
        self._started_once = False

    @classmethod
    def start_new(cls, extra_conf=None):
        """A new instance, started. extra_conf: Dovecot settings added to the
        fixture's (e.g. a namespace); "@DIR@" in it is the instance's
        directory."""
        d = cls(extra_conf=extra_conf)
        d.start()
        return d

    def __repr__(self):
        return "<Dovecot %s pid=%s ports %d/%d>" % (self.dir, self.pid, self.port_tls,
                                                    self.port_plain)

    @property
    def running(self):
        return self.pid is not None

    @property
    def cert_path(self):
        return self.dir / "cert.pem"

    @property
    def log_path(self):
        return self.dir / "dovecot.log"

    def start(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("the Dovecot fixture runs Dovecot as root")
        if shutil.which("dovecot") is None and not os.path.exists("/usr/sbin/dovecot"):
            raise AssertionError("dovecot is not installed (make deps installs dovecot-imapd)")
        if self.running:
            return self
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        for attempt in range(3):
            p = subprocess.run([str(FIXTURES / "start-dovecot.sh"), str(self.dir),
                                str(self.port_tls), str(self.port_plain)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=60, env=env)
            m = re.search(r"^PID (\d+)$", p.stdout, re.M)
            if p.returncode == 0 and m is not None:
                break
            # Someone took a port since free_port() chose it: on the first
            # start (a restart keeps its ports), choose others.
            if "Address already in use" not in p.stderr or self._started_once:
                break
            self.port_tls, self.port_plain = free_port(), free_port()
        if p.returncode != 0 or m is None:
            raise AssertionError("start-dovecot.sh %s failed (exit %d):\n%s%s"
                                 % (self.dir, p.returncode, p.stdout, p.stderr))
        self.pid = int(m.group(1))
        self._started_once = True
        _track(self)
        return self

    def processes(self):
        """{pid: command line} of the instance's live processes (the master
        is a session leader: its session's members)."""
        out = {}
        if self.pid is None:
            return out
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[3]) != self.pid or fields[0] == "Z":
                    continue
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    out[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except (OSError, IndexError, ValueError):
                continue
        return out

    def stop(self):
        """Stops Dovecot and waits until all of its processes have gone.

        The imap and imap-login processes get SIGTERM first: they then say
        BYE ("Server shutting down") to their clients and leave at once,
        as in a real restart; otherwise one connected client (a running
        imaphookd) holds the master's shutdown for more than 10 s."""
        if not self.running:
            return
        for pid, cmd in self.processes().items():
            if pid != self.pid and re.match(r"dovecot/imap(-login)?\b", cmd):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        p = subprocess.run([str(FIXTURES / "stop-dovecot.sh"), str(self.dir)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        self.pid = None
        _untrack(self)
        if p.returncode != 0:
            raise AssertionError("stop-dovecot.sh %s failed:\n%s" % (self.dir, p.stdout))

    def restart(self):
        """Stops and starts again: same ports, users, mail and certificate."""
        self.stop()
        self.start()

    def _emergency_stop(self):
        self.stop()

    def set_capabilities(self, caps):
        """Makes the server advertise exactly caps after login (Dovecot's
        imap_capability, applied with a reload) and waits until a new session
        shows them.  While Dovecot restarts its login processes a connection
        may be closed before the greeting: that counts as not yet applied."""
        conf = self.dir / "dovecot.conf"
        text = re.sub(r"(?m)^imap_capability = .*\n", "", conf.read_text())
        conf.write_text(text + "imap_capability = %s\n" % caps)
        os.kill(self.pid, signal.SIGHUP)
        user, _ = self.add_user()
        want = set(caps.upper().split())

        def applied():
            try:
                with self.imap(user) as c:
                    return c.capabilities() == want
            except (ImapError, OSError, imaplib.IMAP4.error):
                return False
        wait_until(applied, timeout=15, what="Dovecot to advertise %s" % caps)

    # users

    def add_user(self, name=None, password=None):
        """Adds a user while Dovecot runs and returns (user, password).
        Default: a fresh name and a random password. The name is
        [A-Za-z0-9][A-Za-z0-9._@+-]*; the password may hold anything but
        ":" and line breaks (passwd-file)."""
        if name is None:
            name = "user%d" % next(self._counter)
            while name in self.users:
                name = "user%d" % next(self._counter)
        if password is None:
            password = "pw-" + secrets.token_urlsafe(12)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@+-]*", name):
            raise ValueError("user name %r: use [A-Za-z0-9._@+-]" % name)
        if any(c in password for c in ":\r\n\0"):
            raise ValueError("password %r: no ':' or line breaks in a passwd-file" % password)
        if name in self.users:
            raise ValueError("user %s exists" % name)
        # one passwd-file per user (see dovecot.conf.tmpl), written whole
        users = self.dir / "users"
        users.mkdir(exist_ok=True)
        tmp = write_file(users / (".new-" + name), "%s:{PLAIN}%s::::::\n" % (name, password),
                         0o644)
        os.rename(tmp, users / name)
        self.users[name] = password
        return name, password

    def maildir_path(self, user):
        """The user's Maildir (INBOX; other mailboxes are .Name below it)."""
        return self.dir / "mail" / user

    def imap(self, user, password=None, mode="tls", host="127.0.0.1"):
        """A logged-in ImapClient (password defaults to the one add_user
        chose)."""
        if password is None:
            password = self.users[user]
        return ImapClient(self, user, password, mode=mode, host=host)

    def connection(self, user, password=None, mode="tls", name="main", host=None, **overrides):
        """The keys of an imaphook connection to this server as a dict for
        Config.add_connection: mode "tls" (implicit TLS, ca_file = the
        fixture's certificate), "starttls" (plain port, STARTTLS, ca_file)
        or "plain" (no TLS at all). overrides replace or, with None, remove
        keys."""
        if password is None:
            password = self.users[user]
        keys = {"name": name, "host": host or self.host}
        if mode == "tls":
            keys.update(port=self.port_tls, secure=True)
        elif mode == "starttls":
            keys.update(port=self.port_plain, secure=False, starttls=True)
        elif mode == "plain":
            keys.update(port=self.port_plain, secure=False)
        else:
            raise ValueError("mode is tls, starttls or plain, not %r" % mode)
        keys.update(username=user, password=password)
        if mode != "plain":
            keys["ca_file"] = self.cert_path
        keys.update(overrides)
        return {k: v for k, v in keys.items() if v is not None}

    # logs

    def log(self):
        """dovecot.log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self, user):
        """The lines of dovecot.log about user: logins, failed logins, mail
        processes."""
        needles = ("user=<%s>" % user, "(%s," % user, "(%s)" % user)
        return [line for line in self.log().splitlines() if any(n in line for n in needles)]

    def logins(self, user):
        """The successful-login lines of user (imap-login: Login: ...). They
        end with the security of the connection: ", TLS," after implicit TLS
        or STARTTLS, ", secured," for plain text on 127.0.0.1."""
        return [line for line in self.log_lines(user)
                if "imap-login: Info: Login: user=<%s>" % user in line]

    def wait_logins(self, user, count=1, timeout=5):
        """Waits until user has at least count login lines; returns them."""
        return wait_until(lambda: len(self.logins(user)) >= count and self.logins(user),
                          timeout, what="%d login(s) of %s in %s" % (count, user, self.log_path))


# ---------------------------------------------------------------- receiver

def webhook_key(secret):
    """The HMAC key of a Standard Webhooks secret: the base64-decoded part
    after "whsec_", else the secret's own bytes."""
    if isinstance(secret, str):
        if secret.startswith("whsec_"):
            return base64.b64decode(secret[6:])
        return secret.encode("utf-8")
    return secret


def webhook_signature(secret, msg_id, timestamp, body):
    """The "v1,<base64>" signature of a webhook request."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    signed = ("%s.%s." % (msg_id, timestamp)).encode("utf-8") + body
    digest = hmac.new(webhook_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_webhook_signature(secret, headers, body):
    """True when one of the space-separated signatures of the
    webhook-signature header is the right one (headers: lower-case names)."""
    header = headers.get("webhook-signature")
    msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not header or msg_id is None or ts is None:
        return False
    expected = webhook_signature(secret, msg_id, ts, body)
    return any(hmac.compare_digest(sig, expected) for sig in header.split())


class Response:
    """How the Receiver answers one request: status, extra headers (a dict
    or pairs, e.g. {"Retry-After": "2"}), body; delay seconds before
    answering; hang=True never answers (until the receiver stops);
    drop=True closes the connection without an answer; close=True closes it
    after the answer."""

    def __init__(self, status=200, headers=None, body=b"", delay=0.0, hang=False,
                 drop=False, close=False):
        self.status, self.delay, self.hang, self.drop, self.close = status, delay, hang, drop, close
        self.headers = list(headers.items() if isinstance(headers, dict) else headers or ())
        self.body = body.encode("utf-8") if isinstance(body, str) else body

    def __repr__(self):
        return "Response(%s)" % self.status


class ReceivedRequest:
    """One request the Receiver got."""

    def __init__(self, method, path, header_list, body, received_at, connection, signature_ok):
        self.method = method
        self.path = path
        self.header_list = header_list               # [(name, value)] as sent
        self.headers = {k.lower(): v for k, v in header_list}   # last one wins
        self.body = body                             # bytes
        self.time = received_at                      # time.time() when complete
        self.connection = connection                 # number of the TCP connection
        self.signature_ok = signature_ok             # None without a secret
        self.status = None                           # the status it was answered with

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def ok(self):
        """Answered with a 2xx status."""
        return self.status is not None and 200 <= self.status < 300

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return "<%s %s %s id=%s>" % (self.method, self.path, len(self.body),
                                     self.headers.get("webhook-id"))


class Receiver:
    """A webhook receiver: HTTP/1.1 with keep-alive on 127.0.0.1:PORT.

        with harness.Receiver(secret="whsec_...") as rx:
            cfg.add_webhook("crm", rx.url())
            rx.respond(503, harness.Response(429, {"Retry-After": "1"}))  # then 200s
            ...
            reqs = rx.wait_for(3, timeout=10)
            assert all(r.signature_ok for r in reqs)

    Answers come from the queue filled by respond(), then default (200). The
    stored requests are .requests; each has signature_ok (checked with
    secret when one is given) and status (what it was answered with). port
    binds a given port (a webhook that "comes back" on its URL)."""

    def __init__(self, secret=None, default=None, port=0):
        self.secret = secret
        self._bind_port = port          # 0: any free port
        self.default = default or Response(200)
        self._queue = []
        self.requests = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._conns = set()
        self._conn_counter = itertools.count(1)
        self._server = None
        self._thread = None
        self.port = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<Receiver 127.0.0.1:%s, %d requests>" % (self.port, len(self.requests))

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.conn_number = next(receiver._conn_counter)
                with receiver._cond:
                    receiver._conns.add(self.connection)

            def finish(self):
                with receiver._cond:
                    receiver._conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

            def _body(self):
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self):
                body = self._body()
                header_list = list(self.headers.items())
                sig = None
                if receiver.secret is not None:
                    sig = verify_webhook_signature(
                        receiver.secret, {k.lower(): v for k, v in header_list}, body)
                req = ReceivedRequest(self.command, self.path, header_list, body, time.time(),
                                      self.conn_number, sig)
                with receiver._cond:
                    resp = receiver._queue.pop(0) if receiver._queue else receiver.default
                    # what the request got: None when it gets no answer
                    req.status = None if (resp.hang or resp.drop) else resp.status
                    receiver.requests.append(req)
                    receiver._cond.notify_all()
                if resp.hang:
                    receiver._stopping.wait()
                    self.close_connection = True
                    return
                if resp.delay and receiver._stopping.wait(resp.delay):
                    self.close_connection = True
                    return
                if resp.drop:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                self.send_response(resp.status)
                for name, value in resp.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(resp.body)))
                if resp.close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if resp.body:
                    self.wfile.write(resp.body)

            do_POST = do_PUT = do_GET = do_DELETE = do_PATCH = _handle

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                # a client that goes away (a killed daemon) is no news
                if not isinstance(sys.exc_info()[1], OSError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", self._bind_port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="receiver-%d" % self.port)
        self._thread.start()
        _track(self)
        return self

    def stop(self):
        """Stops serving, releases hanging answers and closes every
        connection."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._cond:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(5)
        self._server = None
        _untrack(self)

    _emergency_stop = stop

    def respond(self, *responses):
        """Queues answers for the next requests: Response objects or status
        codes."""
        with self._cond:
            for r in responses:
                self._queue.append(r if isinstance(r, Response) else Response(int(r)))

    def wait_for(self, count, timeout=10.0):
        """Waits until count requests have arrived; returns the first count.
        Raises AssertionError (listing what came) on timeout."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("receiver %s: %d request(s) after %.1f s, expected %d: %r"
                                         % (self.url(""), len(self.requests), timeout, count,
                                            self.requests))
                self._cond.wait(left)
            return list(self.requests[:count])

    def wait_idle(self, timeout=10.0):
        """Waits until every connection to the receiver has ended: once its
        client is dead, everything that client sent has been recorded."""
        def idle():
            with self._cond:
                return not self._conns
        wait_until(idle, timeout=timeout, what="the receiver's connections to end")

    def assert_quiet(self, seconds, expected=None):
        """Waits seconds and asserts that no more than expected (default:
        the current number of) requests arrived meanwhile."""
        n = len(self.requests) if expected is None else expected
        time.sleep(seconds)
        if len(self.requests) > n:
            raise AssertionError("receiver got %d request(s), expected %d: %r"
                                 % (len(self.requests), n, self.requests[n:]))

    def clear(self):
        with self._cond:
            self.requests = []

    def wait_until(self, predicate, timeout=10.0, what="condition"):
        """Waits until predicate(requests so far) is true; returns that
        value. Raises AssertionError (listing what came) on timeout."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.requests))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("receiver %s: no %s after %.1f s; %d request(s): %r"
                                         % (self.url(""), what, timeout, len(self.requests),
                                            self.requests))
                self._cond.wait(min(left, 0.5))

    def wait_for_ids(self, ids, timeout=10.0, ok_only=True):
        """Waits until a request (answered 2xx when ok_only) has arrived for
        every webhook-id in ids."""
        ids = set(ids)

        def done(reqs):
            got = {r.header("webhook-id") for r in reqs if not ok_only or r.ok}
            return ids <= got
        return self.wait_until(done, timeout, what="requests for %d id(s) %s"
                               % (len(ids), sorted(ids)[:5]))

    def ids(self, ok_only=False):
        """The webhook-id of every request so far, in arrival order (only
        those answered 2xx when ok_only)."""
        with self._cond:
            return [r.header("webhook-id") for r in self.requests
                    if not ok_only or r.ok]

    def events(self, ok_only=False):
        """The JSON bodies of the requests so far, in arrival order."""
        with self._cond:
            reqs = [r for r in self.requests if not ok_only or r.ok]
        return [r.json for r in reqs]


# ------------------------------------------------------------------ daemon

class Daemon:
    """imaphookd -c CONFIG [args] in the background, stderr collected.

        d = harness.Daemon(cfg).start(wait_for=r"ready|started")
        d.wait_for_log(r"queued .* uid=1", timeout=10)
        d.hup(); d.term()            # term() asserts exit 0 within 10 s
        print(d.log)

    stop() (also at exit) ends it: SIGTERM, then SIGKILL after 10 s. When it
    ends, its stderr is checked for sanitizer reports."""

    def __init__(self, config, *args, env=None):
        self.config_path = _config_path(config)
        self.args = [str(a) for a in args]
        self.env = env
        self.proc = None
        self.rc = None
        self.lines = []
        self._cond = threading.Condition()
        self._reader = None
        self._checked = False

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<Daemon pid=%s rc=%s %s>" % (self.pid, self.rc, self.config_path)

    @property
    def argv(self):
        conf = ["-c", str(self.config_path)] if self.config_path is not None else []
        return [str(binary("imaphookd"))] + conf + self.args

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def log(self):
        """Everything it wrote to stderr (and stdout) so far."""
        with self._cond:
            return "".join(self.lines)

    def start(self, wait_for=None, timeout=15):
        """Starts it; with wait_for (a regex), waits until a log line
        matches."""
        argv, self._wrap_log = wrap_argv(self.argv)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=project_env(self.env), start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="imaphookd-%d" % self.proc.pid)
        self._reader.start()
        _track(self)
        if wait_for is not None:
            self.wait_for_log(wait_for, timeout=timeout)
        return self

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", errors="replace"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def mark(self):
        """The number of log lines so far: pass it as since= to wait for a
        line written after this point."""
        with self._cond:
            return len(self.lines)

    def log_index(self, pattern, since=0):
        """The number of the first log line from since on that matches the
        regex pattern, or None."""
        rx = re.compile(pattern)
        with self._cond:
            return next((i for i in range(since, len(self.lines))
                         if rx.search(self.lines[i])), None)

    def wait_for_log(self, pattern, timeout=10, since=0):
        """Waits until a log line (from line number since on) matches the
        regex pattern; returns the match. Fails if the daemon exits first
        or on timeout, showing the log."""
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return m
                    i += 1
                if self.proc.poll() is not None and not self._reader.is_alive():
                    self._finish()
                    raise AssertionError("imaphookd exited (status %s) before logging /%s/:\n%s"
                                         % (self.proc.returncode, pattern, "".join(self.lines)))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("imaphookd: no log line /%s/ within %.1f s:\n%s"
                                         % (pattern, timeout, "".join(self.lines[since:])))
                self._cond.wait(min(left, 0.2))

    def signal(self, sig):
        if self.running:
            self.proc.send_signal(sig)

    def hup(self):
        """SIGHUP: reload the configuration."""
        self.signal(signal.SIGHUP)

    def wait(self, timeout=10):
        """Waits for the exit; returns the status (negative: killed by that
        signal). Raises AssertionError on timeout."""
        try:
            self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("imaphookd still running after %s s:\n%s" % (timeout, self.log))
        self._finish()
        return self.rc

    def term(self, timeout=10, expect=0):
        """SIGTERM, and asserts that it exits with status expect (None: any)
        within timeout seconds (SPEC: 10 s); returns the status."""
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if expect is not None and rc != expect:
            raise AssertionError("imaphookd exited with %s after SIGTERM, expected %s:\n%s"
                                 % (rc, expect, self.log))
        return rc

    def kill(self):
        """SIGKILL (the crash test); returns the status."""
        self.signal(signal.SIGKILL)
        return self.wait(10)

    def stop(self):
        """Ends it if it still runs (SIGTERM, SIGKILL after 10 s) and checks
        its log for sanitizer reports."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._finish()

    def _emergency_stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(10)
        _untrack(self)

    def _finish(self):
        """After the exit: collects the rest of the log, checks sanitizers."""
        if self._reader is not None:
            self._reader.join(10)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        self.rc = self.proc.returncode
        _untrack(self)
        if not self._checked:
            self._checked = True
            check_sanitizers("imaphookd -c %s" % self.config_path,
                             self.rc, self.log)
            check_wrapper("imaphookd -c %s" % self.config_path, self.rc,
                          getattr(self, "_wrap_log", None))

    @staticmethod
    def run(config, *args, timeout=60, env=None, stdin=None):
        """Runs `imaphookd -c CONFIG ARGS...` to completion (e.g. --once,
        --check-config) and returns its Result."""
        argv = [binary("imaphookd")]
        path = _config_path(config)
        if path is not None:
            argv += ["-c", path]
        return run_program(argv + list(args), stdin=stdin, timeout=timeout, env=env)

    @classmethod
    def once(cls, config, timeout=60, env=None):
        """`imaphookd -c CONFIG --once`: one poll of every trigger, deliver,
        exit. Returns the Result."""
        return cls.run(config, "--once", timeout=timeout, env=env)

    @classmethod
    def check_config(cls, config, timeout=30):
        """`imaphookd -c CONFIG --check-config`; returns the Result."""
        return cls.run(config, "--check-config", timeout=timeout)



# ------------------------------------------------------- daemon test tools

def new_webhook_secret():
    """A fresh Standard Webhooks secret, "whsec_<base64 of 24 bytes>"."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def http_get(port, path, token=None, timeout=10):
    """GET http://127.0.0.1:PORT/PATH -> (status, headers dict with lower-case
    names, body bytes)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


_METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"\s*,?')


class Metrics:
    """A parsed Prometheus text exposition: samples {(name, frozenset of
    (label, value)): float} and the # TYPE of each family."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(None, 3)
                self.types[name] = typ
                continue
            if not line.strip() or line.startswith("#"):
                continue
            m = _METRIC_RE.match(line)
            if m is None:
                raise AssertionError("not a Prometheus sample line: %r" % line)
            labels = {}
            rest = m.group(2) or ""
            pos = 0
            while pos < len(rest):
                lm = _LABEL_RE.match(rest, pos)
                if lm is None:
                    raise AssertionError("bad labels in %r" % line)
                labels[lm.group(1)] = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n"
                                             else x.group(1), lm.group(2))
                pos = lm.end()
            self.samples[(m.group(1), frozenset(labels.items()))] = float(m.group(3))

    def get(self, name, default=None, **labels):
        """The value of the sample name{labels} (labels exactly), or
        default."""
        return self.samples.get((name, frozenset(labels.items())), default)

    def names(self):
        return {name for name, _ in self.samples}

    def __repr__(self):
        return "<Metrics %d samples>" % len(self.samples)


class Api:
    """A client of imaphookd's HTTP API on 127.0.0.1:port."""

    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def get(self, path, timeout=10):
        return http_get(self.port, path, token=self.token, timeout=timeout)

    def healthz(self):
        """(HTTP status, parsed JSON) of GET /healthz."""
        status, _, body = self.get("/healthz")
        return status, json.loads(body.decode("utf-8"))

    def trigger(self, name):
        """The /healthz entry of trigger name (and the HTTP status)."""
        status, doc = self.healthz()
        for t in doc["triggers"]:
            if t["name"] == name:
                return status, t
        raise AssertionError("no trigger %s in /healthz: %r" % (name, doc))

    def metrics(self):
        status, headers, body = self.get("/metrics")
        if status != 200:
            raise AssertionError("GET /metrics: HTTP %s %r" % (status, body[:300]))
        return Metrics(body.decode("utf-8"))

    def wait_metric(self, name, value, timeout=10, **labels):
        """Waits until the sample name{labels} equals value; returns that
        Metrics. (A receiver records a request before the daemon reads the
        answer: counters of deliveries lag a little behind.)"""
        def check():
            m = self.metrics()
            return m.get(name, **labels) == value and m
        return wait_until(check, timeout=timeout, what="%s{%s} == %s" % (
            name, ",".join("%s=%s" % kv for kv in sorted(labels.items())), value))

    def polls(self, trigger, result="ok"):
        """imaphook_polls_total{trigger, result}, 0 when absent."""
        return self.metrics().get("imaphook_polls_total", 0, trigger=trigger, result=result)

    def wait_polls(self, trigger, more=2, timeout=15, result="ok"):
        """Waits until trigger (a name, or a list of names: each of them)
        has completed `more` polls with result after this call (a poll that
        had started may count as the first)."""
        names = [trigger] if isinstance(trigger, str) else list(trigger)

        def counts():
            m = self.metrics()
            return [m.get("imaphook_polls_total", 0, trigger=n, result=result) for n in names]
        start = counts()
        return wait_until(lambda: all(c >= s + more for c, s in zip(counts(), start)),
                          timeout=timeout,
                          what="%d more %s poll(s) of %s" % (more, result, ", ".join(names)))


class ImapGate:
    """A TcpProxy to a plain-text IMAP port that, once armed, stops passing
    the server's answers on the first connection where the client then
    sends a command matching pattern (a bytes regex, e.g. rb" UID FETCH "),
    until release(): that command stays in flight for as long as a test
    needs (to stop or reload the daemon in the middle of a poll).

        gate = harness.ImapGate(dovecot.host, dovecot.port_plain, rb" UID FETCH ").start()
        cfg.connection("main").update(port=gate.port)     # secure = false
        gate.arm(); ...append...; gate.wait_held()
    """

    def __init__(self, host, port, pattern):
        self.pattern = re.compile(pattern)
        self._armed = threading.Event()
        self._held = threading.Event()
        self._blocked = threading.Event()
        self._released = threading.Event()
        self.proxy = TcpProxy(host, port, on_client=self._on_client, on_server=self._on_server)
        self.port = None

    def start(self):
        self.proxy.start()
        self.port = self.proxy.port
        return self

    def stop(self):
        self._released.set()
        self.proxy.stop()

    def arm(self):
        self._released.clear()
        self._held.clear()
        self._blocked.clear()
        self._armed.set()

    def wait_held(self, timeout=15):
        wait_until(self._held.is_set, timeout=timeout,
                   what="a command matching %r through the gate" % self.pattern.pattern)

    def wait_blocked(self, timeout=15):
        """Waits until the server's first answer after the held command
        has reached the gate (and is held there)."""
        wait_until(self._blocked.is_set, timeout=timeout,
                   what="the server's answer to %r at the gate" % self.pattern.pattern)

    def release(self):
        self._armed.clear()
        self._released.set()

    def _on_client(self, data, conn):
        if self._armed.is_set() and not self._held.is_set() and self.pattern.search(data):
            conn["hold"] = True
            self._held.set()

    def _on_server(self, data, conn):
        if conn.get("hold"):
            self._blocked.set()
            self._released.wait(60)
            conn["hold"] = False


class QueuedEvent:
    """One event waiting in the outbox: name "<key>.json" (the key as the
    daemon writes it, "%08x-%010u" of epoch and UID), queue (webhook,
    trigger) and its body."""

    def __init__(self, webhook, trigger, key, body):
        self.webhook, self.trigger, self.key, self.body = webhook, trigger, key, body
        self.name = key + ".json"

    def read_bytes(self):
        return self.body

    def read_text(self):
        return self.body.decode()

    def __repr__(self):
        return "QueuedEvent(%s/%s/%s)" % (self.webhook, self.trigger, self.key)


SEGMENT_HEADER = re.compile(rb"([PD]) ([0-9a-f]{8}-[0-9]{10}) ([0-9]{10})\n")


def read_segment(path):
    """The records of one outbox segment file (common/outbox.h):
    [(state, key, body)] in file order; stops at a bad record."""
    data, records, off = Path(path).read_bytes(), [], 0
    while off < len(data):
        m = SEGMENT_HEADER.match(data, off)
        if not m:
            break
        start = m.end()
        end = start + int(m.group(3))
        if end >= len(data) or data[end:end + 1] != b"\n":
            break
        records.append((m.group(1).decode(), m.group(2).decode(), data[start:end]))
        off = end + 1
    return records


def queued_files(state_dir, webhook="*", trigger="*"):
    """The events waiting in state_dir/outbox/WEBHOOK/TRIGGER/ (segment
    files, and single-event "<key>.json" files of the layout before them),
    read the way the daemon loads them: per key the record written last
    wins, and only pending ones count. Sorted by (webhook, trigger, key),
    that is, in delivery order per queue. A file the daemon removes while
    this reads it held nothing pending (it goes with its last delivery)."""
    out = []
    for qdir in sorted(Path(state_dir).glob("outbox/%s/%s" % (webhook, trigger))):
        try:
            names = sorted(qdir.iterdir()) if qdir.is_dir() else []
        except FileNotFoundError:
            continue
        latest = {}
        for f in names:
            try:
                if re.fullmatch(r"[0-9a-f]{16}\.seg", f.name):
                    for state, key, body in read_segment(f):
                        latest[key] = (state, body)
                elif re.fullmatch(r"[0-9a-f]{8}-[0-9]{10}\.json", f.name):
                    latest.setdefault(f.name[:-5], ("P", f.read_bytes()))
            except FileNotFoundError:
                continue
        for key in sorted(latest):
            state, body = latest[key]
            if state == "P":
                out.append(QueuedEvent(qdir.parent.name, qdir.name, key, body))
    return out


def dead_letters(state_dir, webhook="*", trigger="*"):
    """The dead letters in state_dir/dead/WEBHOOK/TRIGGER/*.json, sorted."""
    return sorted(Path(state_dir).glob("dead/%s/%s/*.json" % (webhook, trigger)))


def trigger_state(state_dir, trigger):
    """The parsed state_dir/triggers/TRIGGER.json, or None."""
    try:
        return json.loads((Path(state_dir) / "triggers" / (trigger + ".json")).read_text())
    except FileNotFoundError:
        return None


class TcpProxy:
    """A plain TCP relay 127.0.0.1:port -> target, for watching and pausing
    a client's conversation with a server (plain-text IMAP: secure = false).

    on_client(data, conn) and on_server(data, conn) are called in the relay
    threads with each chunk before it is forwarded; conn is a per-connection
    dict ("number" and anything the hooks keep there). A hook may block (the
    chunk waits) and returns nothing or the bytes to forward instead."""

    def __init__(self, target_host, target_port, on_client=None, on_server=None):
        self.target = (target_host, target_port)
        self.on_client, self.on_server = on_client, on_server
        self.port = None
        self.connections = 0
        self._listener = None
        self._socks = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = None
        self.errors = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="proxy-%d" % self.port)
        self._thread.start()
        _track(self)
        return self

    def _accept(self):
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError as e:
                self.errors.append("connect %s:%d: %s" % (self.target + (e,)))
                client.close()
                continue
            with self._lock:
                self.connections += 1
                conn = {"number": self.connections}
                self._socks.update((client, upstream))
            for src, dst, hook in ((client, upstream, "on_client"),
                                   (upstream, client, "on_server")):
                threading.Thread(target=self._pump, args=(src, dst, hook, conn),
                                 daemon=True).start()

    def _pump(self, src, dst, hook_name, conn):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                hook = getattr(self, hook_name)
                if hook is not None:
                    try:
                        out = hook(data, conn)
                    except Exception as e:          # shown by the test
                        self.errors.append("%s: %r" % (hook_name, e))
                        out = None
                    if out is not None:
                        data = out
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self._stopping = True
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            socks = list(self._socks)
            self._socks.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        _untrack(self)

    _emergency_stop = stop

# ---------------------------------------------------------------- test case

class IntegrationTestCase(unittest.TestCase):
    """unittest.TestCase with assertions that show a program's command line
    and output when they fail, and helpers that clean up after the test."""

    maxDiff = None

    def assertExit(self, result, code, msg=None):
        """result.rc == code, else fail showing the run."""
        if result.rc != code:
            self.fail("%sexpected exit status %s\n%s"
                      % (msg + ": " if msg else "", code, result.describe()))

    def assertJsonResult(self, result, msg=None):
        """Exit status 0 and a JSON document on stdout; returns it."""
        self.assertExit(result, 0, msg)
        if result.json is None:
            self.fail("%sstdout is not JSON (%s)\n%s"
                      % (msg + ": " if msg else "", result._json_error, result.describe()))
        return result.json

    def assertStderrMatches(self, result, pattern, flags=re.I):
        if not re.search(pattern, result.stderr, flags):
            self.fail("stderr does not match /%s/\n%s" % (pattern, result.describe()))

    def cli(self, config, *args, **kw):
        return run_cli(config, *args, **kw)

    def new_config(self, **settings):
        return Config(**settings)

    def tmpdir(self, prefix="t"):
        return make_tmpdir(prefix)

    def start_receiver(self, **kw):
        """A started Receiver, stopped after the test."""
        rx = Receiver(**kw).start()
        self.addCleanup(rx.stop)
        return rx

    def start_daemon(self, config, *args, wait_for=None, timeout=15, env=None):
        """A started Daemon, stopped (and sanitizer-checked) after the
        test."""
        d = Daemon(config, *args, env=env)
        self.addCleanup(d.stop)
        return d.start(wait_for=wait_for, timeout=timeout)


class DaemonTestCase(IntegrationTestCase):
    """Base of the imaphookd tests. The test module sets `server` (a started
    Dovecot) on its classes; every test gets its own user (self.user,
    self.password) and an imaplib client on it (self.imap), so mailboxes
    never leak between tests.

        cfg = self.make_config()               # connection "main", API on
        rx = self.receiver()                   # signed, stopped after the test
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)               # waits for "started"
        self.api.wait_polls("t")               # /metrics: two polls done
    """

    server = None           # a started Dovecot
    imap_mode = "tls"       # how imaphookd connects (Dovecot.connection modes)
    # short retries, so that recoveries happen within a test's patience
    config_defaults = {"poll_backoff_max": 2, "auth_backoff_max": 2,
                       "webhook_backoff_max": 2}

    def setUp(self):
        if self.server is None:
            raise AssertionError("%s.server is not set: start a Dovecot in setUpModule"
                                 % type(self).__name__)
        self.user, self.password = self.server.add_user()
        self.imap = self.server.imap(self.user)
        self.addCleanup(self.imap.close)
        self.api = None

    def make_config(self, api=True, mode=None, max_connections=None, **settings):
        """A Config with connection "main" to this test's user (with
        max_connections when given) and, unless api is false, the API on a
        free port (self.api is its client)."""
        values = dict(self.config_defaults)
        values.update(settings)
        cfg = Config(**values)
        cfg.add_connection(**self.server.connection(self.user, mode=mode or self.imap_mode,
                                                    max_connections=max_connections))
        if api:
            self.api = Api(cfg.enable_api())
        return cfg

    def receiver(self, secret=True, **kw):
        """A started Receiver (with a fresh secret unless secret is false or
        given), stopped after the test."""
        if secret is True:
            secret = new_webhook_secret()
        return self.start_receiver(secret=secret or None, **kw)

    @staticmethod
    def add_hook(cfg, name, rx, **keys):
        """Adds webhook name posting to receiver rx, signed with its
        secret."""
        return cfg.add_webhook(name, rx.url(), secret=rx.secret, **keys)

    def run_daemon(self, cfg, *args, env=None):
        """Writes cfg and starts imaphookd on it; returns the Daemon once it
        logged that it started."""
        cfg.write()
        return self.start_daemon(cfg, *args, env=env, wait_for=r"imaphookd \S+ started")

    def once(self, cfg, expect=0, timeout=60):
        """imaphookd --once on cfg; asserts its exit status; returns the
        Result."""
        cfg.write()
        result = Daemon.once(cfg, timeout=timeout)
        self.assertExit(result, expect, "imaphookd --once")
        return result

    def uidvalidity(self, mailbox="INBOX"):
        return self.imap.status(mailbox, ("UIDVALIDITY",))["UIDVALIDITY"]

    def append(self, count, mailbox="INBOX", **kw):
        """Appends count messages (subjects "m1".., make_message(**kw)) in one
        command; returns their UIDs."""
        return self.imap.append_many(mailbox, [make_message(subject="m%d" % i, **kw)
                                               for i in range(1, count + 1)])

    @staticmethod
    def event_ids(trigger, uidvalidity, uids):
        return ["%s:%d:%d" % (trigger, uidvalidity, u) for u in uids]

    def assertSigned(self, rx):
        """Every request rx got carries a valid signature."""
        bad = [r for r in rx.requests if r.signature_ok is not True]
        if bad:
            self.fail("requests without a valid signature: %r\n%s"
                      % (bad, "\n".join(str(r.header_list) for r in bad[:3])))

    def assertDeliveredExactly(self, rx, ids, msg=None):
        """The 2xx-answered requests of rx are exactly ids, in that order
        (nothing missing, nothing twice), each body's id matching its
        webhook-id header, and signed when rx has a secret."""
        got = rx.ids(ok_only=True)
        if got != list(ids):
            dupes = sorted({i for i in got if got.count(i) > 1})
            self.fail("%sdelivered %d event(s), expected %d\n  missing: %s\n  duplicates: %s\n"
                      "  unexpected: %s\n  order: %s"
                      % (msg + ": " if msg else "", len(got), len(ids),
                         sorted(set(ids) - set(got))[:10], dupes[:10],
                         sorted(set(got) - set(ids))[:10], got[:20]))
        for r in rx.requests:
            self.assertEqual(r.json["id"], r.header("webhook-id"))
        if rx.secret is not None:
            self.assertSigned(rx)
