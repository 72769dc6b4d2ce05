"""The IMAP servers of the interop tests: Dovecot 2.3, Cyrus IMAP 3.6 and
Courier-IMAP 5.0 (Debian 12), each with the interface of harness.Dovecot.

    srv = servers.Courier.start_new()        # two free 127.0.0.1 ports
    user, password = srv.add_user()
    with srv.imap(user) as imap:              # InteropImapClient, logged in
        imap.create(srv.path("Archive", "2026"))     # "INBOX.Archive.2026"
    cfg.add_connection(**srv.connection(user, mode="starttls"))
    srv.stop()

Every class has: start_new(), start(), stop(), restart(), running, host,
port_tls, port_plain, cert_path, add_user(), imap(), connection(), log(),
log_lines(user), logins(user), wait_logins(user), and what the tests need to
know about the server:

- name: "dovecot", "cyrus", "courier"; title: "Dovecot 2.3" etc.
- prefix, delimiter: the personal namespace as the server's NAMESPACE
  reports it ("" and "/" for Dovecot and Cyrus in its alternate namespace,
  "INBOX." and "." for Courier), and path(*parts), which builds a mailbox
  path the way that server lists it: path("Archive", "2026") is
  "Archive/2026" on Dovecot and Cyrus, "INBOX.Archive.2026" on Courier.
  path("INBOX") is "INBOX" everywhere.
- CAPS: the capabilities imaphook cares about, True or False, as the server
  advertises them after login (a test checks that they are still true).
- push: what mode = "idle" uses there when there are more mailboxes than
  spare connections: "notify" or "idle" (with few mailboxes, IDLE).
- special_use: {path: special-use flag} of the mailboxes every user has.

Cyrus and Courier conflict with Dovecot as Debian packages: `make
deps-interop` (tests/fixtures/install-interop-imap.sh) unpacks them under
/opt/interop-imap and installs their dependencies. Both need root; Courier
runs in a private mount namespace (unshare). See tests/fixtures/start-*.sh.

servers.selected() is the list of server classes a run covers:
IMAPHOOK_INTEROP_SERVERS (e.g. "cyrus courier"; "all" = the three). Unset,
the interop suites hold no tests: `make check-integration` leaves them out
and `make check-interop` runs them against all three.
"""

import os
import re
import secrets
import subprocess
import unittest
from pathlib import Path

from . import harness


class InteropImapClient(harness.ImapClient):
    """harness.ImapClient that copes with servers lacking LITERAL+,
    MULTIAPPEND or CONDSTORE (Courier), and tells the personal namespace."""

    def __init__(self, server, user, password, mode="tls", host="127.0.0.1", timeout=30):
        super().__init__(server, user, password, mode=mode, host=host, timeout=timeout)
        self.server = server
        self._caps = None

    @property
    def caps(self):
        if self._caps is None:
            self._caps = self.capabilities()
        return self._caps

    def status(self, mailbox, items=None):
        """STATUS -> {item: int}; by default MESSAGES UNSEEN UIDNEXT
        UIDVALIDITY, and HIGHESTMODSEQ where the server has CONDSTORE.
        With a mailbox selected, NOOP first: Courier answers STATUS of the
        selected mailbox from what the session last saw."""
        if self.selected is not None:
            self.noop()
        if items is None:
            items = ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY")
            if "CONDSTORE" in self.caps:
                items += ("HIGHESTMODSEQ",)
        return super().status(mailbox, items)

    def append_many(self, mailbox, messages, flags=()):
        """As harness.ImapClient.append_many where the server has LITERAL+
        and MULTIAPPEND; elsewhere one APPEND per message."""
        if {"LITERAL+", "MULTIAPPEND"} <= self.caps:
            return super().append_many(mailbox, messages, flags)
        return [self.append(mailbox, m, flags=flags) for m in messages]

    def subscribed(self):
        """The set of subscribed mailbox names: LSUB, without the entries
        flagged \\Noselect (RFC 3501 6.3.9: a parent that is listed only
        because something below it is subscribed; Courier lists them for
        "*" too)."""
        return {m.name for m in self._parse_list(self._check("LSUB", *self.imap.lsub('""', '"*"')))
                if "\\noselect" not in {f.lower() for f in m.flags}}

    def namespace(self):
        """(prefix, delimiter) of the first personal namespace."""
        data = self.command("NAMESPACE")
        m = re.match(rb'\(\("((?:\\.|[^"\\])*)" (?:"((?:\\.|[^"\\])*)"|NIL)', data[0] or b"")
        if m is None:
            raise harness.ImapError("cannot parse NAMESPACE answer %r" % (data,))
        return (m.group(1).decode(), m.group(2).decode() if m.group(2) is not None else None)

    def noop(self):
        self._check("NOOP", *self.imap.noop())


class ServerTraits:
    """What the tests know about a server; see the module's doc."""

    name = None
    title = None
    prefix = ""
    delimiter = "/"
    push = "idle"
    CAPS = {}
    special_use = {}

    @classmethod
    def path(cls, *parts):
        """A mailbox path below the personal namespace, as the server lists
        it (UTF-8): the parts joined with the delimiter, after the prefix."""
        if len(parts) == 1 and parts[0].upper() == "INBOX":
            return "INBOX"
        return cls.prefix + cls.delimiter.join(parts)

    def connection(self, user, password=None, mode="tls", name="main", host=None, **overrides):
        """The keys of an imaphook connection to this server, as
        harness.Dovecot.connection: mode "tls", "starttls" or "plain"."""
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

    def imap(self, user, password=None, mode="tls", host="127.0.0.1"):
        """A logged-in InteropImapClient."""
        if password is None:
            password = self.users[user]
        return InteropImapClient(self, user, password, mode=mode, host=host)

    def wait_logins(self, user, count=1, timeout=5):
        """Waits until user has at least count logins; returns them."""
        return harness.wait_until(lambda: len(self.logins(user)) >= count and self.logins(user),
                                  timeout, what="%d login(s) of %s on %s"
                                  % (count, user, self.title))


class Dovecot(ServerTraits, harness.Dovecot):
    """The project's Dovecot fixture (harness.Dovecot), with the traits."""

    name = "dovecot"
    title = "Dovecot 2.3"
    prefix = ""
    delimiter = "/"
    push = "notify"
    CAPS = {"IDLE": True, "NOTIFY": True, "UIDPLUS": True, "MOVE": True, "LITERAL+": True,
            "CONDSTORE": True, "SPECIAL-USE": True, "LIST-EXTENDED": True, "ESEARCH": True,
            "BINARY": True, "UNSELECT": True, "NAMESPACE": True, "MULTIAPPEND": True,
            "UTF8=ACCEPT": False}
    special_use = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash"}


class ScriptServer(ServerTraits):
    """A server run by tests/fixtures/start-NAME.sh and stop-NAME.sh, with
    users added by add-user-NAME.sh."""

    host = "127.0.0.1"

    def __init__(self, directory=None):
        self.dir = Path(directory) if directory is not None else harness.make_tmpdir(self.name)
        self.port_tls = harness.free_port()
        self.port_plain = harness.free_port()
        self.pid = None
        self.users = {}
        self._counter = 1
        self._started_once = False

    @classmethod
    def start_new(cls):
        s = cls()
        s.start()
        return s

    def __repr__(self):
        return "<%s %s pid=%s ports %d/%d>" % (type(self).__name__, self.dir, self.pid,
                                               self.port_tls, self.port_plain)

    @property
    def running(self):
        return self.pid is not None

    @property
    def cert_path(self):
        return self.dir / "cert.pem"

    def _script(self, what):
        return harness.FIXTURES / ("%s-%s.sh" % (what, self.name))

    def installed(self):
        """None when the server can run here, else why not."""
        raise NotImplementedError

    def start(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("the %s fixture runs as root" % self.title)
        missing = self.installed()
        if missing:
            raise AssertionError("%s: %s (run `make deps-interop`)" % (self.title, missing))
        if self.running:
            return self
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin"
        users = ["%s:%s" % (u, p) for u, p in self.users.items()]
        for attempt in range(3):
            p = subprocess.run([str(self._script("start")), str(self.dir), str(self.port_tls),
                                str(self.port_plain)] + users,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=90, env=env)
            m = re.search(r"^PID (\d+)$", p.stdout, re.M)
            if p.returncode == 0 and m is not None:
                break
            # someone took a port since free_port() chose it
            if self._started_once or not re.search(r"did not come up|in use", p.stderr):
                break
            self.port_tls, self.port_plain = harness.free_port(), harness.free_port()
        if p.returncode != 0 or m is None:
            raise AssertionError("%s %s failed (exit %d):\n%s%s"
                                 % (self._script("start").name, self.dir, p.returncode,
                                    p.stdout, p.stderr))
        self.pid = int(m.group(1))
        self._started_once = True
        harness._track(self)
        return self

    def stop(self):
        """Stops the server and waits until all of its processes are gone."""
        if not self.running:
            return
        p = subprocess.run([str(self._script("stop")), str(self.dir)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        self.pid = None
        harness._untrack(self)
        if p.returncode != 0:
            raise AssertionError("%s %s failed:\n%s" % (self._script("stop").name, self.dir,
                                                         p.stdout))

    def restart(self):
        """Stops and starts again: same ports, users, mail and certificate."""
        self.stop()
        self.start()

    def _emergency_stop(self):
        self.stop()

    def add_user(self, name=None, password=None):
        """Adds a user while the server runs; returns (user, password).
        Default: a fresh name and a random password."""
        if name is None:
            while True:
                name = "user%d" % self._counter
                self._counter += 1
                if name not in self.users:
                    break
        if password is None:
            password = "pw-" + secrets.token_urlsafe(12)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ValueError("user name %r: use [A-Za-z0-9._-]" % name)
        if any(c in password for c in "\r\n\0"):
            raise ValueError("password %r: no line breaks" % password)
        if name in self.users:
            raise ValueError("user %s exists" % name)
        p = subprocess.run([str(self._script("add-user")), str(self.dir), name, password],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=30)
        if p.returncode != 0:
            raise AssertionError("%s %s failed:\n%s" % (self._script("add-user").name, name,
                                                         p.stdout))
        self.users[name] = password
        return name, password


class Cyrus(ScriptServer):
    """Cyrus IMAP 3.6 in its alternate namespace (personal mailboxes at the
    top level, separator "/"), sasldb users, INBOX created at first login.
    Cyrus logs only to syslog; what the tests read instead are its protocol
    transcripts (telemetry), one file per session of a user below
    DIR/lib/log/USER/, named imaps-PID (implicit TLS port) or imap-PID
    (plain port). They start after the login."""

    name = "cyrus"
    title = "Cyrus IMAP 3.6"
    prefix = ""
    delimiter = "/"
    push = "idle"
    CAPS = {"IDLE": True, "NOTIFY": False, "UIDPLUS": True, "MOVE": True, "LITERAL+": True,
            "CONDSTORE": True, "SPECIAL-USE": True, "LIST-EXTENDED": True, "ESEARCH": True,
            "BINARY": True, "UNSELECT": True, "NAMESPACE": True, "MULTIAPPEND": True,
            "UTF8=ACCEPT": False}
    special_use = {}

    def installed(self):
        if not os.access("/usr/lib/cyrus/bin/master", os.X_OK):
            return "cyrus-common is not installed"
        if not any(os.access(p, os.X_OK) for p in (
                os.environ.get("CYRUS_BIN", "/nonexistent") + "/imapd",
                "/usr/lib/cyrus/bin/imapd",
                "/opt/interop-imap/cyrus-imapd/usr/lib/cyrus/bin/imapd")):
            return "no Cyrus imapd (package cyrus-imapd, unpacked)"
        return None

    def sessions(self, user):
        """{file name: transcript} of user's sessions, oldest first."""
        d = self.dir / "lib" / "log" / user
        out = {}
        try:
            names = sorted(os.listdir(d), key=lambda n: (d / n).stat().st_mtime)
        except FileNotFoundError:
            return out
        for n in names:
            try:
                out[n] = (d / n).read_text(encoding="utf-8", errors="replace")
            except OSError:
                pass
        return out

    def log(self):
        """Every transcript (each headed by its file name) and master.log."""
        parts = []
        base = self.dir / "lib" / "log"
        for user in sorted(os.listdir(base)) if base.is_dir() else ():
            for name, text in self.sessions(user).items():
                parts.append("==> %s/%s <==\n%s" % (user, name, text))
        try:
            parts.append((self.dir / "master.log").read_text(errors="replace"))
        except FileNotFoundError:
            pass
        return "\n".join(parts)

    def log_lines(self, user):
        return [line for text in self.sessions(user).values() for line in text.splitlines()]

    def logins(self, user):
        """One entry per session of user: "imaps-PID" (implicit TLS) or
        "imap-PID" (plain port, with or without STARTTLS)."""
        return list(self.sessions(user))


class Courier(ScriptServer):
    """Courier-IMAP 5.0 with courier-authlib's userdb and Maildirs, in a
    private mount namespace. Personal namespace "INBOX." with separator ".".
    Logs: DIR/log/imapd.log (plain port), DIR/log/imapd-ssl.log (implicit
    TLS port): "INFO: LOGIN, user=U, ..." and LOGOUT lines."""

    name = "courier"
    title = "Courier-IMAP 5.0"
    prefix = "INBOX."
    delimiter = "."
    push = "idle"
    CAPS = {"IDLE": True, "NOTIFY": False, "UIDPLUS": True, "MOVE": False, "LITERAL+": False,
            "CONDSTORE": False, "SPECIAL-USE": False, "LIST-EXTENDED": False,
            "ESEARCH": False, "BINARY": False, "UNSELECT": False, "NAMESPACE": True,
            "MULTIAPPEND": False, "UTF8=ACCEPT": True}
    special_use = {}

    def installed(self):
        root = os.environ.get("COURIER_IMAP_ROOT")
        roots = [root] if root else ["", "/opt/interop-imap/courier-imap"]
        if not any(os.access(r + "/usr/lib/courier/courier/imaplogin", os.X_OK) for r in roots):
            return "no Courier imaplogin (package courier-imap, unpacked)"
        for prog in ("/usr/sbin/couriertcpd", "/usr/lib/courier/courier-authlib/authdaemond",
                     "/usr/sbin/makeuserdb"):
            if not os.access(prog, os.X_OK):
                return "%s is missing" % prog
        return None

    def log(self):
        parts = []
        for name in ("imapd-ssl.log", "imapd.log", "authdaemond.log", "ns.log"):
            try:
                parts.append((self.dir / "log" / name).read_text(errors="replace"))
            except FileNotFoundError:
                pass
        return "".join(parts)

    def log_lines(self, user):
        needle = "user=%s," % user
        return [line for line in self.log().splitlines() if needle in line]

    def logins(self, user):
        return [line for line in self.log_lines(user) if "INFO: LOGIN, user=" in line]


ALL = (Dovecot, Cyrus, Courier)
BY_NAME = {cls.name: cls for cls in ALL}


def selected():
    """The server classes IMAPHOOK_INTEROP_SERVERS asks for (empty when it
    is unset)."""
    words = os.environ.get("IMAPHOOK_INTEROP_SERVERS", "").replace(",", " ").split()
    if words == ["all"]:
        return list(ALL)
    unknown = [w for w in words if w not in BY_NAME]
    if unknown:
        raise ValueError("IMAPHOOK_INTEROP_SERVERS: unknown server(s) %s (known: %s)"
                         % (" ".join(unknown), " ".join(BY_NAME)))
    return [BY_NAME[w] for w in words]


_shared = {}


def shared(cls):
    """One running instance of server class cls for every module that asks
    (started on the first call, stopped at exit; started again if a test
    stopped it)."""
    srv = _shared.get(cls)
    if srv is None:
        srv = _shared[cls] = cls.start_new()
    elif not srv.running:
        srv.start()
    return srv


def parametrize(namespace, *bases, servers=None):
    """Makes one TestCase class per selected server from each base (a class
    whose name starts with "Interop"): InteropSearch becomes
    TestSearch_dovecot, TestSearch_cyrus..., each with server_class set.
    Puts them in namespace (a module's globals()) and takes the bases out of
    it, so that only the classes made here run. With no server selected a
    module has no tests at all.

    A base's KNOWN_BUGS, {(server name, test method name): "BUG ..."},
    marks those tests of that server's class unittest.expectedFailure (the
    text says what is wrong and is shown by -v runs in the method's doc).
    IMAPHOOK_INTEROP_STRICT=1 runs them as ordinary tests, to see how they
    fail (or that a fix made them pass)."""
    for base in bases:
        namespace.pop(base.__name__, None)
    for cls in (servers if servers is not None else selected()):
        for base in bases:
            name = "Test%s_%s" % (base.__name__[len("Interop"):], cls.name)
            attrs = {"server_class": cls, "__module__": namespace["__name__"],
                     "__qualname__": name}
            for (server, method), why in getattr(base, "KNOWN_BUGS", {}).items():
                if server == cls.name and os.environ.get("IMAPHOOK_INTEROP_STRICT") != "1":
                    attrs[method] = _known_bug(getattr(base, method), why)
            namespace[name] = type(name, (base,), attrs)


def _known_bug(func, why):
    def test(self):
        return func(self)
    test.__name__ = func.__name__
    test.__doc__ = "%s [%s]" % ((func.__doc__ or func.__name__).strip().splitlines()[0], why)
    return unittest.expectedFailure(test)


# ------------------------------------------------------------ test cases

class Recorder:
    """A harness.TcpProxy to a server's plain-text port that records what
    the client sends: lines (bytes, in order) and commands (the verbs after
    the tag, "UID MOVE" style). Only for connections without TLS."""

    def __init__(self, srv):
        self.data = []
        self.proxy = harness.TcpProxy(srv.host, srv.port_plain, on_client=self._on_client)

    def _on_client(self, data, conn):
        self.data.append(data)

    def start(self):
        self.proxy.start()
        self.port = self.proxy.port
        return self

    def stop(self):
        self.proxy.stop()

    @property
    def raw(self):
        return b"".join(self.data)

    @property
    def lines(self):
        return self.raw.split(b"\r\n")

    def commands(self):
        out = []
        for line in self.lines:
            m = re.match(rb"^[A-Za-z0-9.]+ (UID [A-Za-z]+|[A-Za-z]+)\b", line)
            if m:
                out.append(m.group(1).decode().upper())
        return out


class InteropCase(harness.IntegrationTestCase):
    """Base of the CLI interop tests: the class's server (shared by every
    module), a user per test (self.user, self.password), an independent
    client (self.imap) and a written config self.cfg with connection "main"
    (implicit TLS)."""

    server_class = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv = shared(cls.server_class)

    def setUp(self):
        self.user, self.password = self.srv.add_user()
        self.imap = self.srv.imap(self.user)
        self.addCleanup(self.imap.close)
        self.cfg = self.config()

    def config(self, mode="tls", password=None, **overrides):
        """A written Config with connection "main" for this test's user;
        overrides as for connection()."""
        cfg = harness.Config()
        cfg.add_connection(**self.srv.connection(self.user, password or self.password,
                                                 mode=mode, **overrides))
        cfg.write()
        return cfg

    def path(self, *parts):
        return self.srv.path(*parts)

    def has(self, cap):
        return cap in self.imap.caps

    def run_action(self, *args, **kw):
        return self.cli(self.cfg, *args, **kw)

    def ok(self, *args, **kw):
        """Runs the action; asserts exit 0 and JSON; returns the JSON."""
        return self.assertJsonResult(self.run_action(*args, **kw))

    def fails(self, code, *args, **kw):
        r = self.run_action(*args, **kw)
        self.assertExit(r, code)
        self.assertEqual(r.stdout, b"", "no result on failure")
        self.assertNotEqual(r.stderr.strip(), "", "a message on failure")
        return r

    def recorded(self, *args, **kw):
        """Runs the action over plain text through a Recorder; returns
        (Result, Recorder)."""
        rec = Recorder(self.srv).start()
        self.addCleanup(rec.stop)
        cfg = self.config(mode="plain", port=rec.port)
        return self.cli(cfg, *args, **kw), rec
