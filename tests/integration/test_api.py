"""imaphookd's HTTP API end to end, against a real Dovecot.

- Every action through POST /v1/actions/ACTION with a JSON object of its
  camelCase parameters, checked against the server through an independent
  imaplib client, and its JSON result compared with what `imaphook` prints
  for the same action: read-only actions run on the same mailbox; an action
  that changes something runs on twin mailboxes ("HTTP/..." for the API,
  "CLI/..." for the command line) filled identically, so that UIDs agree and
  only the paths (and UIDVALIDITY) legitimately differ. Mailbox names are
  non-ASCII throughout.
- The errors of SPEC "HTTP API": {"error":{"code","message"}} with 400 (bad
  parameters, malformed or non-object JSON), 401 (bearer token, from
  `token` and from `token_file`), 404 (unknown action, mailbox, endpoint,
  connection), 405, 409/422 (the server said NO/BAD), 413 (bodies over
  32 MiB; exactly 32 MiB is accepted), 502 (closed port, wrong password),
  and "connection" choosing among several connections.
- Robustness: 20 concurrent requests on max_connections = 2 (at most two
  IMAP logins, counted in Dovecot's log), keep-alive and pipelining,
  HTTP/1.0, huge headers and request lines, garbage, and clients that go
  away before, during and after their action; the daemon must keep serving,
  exit 0 on SIGTERM and leave no sanitizer report.
- Limits: a download stops fetching a few MiB ahead of a client that does
  not read (VmRSS and the fetches in the debug log), keeps its connection
  meanwhile and delivers every byte once read; at most 64 calls wait for a
  connection (503 "busy" beyond), none longer than the connection's timeout
  (503 "wait_timeout"); OPTIONS, TRACE, CONNECT and HEAD get framed JSON
  answers.
- /healthz (shape, 503 while a trigger fails, recovery) and /metrics (the
  SPEC metric names and labels, counters that follow one delivery).

Every test has its own Dovecot user and its own imaphookd.
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import socket
import struct
import threading
import time
import unittest

from . import harness

dovecot = None

UTC = datetime.timezone.utc
MiB = 1024 * 1024
API_MAX_BODY = 32 * MiB
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# The sanitizer options of the Makefile without leak detection, for the
# one test that provokes the known leak (see test_client_gone_mid_download_*)
NO_LEAK_CHECK = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86:"
                                 "strict_string_checks=1"}
# The sanitizer options with ASan's quarantine off (it keeps freed memory
# resident), for the test that measures the daemon's VmRSS
NO_QUARANTINE = {"ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS") or
                                  harness.SAN_ENV_DEFAULTS["ASAN_OPTIONS"])
                 + ":quarantine_size_mb=0"}
# API calls that may wait for an IMAP connection at once (daemon/api.c)
API_MAX_WAITING = 64
# download's partial fetches, as the daemon logs them at log_level debug
FETCH_RE = re.compile(r"C: \S+ UID FETCH \d+ \(BODY\.PEEK\[\]<\d+\.(\d+)>\)")


def setUpModule():
    global dovecot
    dovecot = harness.Dovecot.start_new()
    ApiTestCase.server = dovecot


def tearDownModule():
    if dovecot is not None:
        dovecot.stop()


# ------------------------------------------------------------ local helpers

def iso(dt):
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_recent(flags):
    """\\Recent belongs to one IMAP session: leave it out of comparisons."""
    return sorted(f for f in flags if f.lower() != "\\recent")


def strip_recent(doc):
    """doc with \\Recent removed from every "flags" list (the daemon's and
    the CLI's sessions each see it on different messages)."""
    if isinstance(doc, dict):
        return {k: (without_recent(v) if k == "flags" and isinstance(v, list)
                    else strip_recent(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [strip_recent(v) for v in doc]
    return doc


def swap_prefix(doc, old, new):
    """doc with every string value starting with old rewritten to start with
    new (the CLI twin's paths as the HTTP twin's)."""
    if isinstance(doc, dict):
        return {k: swap_prefix(v, old, new) for k, v in doc.items()}
    if isinstance(doc, list):
        return [swap_prefix(v, old, new) for v in doc]
    if isinstance(doc, str) and doc.startswith(old):
        return new + doc[len(old):]
    return doc


def kebab(name):
    return re.sub(r"[A-Z]", lambda m: "-" + m.group(0).lower(), name)


def cli_argv(action, params):
    """The `imaphook` arguments (and stdin) for the HTTP parameters params:
    kebab-case options, a list as repeated singulars, booleans as
    true/false, "seq" as --seq, "connection" as --connection, "message" as
    --file - with the text on stdin."""
    params = dict(params or {})
    argv, stdin = [], None
    if params.pop("seq", False):
        argv.append("--seq")
    if "connection" in params:
        argv += ["--connection", params.pop("connection")]
    argv.append(action)
    for key, value in params.items():
        if key == "message":
            argv += ["--file", "-"]
            stdin = value.encode("utf-8")
        elif key == "flags":
            for f in value:
                argv += ["--flag", f]
        elif isinstance(value, bool):
            argv += ["--" + kebab(key), "true" if value else "false"]
        else:
            argv += ["--" + kebab(key), str(value)]
    return argv, stdin


class Reply:
    """One HTTP answer: status, headers (lower-case names), body bytes."""

    def __init__(self, status, headers, body, request=""):
        self.status, self.headers, self.body, self.request = status, headers, body, request

    @property
    def ctype(self):
        return self.headers.get("content-type")

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "%s -> HTTP %s %s %r" % (self.request, self.status, self.ctype, self.body[:400])


def http_request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(),
                     "%s %s %r" % (method, path, (body or b"")[:200]))
    finally:
        conn.close()


def raw_exchange(port, data, timeout=15):
    """Sends data on a new connection and reads until the server closes it.
    Returns (bytes received, True if the server closed, False on timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass            # the server may answer and close before reading it all
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    return out, True
                out += b
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True


def parse_responses(data):
    """The HTTP responses in data: [(version, status, headers, body)],
    framed by Content-Length or chunked encoding (without either, the body
    runs to the end)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("incomplete response head: %r" % data[:300])
        lines = head.split(b"\r\n")
        version, status = lines[0].split(b" ", 2)[:2]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line.split(b";")[0], 16)
                if n == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                body += rest[:n]
                rest = rest[n + 2:]
        elif "content-length" in headers:
            n = int(headers["content-length"])
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        out.append((version.decode("latin-1"), int(status), headers, body))
        data = rest
    return out


def vmrss(pid):
    """The resident memory of process pid, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def wait_stable(value, settle=2.0, timeout=90, what="value"):
    """Polls value() until it has not changed for settle seconds; returns
    it."""
    deadline = time.monotonic() + harness.scaled(timeout)
    last, since = value(), time.monotonic()
    while time.monotonic() - since < harness.scaled(settle):
        if time.monotonic() > deadline:
            raise AssertionError("%s still changing after %s s (now %r)" % (what, timeout, last))
        time.sleep(0.25)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
    return last


def recv_all(sock):
    """Everything sock receives until the peer closes it."""
    parts = []
    while True:
        b = sock.recv(1 << 20)
        if not b:
            return b"".join(parts)
        parts.append(b)


def dechunk(data):
    """The body of one chunked HTTP response data (head included), and
    whether it ended with the last chunk."""
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"chunked" in head.lower(), head
    view, parts, pos = memoryview(rest), [], 0
    while True:
        end = rest.find(b"\r\n", pos)
        if end < 0:
            return b"".join(parts), False
        n = int(rest[pos:end].split(b";")[0], 16)
        if n == 0:
            return b"".join(parts), True
        parts.append(bytes(view[end + 2:end + 2 + n]))
        pos = end + 2 + n + 2


def rst_close(sock):
    """Closes sock with a TCP RST (SO_LINGER 0): the peer sees a reset, not
    an orderly end."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def post_bytes(action, body, extra=b""):
    return (b"POST /v1/actions/%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n"
            % (action.encode(), len(body), extra)) + body


class ApiTestCase(harness.DaemonTestCase):
    """A daemon with the API on a free port, no triggers unless a test adds
    them; helpers for requests, error checks and the CLI twin."""

    def setUp(self):
        super().setUp()
        self.port = None
        self.token = None
        self.daemon = None
        self.cfg = None

    def config(self, **settings):
        self.cfg = self.make_config(**settings)
        self.port = self.api.port
        return self.cfg

    def start(self, cfg=None, env=None):
        cfg = cfg or self.cfg
        self.daemon = self.run_daemon(cfg, env=env)
        return self.daemon

    # requests

    def request(self, method, path, body=None, headers=None, auth=True, timeout=60):
        h = dict(headers or {})
        if auth and self.token is not None:
            h.setdefault("Authorization", "Bearer " + self.token)
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        return http_request(self.port, method, path, body, h, timeout)

    def post(self, action, params=None, raw=None, **kw):
        body = raw if raw is not None else \
            json.dumps(params if params is not None else {}, ensure_ascii=False).encode("utf-8")
        return self.request("POST", "/v1/actions/" + action, body, **kw)

    def ok(self, action, params=None, **kw):
        """POSTs; asserts 200 with a JSON body; returns it."""
        r = self.post(action, params, **kw)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.ctype, "application/json", r)
        return r.json

    def assertApiError(self, r, status, code=None):
        """r is status with exactly {"error":{"code","message"}}; returns
        the error object."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.ctype, "application/json", r)
        doc = r.json
        self.assertEqual(set(doc), {"error"}, r)
        self.assertEqual(set(doc["error"]), {"code", "message"}, r)
        self.assertIsInstance(doc["error"]["code"], str, r)
        self.assertRegex(doc["error"]["code"], r"^[a-z_]+$", r)
        self.assertIsInstance(doc["error"]["message"], str, r)
        self.assertNotEqual(doc["error"]["message"].strip(), "", r)
        if code is not None:
            self.assertEqual(doc["error"]["code"], code, r)
        return doc["error"]

    def fails(self, status, action, params=None, raw=None, code=None, **kw):
        return self.assertApiError(self.post(action, params, raw=raw, **kw), status, code)

    def healthy(self):
        """GET /healthz answers 200 (the daemon still serves)."""
        r = self.request("GET", "/healthz", auth=False)
        self.assertEqual(r.status, 200, r)
        return r.json

    # the command line's answer for the same action

    def cli_run(self, action, params):
        argv, stdin = cli_argv(action, params)
        return self.cli(self.cfg, *argv, stdin=stdin)

    def cli_ok(self, action, params):
        return self.assertJsonResult(self.cli_run(action, params))

    def same_as_cli(self, action, params, normalize=strip_recent):
        """Runs action through HTTP and through the CLI with the same
        parameters on the same mailboxes (read-only actions); asserts the
        results are equal (after normalize); returns the HTTP one."""
        got = self.ok(action, params)
        cli = self.cli_ok(action, params)
        self.assertEqual(normalize(got), normalize(cli),
                         "%s %r: HTTP and CLI results differ" % (action, params))
        return got

    def twins(self, action, params, ignore=()):
        """Runs action through HTTP with params (paths under "HTTP/") and
        through the CLI with the same params moved to "CLI/"; asserts the
        results agree once the CLI's paths are moved back, but for the
        top-level keys in ignore (present in both); returns both."""
        cli_params = swap_prefix(params, "HTTP/", "CLI/")
        got = self.ok(action, params)
        cli = self.cli_ok(action, cli_params)
        a, b = strip_recent(got), strip_recent(swap_prefix(cli, "CLI/", "HTTP/"))
        for key in ignore:
            self.assertIn(key, a)
            self.assertIn(key, b)
            del a[key], b[key]
        self.assertEqual(a, b, "%s %r: HTTP and CLI results differ" % (action, params))
        return got, cli

    def big_message(self, size=None):
        """Appends a large message to a new mailbox: about 5.5 MB, or size
        bytes of base64 (random, so that no two chunks are alike). Returns
        (mailbox, raw bytes, UID)."""
        box = "Gro\u00df \u00fc"
        self.imap.create(box)
        if size is None:
            raw = harness.message_bytes(subject="gross", attachments=[
                ("g.bin", "application/octet-stream", bytes(range(256)) * 16000)])
        else:
            body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
            raw = (b"From: Sender <sender@example.org>\r\nTo: rcpt@example.org\r\n"
                   b"Subject: riesig\r\nMessage-ID: <riesig@example.org>\r\n"
                   b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
                   b"Content-Transfer-Encoding: base64\r\n\r\n") + body
        return box, raw, self.imap.append(box, raw)

    # server-side views

    def message_ids(self, mailbox):
        """{uid: Message-ID} of every message of mailbox."""
        out = {}
        for uid in self.imap.uids(mailbox):
            hdr = self.imap.fetch(mailbox, uid, "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
            out[uid] = hdr.decode().split(":", 1)[1].strip()
        return out


# -------------------------------------------------------- every action

class TestActions(ApiTestCase):
    """Every action through HTTP, checked against the server and against
    the CLI's output for the same action."""

    def setUp(self):
        super().setUp()
        self.config()
        self.start()

    def test_test_connection(self):
        doc = self.same_as_cli("test-connection", {})
        self.assertEqual(set(doc), {"ok", "capabilities"})
        self.assertIs(doc["ok"], True)
        self.assertEqual({c.upper() for c in doc["capabilities"]}, self.imap.capabilities())
        # an empty body is an empty parameter object
        r = self.post("test-connection", raw=b"")
        self.assertEqual((r.status, r.json), (200, doc), r)

    def test_list_mailboxes_and_mailbox_status(self):
        sub, unsub = "Entw\u00fcrfe/\u00c4rger & Co", "\u041f\u0440\u0438\u0432\u0435\u0442"
        self.imap.create(sub, subscribe=True)
        self.imap.create(unsub)
        uids = [self.imap.append(unsub, harness.message_bytes(subject="s%d" % i),
                                 flags=["\\Seen"] if i == 0 else ()) for i in range(3)]

        doc = self.same_as_cli("list-mailboxes", {})
        self.assertEqual(set(doc), {"mailboxes"})
        by_path = {m["path"]: m for m in doc["mailboxes"]}
        self.assertEqual(len(by_path), len(doc["mailboxes"]), "a path listed twice")
        server = self.imap.mailboxes()
        self.assertEqual(set(by_path), set(server))
        for m in doc["mailboxes"]:
            self.assertEqual(set(m), {"path", "delimiter", "flags", "specialUse", "subscribed"})
            self.assertEqual(m["delimiter"], server[m["path"]].delimiter)
        subscribed = self.imap.subscribed()
        for path in (sub, unsub, "INBOX", "Drafts"):
            self.assertEqual(by_path[path]["subscribed"], path in subscribed, path)
        self.assertIs(by_path[sub]["subscribed"], True)
        self.assertIs(by_path[unsub]["subscribed"], False)
        self.assertEqual(by_path["Sent"]["specialUse"], "\\Sent")
        self.assertEqual(by_path["Trash"]["specialUse"], "\\Trash")
        self.assertIsNone(by_path[unsub]["specialUse"])

        doc = self.same_as_cli("mailbox-status", {"mailbox": unsub})
        st = self.imap.status(unsub)
        self.assertEqual(doc, {"path": unsub, "messages": 3, "unseen": 2,
                               "uidNext": uids[-1] + 1, "uidValidity": st["UIDVALIDITY"],
                               "highestModseq": st["HIGHESTMODSEQ"]})
        # the same request with the name \u-escaped in the JSON
        r = self.post("mailbox-status", raw=json.dumps({"mailbox": unsub}).encode("ascii"))
        self.assertEqual((r.status, r.json), (200, doc), r)

    def test_search(self):
        box = "Entw\u00fcrfe/\u00c4rger & Co"
        self.imap.create(box)
        d = lambda m, day: datetime.datetime(2026, m, day, 12, 0, tzinfo=UTC)  # noqa: E731
        specs = [
            dict(subject="Meeting notes", sender="alice@example.org", to="bob@example.org",
                 body="quarterly numbers\n", flags=["\\Seen"], date=d(1, 10)),
            dict(subject="Gr\u00fc\u00dfe aus K\u00f6ln", sender=("J\u00f6rg", "joerg@example.org"),
                 to="carol@example.org", body="K\u00e4sekuchen recipe\n" + "x" * 5000 + "\n",
                 flags=["\\Flagged"], date=d(2, 15)),
            dict(subject="Invoice 42", sender="billing@example.com", to="bob@example.org",
                 body="amount due\n", flags=["\\Seen", "\\Flagged"], date=d(3, 20)),
            dict(subject="Re: Gr\u00fc\u00dfe", sender="alice@example.org", to="carol@example.org",
                 body="danke\n", flags=[], date=d(4, 1)),
            dict(subject="Spam", sender="x@example.net", to="bob@example.org",
                 body="gone\n", flags=[], date=d(4, 2)),
        ]
        msgs = []
        for n, spec in enumerate(specs):
            spec = dict(spec)
            flags, date = spec.pop("flags"), spec.pop("date")
            spec["message_id"] = "<s%d.%s@example.org>" % (n, self.user)
            spec["uid"] = self.imap.append(box, harness.message_bytes(**spec), flags=flags,
                                           internal_date=date)
            spec.update(flags=set(flags), date=date)
            msgs.append(spec)
        # UIDs and sequence numbers part ways
        self.imap.expunge(box, msgs[-1]["uid"])
        self.imap.expunge(box, msgs[0]["uid"])
        msgs = msgs[1:-1]
        keep = self.imap.append(box, harness.message_bytes(subject="late", body="l\n"),
                                internal_date=d(5, 5))
        msgs.append(dict(subject="late", sender=("Sender", "sender@example.org"),
                         to="receiver@example.org", body="l\n", flags=set(), date=d(5, 5),
                         uid=keep, message_id=None))
        all_uids = self.imap.uids(box)
        self.assertEqual(all_uids, [m["uid"] for m in msgs])
        attrs = self.imap.attributes(box)
        sizes = sorted(a["size"] for a in attrs.values())
        u = all_uids

        cases = [
            ({}, lambda m: True),
            ({"subject": "Gr\u00fc\u00dfe"}, lambda m: "Gr\u00fc\u00dfe" in m["subject"]),
            ({"text": "K\u00e4sekuchen"}, lambda m: "K\u00e4sekuchen" in m["body"]),
            ({"from": "J\u00f6rg"}, lambda m: m["sender"] == ("J\u00f6rg", "joerg@example.org")),
            ({"from": "alice@example.org", "to": "carol"},
             lambda m: m["sender"] == "alice@example.org" and m["to"] == "carol@example.org"),
            ({"seen": "read"}, lambda m: "\\Seen" in m["flags"]),
            ({"seen": "unread"}, lambda m: "\\Seen" not in m["flags"]),
            ({"seen": "all"}, lambda m: True),
            ({"flagged": True}, lambda m: "\\Flagged" in m["flags"]),
            ({"flagged": False, "seen": "unread"},
             lambda m: not m["flags"] & {"\\Flagged", "\\Seen"}),
            ({"since": "2026-02-15", "before": "2026-04-01"},
             lambda m: datetime.date(2026, 2, 15) <= m["date"].date() < datetime.date(2026, 4, 1)),
            ({"larger": sizes[1]}, lambda m: attrs[m["uid"]]["size"] > sizes[1]),
            ({"smaller": sizes[1]}, lambda m: attrs[m["uid"]]["size"] < sizes[1]),
            ({"range": "%d:%d" % (u[1], u[2])}, lambda m: u[1] <= m["uid"] <= u[2]),
            ({"range": "*"}, lambda m: m["uid"] == u[-1]),
            ({"range": "%d:*" % (u[-1] + 5)}, lambda m: False),
            ({"limit": 2}, lambda m: m["uid"] in u[-2:]),
            ({"limit": 1, "flagged": True}, lambda m: m["uid"] == max(
                x["uid"] for x in msgs if "\\Flagged" in x["flags"])),
            ({"range": "2:3", "seq": True}, lambda m: u.index(m["uid"]) + 1 in (2, 3)),
            ({"range": "1,4", "seq": True, "seen": "unread"},
             lambda m: u.index(m["uid"]) + 1 in (1, 4) and "\\Seen" not in m["flags"]),
            ({"subject": "nothing like this"}, lambda m: False),
        ]
        for params, predicate in cases:
            with self.subTest(params=params):
                params = dict(params, mailbox=box)
                doc = self.same_as_cli("search", params)
                self.assertEqual(set(doc), {"messages"})
                want = [m for m in msgs if predicate(m)]
                self.assertEqual([m["uid"] for m in doc["messages"]], [m["uid"] for m in want])
                for got, m in zip(doc["messages"], want):
                    self.assertEqual(set(got), {"uid", "seq", "flags", "size", "internalDate",
                                                "envelope"})
                    self.assertEqual(got["seq"], u.index(m["uid"]) + 1)
                    self.assertEqual(without_recent(got["flags"]), sorted(m["flags"]))
                    self.assertEqual(got["size"], attrs[m["uid"]]["size"])
                    self.assertEqual(got["internalDate"], iso(m["date"]))
                    self.assertEqual(got["envelope"]["subject"], m["subject"])
                    if m["message_id"]:
                        self.assertEqual(got["envelope"]["messageId"], m["message_id"])
        # searching sets no flag
        self.assertEqual({k: v["flags"] for k, v in self.imap.attributes(box).items()},
                         {k: v["flags"] for k, v in attrs.items()})

    def test_download(self):
        box = "Anh\u00e4nge \u00fc"
        self.imap.create(box)
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\x00\r\n\xff"
        csv = "Name;Stadt\r\nJ\u00f6rg;K\u00f6ln\r\n".encode("utf-8")
        big = bytes((i * 7919) % 251 for i in range(2_500_000))
        raw = harness.message_bytes(subject="Anh\u00e4nge", body="Siehe Anhang.\n",
                                    attachments=[("bericht.pdf", "application/pdf", pdf),
                                                 ("tabelle.csv", "text/csv", csv),
                                                 ("gross.bin", "application/octet-stream", big)])
        other = harness.message_bytes(subject="erste")
        first = self.imap.append(box, other)
        uid = self.imap.append(box, raw)

        r = self.post("download", {"mailbox": box, "uid": uid})
        self.assertEqual((r.status, r.ctype), (200, "message/rfc822"), r)
        self.assertEqual(len(r.body), len(raw))
        self.assertTrue(r.body == raw, "the downloaded message differs from the appended one")
        cli = self.cli_run("download", {"mailbox": box, "uid": uid})
        self.assertExit(cli, 0)
        self.assertTrue(cli.stdout == r.body, "CLI and HTTP downloads differ")

        r = self.post("download", {"mailbox": box, "index": 1})
        self.assertEqual((r.status, r.ctype, r.body), (200, "message/rfc822", other))

        for part, ctype, data in (("2", "application/pdf", pdf), ("3", "text/csv", csv),
                                  ("4", "application/octet-stream", big)):
            with self.subTest(part=part):
                r = self.post("download", {"mailbox": box, "uid": uid, "part": part})
                self.assertEqual(r.status, 200, r)
                self.assertEqual((r.ctype or "").split(";")[0].strip().lower(), ctype, r)
                self.assertEqual(len(r.body), len(data))
                self.assertTrue(r.body == data, "part %s differs from the attached file" % part)
                cli = self.cli_run("download", {"mailbox": box, "uid": uid, "part": part})
                self.assertExit(cli, 0)
                self.assertTrue(cli.stdout == r.body, "part %s: CLI and HTTP differ" % part)

        # nothing was marked \Seen
        flags = self.imap.flags(box)
        self.assertEqual((flags[first], flags[uid]), (set(), set()))
        # missing message or part: a JSON error, not a truncated stream
        self.fails(404, "download", {"mailbox": box, "uid": uid + 1}, code="not_found")
        self.fails(404, "download", {"mailbox": box, "uid": uid, "part": "9"}, code="not_found")
        self.fails(404, "download", {"mailbox": box, "index": 3}, code="not_found")

    def test_append(self):
        boxes = {p: p + "Eing\u00e4nge/Neu \u00fc" for p in ("HTTP/", "CLI/")}
        for b in boxes.values():
            self.imap.create(b)
        box = boxes["HTTP/"]
        raw = ("From: J\u00f6rg <joerg@example.org>\r\nTo: b@example.org\r\n"
               "Subject: 8bit \u00e4\u00f6\u00fc\r\nMessage-ID: <a1@example.org>\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nK\u00e4se\r\n")
        # twin mailboxes have their own UIDVALIDITY
        got, cli = self.twins("append", {"mailbox": box, "message": raw,
                                         "flags": ["\\Seen", "Wichtig"]},
                              ignore=["uidValidity"])
        self.assertEqual(set(got), {"path", "uidValidity", "uid"})
        self.assertEqual(got["path"], box)
        self.assertEqual(got["uid"], self.imap.uids(box)[-1])
        self.assertEqual(got["uidValidity"], self.imap.status(box)["UIDVALIDITY"])
        self.assertEqual(self.imap.fetch(box, got["uid"]), raw.encode("utf-8"))
        self.assertEqual(without_recent(self.imap.flags(box)[got["uid"]]),
                         sorted(["\\Seen", "Wichtig"]))
        self.assertEqual(self.imap.fetch(boxes["CLI/"], cli["uid"]), raw.encode("utf-8"))

        # bare LF line ends are stored as CRLF, as the CLI does with a file
        lf = harness.message_bytes(subject="Zeilen", body="eins\nzwei\n")
        got, _ = self.twins("append", {"mailbox": box,
                                       "message": lf.decode().replace("\r\n", "\n")},
                            ignore=["uidValidity"])
        self.assertEqual(self.imap.uids(box), [got["uid"] - 1, got["uid"]])
        self.assertEqual(self.imap.fetch(box, got["uid"]), lf)
        self.assertEqual(without_recent(self.imap.flags(box)[got["uid"]]), [])

        # not a message, or no such mailbox: nothing stored
        self.fails(400, "append", {"mailbox": box, "message": "kein Kopf\n\nText\n"},
                   code="bad_input")
        self.fails(400, "append", {"mailbox": box, "message": ""})
        self.fails(404, "append", {"mailbox": "Nicht da \u00fc", "message": raw},
                   code="not_found")
        self.assertEqual(len(self.imap.uids(box)), 2)

    def fill_twins(self, names, count):
        """Creates names under HTTP/ and CLI/ and stores the same count
        messages in the first one of each; returns their UIDs (the same in
        both)."""
        uids = {}
        for prefix in ("HTTP/", "CLI/"):
            for name in names:
                self.imap.create(prefix + name)
            uids[prefix] = self.imap.append_many(
                prefix + names[0], [harness.message_bytes(
                    subject="m%d" % n, body="body %d\n" % n,
                    message_id="<m%d.%s@example.org>" % (n, prefix[:-1].lower()))
                    for n in range(count)])
        self.assertEqual(uids["HTTP/"], uids["CLI/"], "twin mailboxes start alike")
        return uids["HTTP/"]

    def check_uid_map(self, doc, dst, src_uids, src_ids):
        """doc is {"path": dst, "uidMap": {src uid: dst uid}} for exactly
        src_uids, and each pair is the same message (Message-ID; src_ids
        from before the action) on the server."""
        self.assertEqual(set(doc), {"path", "uidMap"})
        self.assertEqual(doc["path"], dst)
        self.assertEqual(sorted(int(k) for k in doc["uidMap"]), sorted(src_uids))
        dst_ids = self.message_ids(dst)
        for s, t in doc["uidMap"].items():
            self.assertIsInstance(t, int)
            self.assertEqual(dst_ids.get(t), src_ids[int(s)],
                             "uidMap %s -> %s is not the same message" % (s, t))
        return dst_ids

    def test_copy_and_move(self):
        src, dst = "Quelle \u00fc", "Ziel/\u00c4\u00d6\u00dc & mehr"
        uids = self.fill_twins([src, dst], 7)
        hs, hd = "HTTP/" + src, "HTTP/" + dst
        ids = self.message_ids(hs)
        for prefix in ("HTTP/", "CLI/"):
            # UIDs and sequence numbers part ways; a \Deleted bystander
            self.imap.expunge(prefix + src, uids[1])
            self.imap.store(prefix + src, uids[0], "+FLAGS", ["\\Deleted"])
        left = [u for u in uids if u != uids[1]]

        doc, _ = self.twins("copy", {"mailbox": hs, "range": "%d:%d" % (uids[2], uids[4]),
                                     "to": hd})
        self.check_uid_map(doc, hd, uids[2:5], ids)
        self.assertEqual(self.imap.uids(hs), left, "copy removes nothing")

        # sequence numbers 2 and 4 are UIDs left[1] and left[3]
        doc, _ = self.twins("copy", {"mailbox": hs, "range": "2,4", "seq": True, "to": hd})
        self.check_uid_map(doc, hd, [left[1], left[3]], ids)

        moved = [uids[3], uids[5], uids[6]]
        before = set(self.message_ids(hd))
        doc, _ = self.twins("move", {"mailbox": hs, "range": ",".join(map(str, moved)),
                                     "to": hd})
        dst_ids = self.check_uid_map(doc, hd, moved, ids)
        self.assertEqual(set(dst_ids) - before, set(doc["uidMap"].values()))
        self.assertEqual(self.imap.uids(hs), [u for u in left if u not in moved])
        self.assertIn("\\Deleted", self.imap.flags(hs)[uids[0]], "the bystander is untouched")

        # nothing matches: an empty map, nothing changes
        doc, _ = self.twins("move", {"mailbox": hs, "range": str(uids[-1] + 10), "to": hd})
        self.assertEqual(doc, {"path": hd, "uidMap": {}})
        self.fails(404, "copy", {"mailbox": hs, "range": "1:*", "to": "Fehlt \u00fc"},
                   code="not_found")
        self.fails(404, "move", {"mailbox": "Fehlt \u00fc", "range": "1", "to": hd},
                   code="not_found")

    def test_delete(self):
        box = "Papierkorb \u00fc"
        uids = self.fill_twins([box], 3)
        hb = "HTTP/" + box
        for prefix in ("HTTP/", "CLI/"):
            self.imap.store(prefix + box, uids[0], "+FLAGS", ["\\Deleted"])
        doc, _ = self.twins("delete", {"mailbox": hb, "uid": uids[1]})
        self.assertEqual(doc, {"deleted": [uids[1]]})
        self.assertEqual(self.imap.uids(hb), [uids[0], uids[2]])
        self.assertIn("\\Deleted", self.imap.flags(hb)[uids[0]])
        self.fails(404, "delete", {"mailbox": hb, "uid": uids[1]}, code="not_found")
        self.assertEqual(self.imap.uids(hb), [uids[0], uids[2]])

    def test_flags(self):
        box = "Markiert \u00fc"
        u = self.fill_twins([box], 4)
        hb = "HTTP/" + box
        for prefix in ("HTTP/", "CLI/"):
            self.imap.store(prefix + box, u[1], "+FLAGS", ["\\Seen"])
            self.imap.store(prefix + box, u[2], "+FLAGS", ["\\Flagged", "alt"])

        def run(action, params, expect_uids):
            doc, _ = self.twins(action, dict(params, mailbox=hb))
            self.assertEqual(set(doc), {"messages"})
            self.assertEqual([m["uid"] for m in doc["messages"]], expect_uids)
            server = self.imap.flags(hb)
            for m in doc["messages"]:
                self.assertEqual(set(m), {"uid", "flags"})
                self.assertEqual(without_recent(m["flags"]), sorted(server[m["uid"]]))
            return {m["uid"]: set(without_recent(m["flags"])) for m in doc["messages"]}

        got = run("add-flags", {"range": "*", "flags": ["\\Flagged", "$Projekt"]}, [u[3]])
        self.assertEqual(got[u[3]], {"\\Flagged", "$Projekt"})
        got = run("add-flags", {"range": "1:*", "flags": ["\\Answered", "erledigt"]}, u)
        self.assertTrue(all({"\\Answered", "erledigt"} <= f for f in got.values()))
        got = run("remove-flags", {"range": "%d:%d" % (u[1], u[2]),
                                   "flags": ["\\Answered", "alt", "\\Seen"]}, u[1:3])
        self.assertEqual(got, {u[1]: {"erledigt"}, u[2]: {"\\Flagged", "erledigt"}})
        got = run("set-flags", {"range": "%d,%d" % (u[0], u[3]), "flags": ["\\Seen", "nur-das"]},
                  [u[0], u[3]])
        self.assertEqual(got, {u[0]: {"\\Seen", "nur-das"}, u[3]: {"\\Seen", "nur-das"}})
        got = run("add-flags", {"range": "2:3", "seq": True, "flags": ["\\Draft"]}, u[1:3])
        self.assertTrue(all("\\Draft" in f for f in got.values()))
        # the server refuses \Recent: 422
        self.fails(422, "add-flags", {"mailbox": hb, "range": "1", "flags": ["\\Recent"]},
                   code="server_refused")
        self.fails(404, "add-flags", {"mailbox": "Fehlt \u00fc", "range": "1", "flags": ["x"]},
                   code="not_found")

    def test_mailbox_lifecycle(self):
        path = "HTTP/Projekte/\u00dcn\u00efc\u00f8d\u00e9 & Co"
        new = "HTTP/Umbenannt \u00f6/\u65e5\u672c"
        for prefix in ("HTTP/", "CLI/"):
            self.imap.create(prefix + "Umbenannt \u00f6")
        doc, _ = self.twins("create-mailbox", {"path": path})
        self.assertEqual(doc, {"path": path, "created": True})
        self.assertIn(path, self.imap.mailboxes())
        self.assertIn(path, self.imap.subscribed())
        self.assertIn(swap_prefix(path, "HTTP/", "CLI/"), self.imap.mailboxes())
        self.fails(409, "create-mailbox", {"path": path}, code="already_exists")

        uid = self.imap.append(path, harness.message_bytes(subject="bleibt"))
        doc, _ = self.twins("rename-mailbox", {"path": path, "newPath": new})
        self.assertEqual(doc, {"path": path, "newPath": new})
        names = self.imap.mailboxes()
        self.assertNotIn(path, names)
        self.assertIn(new, names)
        self.assertEqual(self.imap.uids(new), [uid])
        self.assertIn(new, self.imap.subscribed())
        self.fails(404, "rename-mailbox", {"path": path, "newPath": "X \u00e4"}, code="not_found")

        doc, _ = self.twins("delete-mailbox", {"path": new})
        self.assertEqual(doc, {"path": new, "deleted": True})
        self.assertNotIn(new, self.imap.mailboxes())
        self.assertNotIn(new, self.imap.subscribed())
        self.fails(404, "delete-mailbox", {"path": new}, code="not_found")


# ---------------------------------------------------------------- errors

class TestErrors(ApiTestCase):
    def setUp(self):
        super().setUp()
        self.config()
        self.imap.create("Da \u00fc")
        self.uid = self.imap.append("Da \u00fc", harness.message_bytes())
        self.start()

    def test_bad_parameters(self):
        box = "Da \u00fc"
        cases = [
            ("search", {}, "missing required"),
            ("mailbox-status", {}, "missing required"),
            ("copy", {"mailbox": box, "to": "X"}, "missing required"),
            ("rename-mailbox", {"path": box}, "missing required"),
            ("add-flags", {"mailbox": box, "range": "1"}, "missing required"),
            ("download", {"mailbox": box}, "uid or index"),
            ("download", {"mailbox": box, "uid": 1, "index": 1}, "both"),
            ("download", {"mailbox": box, "uid": "1"}, "wrong type"),
            ("download", {"mailbox": box, "uid": 1.5}, "wrong type"),
            ("download", {"mailbox": box, "uid": True}, "wrong type"),
            ("download", {"mailbox": box, "uid": -1}, "negative"),
            ("download", {"mailbox": box, "uid": 0}, "zero"),
            ("download", {"mailbox": box, "uid": 2 ** 32 + self.uid}, "beyond 32 bits"),
            ("download", {"mailbox": box, "uid": 1, "part": "2."}, "bad part"),
            ("search", {"mailbox": 5}, "wrong type"),
            ("search", {"mailbox": ""}, "empty mailbox"),
            ("search", {"mailbox": "IN\u0000BOX"}, "NUL in a mailbox"),
            ("search", {"mailbox": box, "flagged": "true"}, "wrong type"),
            ("search", {"mailbox": box, "limit": "2"}, "wrong type"),
            ("search", {"mailbox": box, "limit": 0}, "limit 0"),
            ("search", {"mailbox": box, "seen": "maybe"}, "bad choice"),
            ("search", {"mailbox": box, "since": "2026-02-30"}, "bad date"),
            ("search", {"mailbox": box, "subject": ["a"]}, "wrong type"),
            ("search", {"mailbox": box, "flags": ["x"]}, "unknown parameter"),
            ("search", {"mailbox": box, "output": "/tmp/x"}, "unknown (CLI) parameter"),
            ("search", {"mailbox": box, "Mailbox": box}, "unknown parameter"),
            ("search", {"mailbox": box, "range": "1:x"}, "bad range"),
            ("search", {"mailbox": box, "range": "0:3"}, "bad range"),
            ("search", {"mailbox": box, "range": ""}, "bad range"),
            ("search", {"mailbox": box, "range": "4294967296"}, "bad range"),
            ("search", {"mailbox": box, "range": "1 OR ALL"}, "bad range"),
            ("search", {"mailbox": box, "seq": "yes"}, "seq not a boolean"),
            ("add-flags", {"mailbox": box, "range": "1", "flags": "x"}, "flags not a list"),
            ("add-flags", {"mailbox": box, "range": "1", "flags": ["K\u00e4se"]}, "bad flag"),
            ("add-flags", {"mailbox": box, "range": "1", "flags": ["a b"]}, "bad flag"),
            ("add-flags", {"mailbox": box, "range": "1", "flags": [1]}, "bad flag"),
            ("append", {"mailbox": box, "file": "/etc/passwd"}, "CLI-only parameter"),
            ("append", {"mailbox": box}, "missing message"),
            ("append", {"mailbox": box, "message": "Subject: x\r\n\r\nx\r\n",
                        "file": "-"}, "CLI-only parameter"),
            ("create-mailbox", {"path": "X", "newPath": "Y"}, "unknown parameter"),
            ("test-connection", {"verbose": True}, "unknown parameter"),
            ("list-mailboxes", {"mailbox": "INBOX"}, "unknown parameter"),
            ("mailbox-status", {"mailbox": "INBOX", "connection": 5}, "connection not a string"),
        ]
        for action, params, why in cases:
            with self.subTest(action=action, params=params, why=why):
                self.fails(400, action, params, code="bad_parameter")
        # the message names the parameter
        err = self.fails(400, "search", {"mailbox": box, "bogusParam": 1})
        self.assertIn("bogusParam", err["message"])
        err = self.fails(400, "search", {})
        self.assertIn("mailbox", err["message"])
        self.assertEqual(self.imap.uids(box), [self.uid])

    def test_parameter_limits(self):
        """Numbers beyond 32 bits, NUL bytes in any string, part numbers
        that do not fit, and strings too long for one IMAP line are bad
        parameters (400 naming the parameter), not the server's refusal."""
        box = "Da \u00fc"
        cases = [
            ("search", {"mailbox": box, "larger": 5000000000}, "larger"),
            ("search", {"mailbox": box, "smaller": 2 ** 32}, "smaller"),
            ("search", {"mailbox": box, "limit": 2 ** 40}, "limit"),
            ("download", {"mailbox": box, "index": 2 ** 53}, "index"),
            ("add-flags", {"mailbox": box, "range": "1", "flags": ["urgent\u0000junk"]},
             "flags"),
            ("add-flags", {"mailbox": box, "range": "1\u0000,9", "flags": ["x"]}, "range"),
            ("search", {"mailbox": box, "since": "2026-01-01\u0000x"}, "since"),
            ("search", {"mailbox": box, "seen": "read\u0000x"}, "seen"),
            ("search", {"mailbox": box, "subject": "a\u0000b"}, "subject"),
            ("search", {"mailbox": box + "\u0000x"}, "mailbox"),
            ("download", {"mailbox": box, "uid": self.uid, "part": "1\u0000.5"}, "part"),
            ("download", {"mailbox": box, "uid": self.uid, "part": ".".join(["1"] * 49)},
             "part"),
            ("download", {"mailbox": box, "uid": self.uid, "part": "4294967296"}, "part"),
            ("search", {"mailbox": "x" * 1025}, "mailbox"),
            ("copy", {"mailbox": box, "range": "1", "to": "\u00e4" * 513}, "to"),
            ("search", {"mailbox": box, "subject": "x" * MiB}, "subject"),
            ("search", {"mailbox": box, "from": "x" * 8193}, "from"),
            ("search", {"mailbox": box, "range": "1," * 8192 + "1"}, "range"),
            ("search", {"mailbox": box, "text": "\u00e4" * 40000}, "text"),
            ("search", {"mailbox": box, "range": "1," * 500000 + "1"}, "range"),
            ("add-flags", {"mailbox": box, "range": "1", "flags": ["k%d" % i
                                                                    for i in range(2000)]},
             "flags"),
        ]
        for action, params, name in cases:
            with self.subTest(action=action, param=name):
                err = self.fails(400, action, params, code="bad_parameter")
                self.assertIn('"%s"' % name, err["message"])
        # the limits themselves are fine
        self.assertEqual(self.ok("search", {"mailbox": box, "larger": 4294967295}),
                         {"messages": []})
        self.assertEqual(self.ok("search", {"mailbox": box, "smaller": 4294967295,
                                            "limit": 10000})["messages"][0]["uid"],
                         self.uid)
        err = self.fails(400, "search", {"mailbox": box, "limit": 10001}, code="bad_parameter")
        self.assertIn('"limit"', err["message"])
        # every string and the range at their limits together still fit in
        # one command for Dovecot (imap_max_line_length, 64 KiB, counts
        # literals too)
        self.assertEqual(self.ok("search", {"mailbox": box, "subject": "x" * 8192,
                                            "from": "\u00e4" * 4096, "to": "y" * 8192,
                                            "text": "z" * 8192,
                                            "range": "1," * 8191 + "1"}),
                         {"messages": []})
        self.assertEqual(self.ok("add-flags", {"mailbox": box, "range": "1," * 8191 + "1",
                                               "flags": ["f%03d" % i for i in range(819)]}
                                 )["messages"][0]["uid"], self.uid)
        self.assertEqual(self.imap.uids(box), [self.uid])
        self.healthy()

    def test_bad_json(self):
        for raw in (b'{"mailbox": "INBOX"', b'{"mailbox": INBOX}', b"{'mailbox': 'INBOX'}",
                    b'{"mailbox": "INBOX"} x', b'{"mailbox":"INBOX","mailbox":"INBOX"}',
                    b'{"mailbox": "\xff\xfe"}', b"[" * 100000 + b"]" * 100000, b"\x00",
                    b"null", b'"INBOX"', b"42", b"true"):
            with self.subTest(raw=raw[:40]):
                self.fails(400, "mailbox-status", raw=raw, code="bad_json")
        for raw in (b"[]", b'[{"mailbox": "INBOX"}]'):
            with self.subTest(raw=raw):
                err = self.fails(400, "mailbox-status", raw=raw, code="bad_json")
                self.assertIn("object", err["message"])
        self.ok("mailbox-status", {"mailbox": "INBOX"})

    def test_not_found(self):
        err = self.fails(404, "no-such-action", {})
        self.assertEqual(err["code"], "unknown_action")
        self.fails(404, "Search", {"mailbox": "INBOX"})
        self.fails(404, "search%2F..", {"mailbox": "INBOX"})
        for action, params in (("mailbox-status", {"mailbox": "Fehlt \u00fc"}),
                               ("search", {"mailbox": "Fehlt \u00fc"}),
                               ("search", {"mailbox": "Fehlt \u00fc", "subject": "x"}),
                               ("download", {"mailbox": "Fehlt \u00fc", "uid": 1}),
                               ("delete", {"mailbox": "Fehlt \u00fc", "uid": 1}),
                               ("delete-mailbox", {"path": "Fehlt \u00fc"})):
            with self.subTest(action=action, params=params):
                self.fails(404, action, params, code="not_found")
                self.assertExit(self.cli_run(action, params), 1)
        for path in ("/", "/v1", "/v1/", "/v1/actions", "/v1/actions/",
                     "/v1/actions/search/x", "/v2/actions/search", "/healthz/x", "/metricsx"):
            with self.subTest(path=path):
                r = self.request("POST", path, {"mailbox": "INBOX"})
                self.assertApiError(r, 404)
                self.assertApiError(self.request("GET", path), 404)
        err = self.fails(404, "mailbox-status", {"mailbox": "INBOX", "connection": "nope"})
        self.assertIn("connection", err["code"] + err["message"])
        # a query string does not change the action
        r = self.request("POST", "/v1/actions/mailbox-status?x=1", {"mailbox": "Da \u00fc"})
        self.assertEqual((r.status, r.json["messages"]), (200, 1), r)

    def test_wrong_method(self):
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                r = self.request(method, "/v1/actions/mailbox-status", {"mailbox": "INBOX"})
                self.assertApiError(r, 405)
                self.assertEqual(r.headers.get("allow"), "POST")
        r = self.request("HEAD", "/v1/actions/mailbox-status")
        self.assertEqual((r.status, r.body), (405, b""), r)
        for path in ("/healthz", "/metrics"):
            for method in ("POST", "PUT", "DELETE"):
                with self.subTest(method=method, path=path):
                    r = self.request(method, path, {})
                    self.assertApiError(r, 405)
                    self.assertEqual(r.headers.get("allow"), "GET")
        # HEAD of the read-only endpoints: their status, no body
        r = self.request("HEAD", "/healthz")
        self.assertEqual((r.status, r.body), (200, b""), r)
        # methods no endpoint implements: the same JSON answers, not
        # libevent's HTML 501
        for method in ("OPTIONS", "TRACE"):
            with self.subTest(method=method):
                r = self.request(method, "/v1/actions/search")
                self.assertApiError(r, 405, code="method_not_allowed")
                self.assertEqual(r.headers.get("allow"), "POST")
                r = self.request(method, "/healthz")
                self.assertApiError(r, 405, code="method_not_allowed")
                self.assertEqual(r.headers.get("allow"), "GET")
                self.assertApiError(self.request(method, "/nowhere"), 404, code="not_found")
        # CONNECT (no proxy here), framed so that the next request on the
        # connection is answered too
        data, closed = raw_exchange(self.port, b"CONNECT example.org:443 HTTP/1.1\r\n"
                                    b"Host: example.org:443\r\n\r\n"
                                    b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                                    b"Connection: close\r\n\r\n")
        self.assertTrue(closed)
        resps = parse_responses(data)
        self.assertEqual([r[1] for r in resps], [405, 200], data[:600])
        self.assertEqual(resps[0][2].get("content-type"), "application/json")
        self.assertEqual(json.loads(resps[0][3])["error"]["code"], "method_not_allowed")
        self.healthy()

    def test_conflict_and_refusal(self):
        self.imap.create("Auch da \u00e4")
        self.fails(409, "create-mailbox", {"path": "Da \u00fc"}, code="already_exists")
        self.fails(409, "create-mailbox", {"path": "INBOX"}, code="already_exists")
        self.fails(409, "rename-mailbox", {"path": "Da \u00fc", "newPath": "Auch da \u00e4"},
                   code="already_exists")
        err = self.fails(422, "add-flags", {"mailbox": "Da \u00fc", "range": str(self.uid),
                                            "flags": ["\\Recent"]}, code="server_refused")
        self.assertIn("recent", err["message"].lower())
        self.assertTrue({"Da \u00fc", "Auch da \u00e4"} <= set(self.imap.mailboxes()))
        self.assertEqual(self.imap.uids("Da \u00fc"), [self.uid])

    def big_post(self, size, chunked=False, declared=None):
        """POSTs a mailbox-status body of exactly size bytes (JSON padded
        with spaces), Content-Length framed (declaring declared, default
        size) or chunked; the body is written by a thread so that an early
        answer is read. Returns (parsed responses, send error or None)."""
        doc = json.dumps({"mailbox": "Da \u00fc"}, ensure_ascii=False).encode("utf-8")
        body = doc + b" " * (size - len(doc))
        head = b"POST /v1/actions/mailbox-status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
        if chunked:
            head += b"Transfer-Encoding: chunked\r\n\r\n"
        else:
            head += b"Content-Length: %d\r\n\r\n" % (size if declared is None else declared)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        errors = []

        def send():
            try:
                s.sendall(head)
                if chunked:
                    for i in range(0, len(body), MiB):
                        c = body[i:i + MiB]
                        s.sendall(b"%x\r\n" % len(c) + c + b"\r\n")
                    s.sendall(b"0\r\n\r\n")
                elif declared is None:
                    s.sendall(body)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (ConnectionResetError, socket.timeout) as e:
            errors.append(e)
        t.join(60)
        s.close()
        self.assertTrue(out, "no answer at all (%r)" % errors)
        return parse_responses(out), (errors[0] if errors else None)

    def test_body_size_limit(self):
        # exactly 32 MiB is allowed
        (resp,), _ = self.big_post(API_MAX_BODY)
        self.assertEqual(resp[1], 200, resp[3][:300])
        self.assertEqual(json.loads(resp[3])["messages"], 1)
        # one byte more is refused, whether announced or chunked
        for kw in (dict(declared=API_MAX_BODY + 1), dict(), dict(chunked=True)):
            with self.subTest(**kw):
                (resp,), _ = self.big_post(API_MAX_BODY + 1, **kw)
                self.assertEqual(resp[1], 413, resp)
        (resp,), _ = self.big_post(API_MAX_BODY + 5 * MiB, declared=API_MAX_BODY + 5 * MiB)
        self.assertEqual(resp[1], 413, resp)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": "Da \u00fc"})["messages"], 1)
        self.daemon.term()


# ------------------------------------------------------------ bearer token

class TestToken(ApiTestCase):
    TOKEN = "s3cr3t-T0ken_with.chars~+/="

    def check_token(self, token):
        self.token = None
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": "Bearer " + token + "x"},
                        {"Authorization": "Bearer " + token[:-1]},
                        {"Authorization": "Bearer"}, {"Authorization": "Bearer "},
                        {"Authorization": token},
                        {"Authorization": "Basic " + token},
                        {"X-Token": token}):
            with self.subTest(headers=headers):
                r = self.post("test-connection", {}, headers=headers)
                self.assertApiError(r, 401, "unauthorized")
                self.assertIn("bearer", r.headers.get("www-authenticate", "").lower())
                # not even the existence of an action is told
                self.assertApiError(self.post("no-such-action", {}, headers=headers), 401)
        good = {"Authorization": "Bearer " + token}
        r = self.post("mailbox-status", {"mailbox": "INBOX"}, headers=good)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.post("test-connection", {}, headers=good).status, 200)
        # the scheme is case-insensitive (RFC 7235)
        r = self.post("test-connection", {}, headers={"Authorization": "bearer " + token})
        self.assertEqual(r.status, 200, r)
        # the token says nothing wrong about the rest
        self.assertApiError(self.post("no-such-action", {}, headers=good), 404)
        self.assertApiError(self.post("search", {}, headers=good), 400)
        # the password is never echoed, the token never logged
        self.assertNotIn(token, self.daemon.log)
        # /healthz and /metrics need no token
        r = self.request("GET", "/healthz", auth=False)
        self.assertEqual((r.status, r.json["status"]), (200, "ok"), r)
        r = self.request("GET", "/metrics", auth=False)
        self.assertEqual(r.status, 200, r)
        self.assertIn("imaphook_imap_connections", r.body.decode())

    def test_token(self):
        cfg = self.config()
        cfg.api["token"] = self.TOKEN
        self.start()
        self.check_token(self.TOKEN)

    def test_token_file(self):
        cfg = self.config()
        token = "from-a-file-" + self.user
        cfg.api["token_file"] = cfg.file("api-token", token + "\n")
        self.start()
        self.check_token(token)


# ------------------------------------------------------------ connections

class TestConnections(ApiTestCase):
    def test_connection_chooses_the_account(self):
        cfg = self.config()
        user2, _ = self.server.add_user()
        cfg.add_connection(**self.server.connection(user2, name="zweite"))
        only2 = "Nur hier \u00fc"
        with self.server.imap(user2) as imap2:
            imap2.create(only2)
            imap2.append(only2, harness.message_bytes(subject="zwei"))
        self.start()

        paths = lambda doc: {m["path"] for m in doc["mailboxes"]}  # noqa: E731
        two = self.same_as_cli("list-mailboxes", {"connection": "zweite"})
        one = self.same_as_cli("list-mailboxes", {"connection": "main"})
        self.assertIn(only2, paths(two))
        self.assertNotIn(only2, paths(one))
        self.assertEqual(self.ok("mailbox-status", {"connection": "zweite",
                                                    "mailbox": only2})["messages"], 1)
        self.fails(404, "mailbox-status", {"connection": "main", "mailbox": only2},
                   code="not_found")
        # several connections and none given: 400 naming them
        err = self.fails(400, "list-mailboxes", {}, code="bad_parameter")
        self.assertIn("main", err["message"])
        self.assertIn("zweite", err["message"])
        self.fails(400, "test-connection", raw=b"")
        self.assertExit(self.cli_run("list-mailboxes", {}), 64)
        self.fails(404, "list-mailboxes", {"connection": "dritte"})
        self.fails(404, "list-mailboxes", {"connection": ""})
        self.fails(400, "list-mailboxes", {"connection": ["main"]}, code="bad_parameter")
        self.fails(400, "list-mailboxes", {"connection": None}, code="bad_parameter")
        # not "zweite" with something after a NUL
        self.fails(400, "list-mailboxes", {"connection": "zweite\u0000x"},
                   code="bad_parameter")

    def test_unreachable_server_and_wrong_password(self):
        cfg = self.config()
        closed = harness.free_port()
        cfg.add_connection(**self.server.connection(self.user, name="aus", port=closed))
        cfg.add_connection(**self.server.connection(self.user, name="falsch",
                                                    password="not-" + self.password))
        self.start()
        for _ in range(2):      # the second one meets the pool's back-off
            err = self.fails(502, "mailbox-status", {"connection": "aus", "mailbox": "INBOX"},
                             code="server_unreachable")
            self.assertIn(str(closed), err["message"])
            self.fails(502, "mailbox-status", {"connection": "falsch", "mailbox": "INBOX"},
                       code="authentication_failed")
        self.fails(502, "test-connection", {"connection": "aus"}, code="server_unreachable")
        self.assertExit(self.cli_run("test-connection", {"connection": "aus"}), 69)
        self.assertExit(self.cli_run("test-connection", {"connection": "falsch"}), 77)
        # the good connection is not disturbed
        self.assertEqual(self.ok("mailbox-status", {"connection": "main",
                                                    "mailbox": "INBOX"})["path"], "INBOX")
        self.assertNotIn("not-" + self.password, self.daemon.log)
        conns = {c["name"]: c for c in self.healthy()["connections"]}
        self.assertEqual(set(conns), {"main", "aus", "falsch"})
        for name in ("aus", "falsch"):
            self.assertEqual(conns[name]["open"], 0)
            self.assertNotEqual(conns[name]["state"], "connected")
        self.assertGreaterEqual(conns["main"]["open"], 1)
        self.daemon.term()


# ------------------------------------------------------------- robustness

class TestRobustness(ApiTestCase):
    def test_concurrent_requests_share_max_connections(self):
        cfg = self.config()
        cfg.connection("main")["max_connections"] = 2
        a, b, c = "Ordner \u03b1", "Ordner \u03b2", "Eingang \u00fc"
        for box in (a, b, c):
            self.imap.create(box)
        raws = [harness.message_bytes(subject="a-%d" % i, body="A %d\n" % i) for i in range(5)]
        a_uids = self.imap.append_many(a, raws)
        self.imap.append_many(b, [harness.message_bytes(subject="b-%d" % i) for i in range(3)])
        logins_before = len(self.server.logins(self.user))
        self.start()

        n = 20
        barrier = threading.Barrier(n)
        results, errors = [None] * n, []

        def worker(i):
            try:
                barrier.wait(30)
                k = i % 5
                if i % 4 == 0:
                    r = self.post("search", {"mailbox": a, "subject": "a-%d" % k})
                    results[i] = (r.status, [m["uid"] for m in r.json["messages"]]
                                  if r.status == 200 else r)
                elif i % 4 == 1:
                    r = self.post("mailbox-status", {"mailbox": b})
                    results[i] = (r.status, r.json["messages"] if r.status == 200 else r)
                elif i % 4 == 2:
                    r = self.post("download", {"mailbox": a, "uid": a_uids[k]})
                    results[i] = (r.status, r.body)
                else:
                    raw = harness.message_bytes(subject="neu-%d" % i).decode()
                    r = self.post("append", {"mailbox": c, "message": raw})
                    results[i] = (r.status, r.json["uid"] if r.status == 200 else r)
            except Exception as e:      # reported below
                errors.append("request %d: %r" % (i, e))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        appended = {}
        for i, res in enumerate(results):
            with self.subTest(request=i):
                self.assertIsNotNone(res)
                self.assertEqual(res[0], 200, res)
                k = i % 5
                if i % 4 == 0:
                    self.assertEqual(res[1], [a_uids[k]])
                elif i % 4 == 1:
                    self.assertEqual(res[1], 3)
                elif i % 4 == 2:
                    self.assertTrue(res[1] == raws[k], "download %d differs" % i)
                else:
                    appended[res[1]] = "neu-%d" % i
        self.assertEqual(len(appended), n // 4, "every append got its own UID")
        self.assertEqual(sorted(appended), self.imap.uids(c))
        for uid, subject in appended.items():
            hdr = self.imap.fetch(c, uid, "BODY.PEEK[HEADER.FIELDS (SUBJECT)]").decode()
            self.assertIn(subject, hdr)

        # at most max_connections logins: a later login of another user,
        # once logged, shows that Dovecot's log has caught up
        marker, _ = self.server.add_user()
        self.server.imap(marker).close()
        self.server.wait_logins(marker, 1)
        daemon_logins = len(self.server.logins(self.user)) - logins_before
        self.assertTrue(1 <= daemon_logins <= 2, "imaphookd logged in %d times:\n%s"
                        % (daemon_logins, "\n".join(self.server.logins(self.user))))
        m = self.api.metrics()
        self.assertLessEqual(m.get("imaphook_imap_connections", connection="main"), 2)
        conn = self.healthy()["connections"][0]
        self.assertLessEqual(conn["open"], 2)
        self.daemon.term()

    def test_keep_alive_and_pipelining(self):
        self.config()
        box = "Anh\u00e4nge"
        self.imap.create(box)
        raw = harness.message_bytes(subject="k", attachments=[
            ("x.bin", "application/octet-stream", bytes(range(256)) * 1000)])
        uid = self.imap.append(box, raw)
        self.start()

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.addCleanup(conn.close)
        sock = None
        steps = [("POST", "mailbox-status", {"mailbox": box}, 200),
                 ("POST", "search", {"mailbox": "Fehlt"}, 404),
                 ("POST", "download", {"mailbox": box, "uid": uid}, 200),
                 ("POST", "no-such-action", {}, 404),
                 ("POST", "search", {"mailbox": box, "limit": "x"}, 400),
                 ("POST", "download", {"mailbox": box, "uid": uid, "part": "2"}, 200),
                 ("GET", "/healthz", None, 200),
                 ("GET", "/metrics", None, 200),
                 ("GET", "mailbox-status", None, 405),
                 ("POST", "test-connection", {}, 200)]
        for method, what, params, status in steps:
            with self.subTest(step=(method, what)):
                path = what if what.startswith("/") else "/v1/actions/" + what
                body = json.dumps(params).encode() if params is not None else None
                conn.request(method, path, body=body)
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, status, data[:300])
                self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
                if what == "download" and "part" in params:
                    self.assertEqual(data, bytes(range(256)) * 1000)
                elif what == "download":
                    self.assertEqual(data, raw)
                if sock is None:
                    sock = conn.sock
                self.assertIs(conn.sock, sock, "the connection was not kept alive")

        # three requests written at once: three answers, in order
        one = json.dumps({"mailbox": box}, ensure_ascii=False).encode()
        two = json.dumps({"mailbox": "INBOX"}).encode()
        data, closed = raw_exchange(self.port, post_bytes("mailbox-status", one)
                                    + post_bytes("mailbox-status", two)
                                    + b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close"
                                      b"\r\n\r\n")
        self.assertTrue(closed)
        resps = parse_responses(data)
        self.assertEqual([r[1] for r in resps], [200, 200, 200])
        self.assertEqual(json.loads(resps[0][3])["path"], box)
        self.assertEqual(json.loads(resps[1][3])["path"], "INBOX")
        self.assertIn("connections", json.loads(resps[2][3]))
        # HEAD: the status and the length of what GET would send, no body
        # that the next answer could be mistaken for
        data, closed = raw_exchange(self.port, b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                                    b"HEAD /v1/actions/search HTTP/1.1\r\nHost: t\r\n\r\n"
                                    b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                                    b"Connection: close\r\n\r\n")
        self.assertTrue(closed)
        heads = data.split(b"\r\n\r\n", 2)
        self.assertEqual(len(heads), 3, data)
        self.assertRegex(heads[0], rb"^HTTP/1\.1 200 ")
        self.assertRegex(heads[0], rb"(?i)\r\nContent-Length: [1-9]")
        self.assertRegex(heads[1], rb"^HTTP/1\.1 405 ")
        (resp,) = parse_responses(heads[2])
        self.assertEqual(resp[1], 200, data)
        self.assertEqual(json.loads(resp[3])["status"], "ok")

    def test_malformed_and_old_requests(self):
        self.config()
        box = "Anh\u00e4nge"
        self.imap.create(box)
        raw = harness.message_bytes(subject="alt", attachments=[
            ("x.bin", "application/octet-stream", bytes(range(256)) * 2000)])
        uid = self.imap.append(box, raw)
        self.start()

        bad = {
            "huge header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100000
                           + b"\r\n\r\n",
            "many headers": b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                            + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 30) for i in range(3000))
                            + b"\r\n",
            "huge request line": b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            "huge header on a POST": post_bytes("test-connection", b"{}",
                                                b"X-Big: " + b"b" * 100000 + b"\r\n"),
            "garbage": b"GARBAGE\r\n\r\n",
            "binary": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256))
                      + b"\r\n\r\n",
            "bad version": b"GET /healthz HTTP/9.9\r\n\r\n",
            "no version": b"GET /healthz\r\n\r\n",
            "bad content-length": b"POST /v1/actions/test-connection HTTP/1.1\r\nHost: t\r\n"
                                  b"Content-Length: -5\r\n\r\n{}",
            "bad chunk": b"POST /v1/actions/test-connection HTTP/1.1\r\nHost: t\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            "header without colon": b"GET /healthz HTTP/1.1\r\nHost t\r\nnonsense\r\n\r\n",
        }
        for what, data in bad.items():
            with self.subTest(request=what):
                out, closed = raw_exchange(self.port, data)
                m = re.match(rb"HTTP/1\.[01] (\d{3}) ", out)
                self.assertIsNotNone(m, "%s: no HTTP answer, got %r (closed=%s)"
                                     % (what, out[:200], closed))
                self.assertTrue(400 <= int(m.group(1)) < 500, "%s: %r" % (what, out[:300]))
                self.assertTrue(closed, "%s: the connection stays open after %s"
                                % (what, m.group(1)))
                self.healthy()

        # bare LF line ends are understood
        out, closed = raw_exchange(self.port, b"GET /healthz HTTP/1.1\nHost: t\n"
                                   b"Connection: close\n\n")
        (resp,) = parse_responses(out)
        self.assertEqual(resp[1], 200, resp)

        # HTTP/1.0: an answer, then the server closes the connection
        body = json.dumps({"mailbox": box}, ensure_ascii=False).encode()
        out, closed = raw_exchange(self.port, b"POST /v1/actions/mailbox-status HTTP/1.0\r\n"
                                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.assertTrue(closed, "HTTP/1.0: the connection stays open")
        (resp,) = parse_responses(out)
        self.assertEqual(resp[1], 200, resp)
        self.assertEqual(json.loads(resp[3]), self.ok("mailbox-status", {"mailbox": box}))
        # a download cannot be chunked for HTTP/1.0: the body runs to the close
        body = json.dumps({"mailbox": box, "uid": uid}, ensure_ascii=False).encode()
        out, closed = raw_exchange(self.port, b"POST /v1/actions/download HTTP/1.0\r\n"
                                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.assertTrue(closed)
        head, _, data = out.partition(b"\r\n\r\n")
        self.assertRegex(head, rb"^HTTP/1\.[01] 200 ")
        self.assertNotIn(b"chunked", head.lower())
        self.assertTrue(data == raw, "HTTP/1.0 download differs (%d of %d bytes)"
                        % (len(data), len(raw)))
        out, closed = raw_exchange(self.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertTrue(closed)
        (resp,) = parse_responses(out)
        self.assertEqual(resp[1], 200)
        self.assertEqual(json.loads(resp[3])["status"], "ok")
        self.daemon.term()

    def test_client_gone_before_the_request_is_complete(self):
        self.config()
        self.start()
        body = b'{"mailbox": "INBOX"}'
        cuts = [b"", b"PO", b"POST /v1/actions/mailbox-status HTTP/1.1\r\nHost: t\r\n",
                post_bytes("mailbox-status", body)[:-5],
                b"POST /v1/actions/mailbox-status HTTP/1.1\r\nHost: t\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mai"]
        for rst in (False, True):
            for data in cuts:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                s.sendall(data)
                if rst:
                    rst_close(s)
                else:
                    s.close()
        # and a complete request whose client leaves at once
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            s.sendall(post_bytes("mailbox-status", body))
            rst_close(s)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": "INBOX"})["path"], "INBOX")
        self.healthy()
        self.daemon.term()

    def test_client_gone_while_its_action_runs(self):
        # Dovecot's answers to imaphookd pass a proxy that holds them while
        # the gate is closed: the actions are in flight (or waiting for the
        # one pooled connection) when their clients go away.
        cfg = self.config(mode="plain")
        cfg.connection("main")["max_connections"] = 1
        gate = threading.Event()
        gate.set()
        sent = []

        def on_client(data, conn):
            sent.append(data)

        def on_server(data, conn):
            gate.wait(60)
        proxy = harness.TcpProxy("127.0.0.1", self.server.port_plain, on_client=on_client,
                                 on_server=on_server).start()
        self.addCleanup(proxy.stop)
        self.addCleanup(gate.set)
        cfg.connection("main")["port"] = proxy.port
        box = "Eingang \u00fc"
        self.imap.create(box)
        self.start()
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 0)

        gate.clear()
        raw = harness.message_bytes(subject="verwaist")
        a = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        a.sendall(post_bytes("append", json.dumps({"mailbox": box, "message": raw.decode()})
                             .encode()))
        harness.wait_until(lambda: any(b"APPEND" in d for d in sent), timeout=15,
                           what="imaphookd to send APPEND")
        b = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        b.sendall(post_bytes("mailbox-status", json.dumps({"mailbox": box}).encode()))
        late = {}
        t = threading.Thread(target=lambda: late.update(
            r=self.post("search", {"mailbox": box, "subject": "verwaist"})), daemon=True)
        t.start()
        rst_close(a)
        b.close()
        gate.set()
        t.join(60)
        self.assertIn("r", late, "the waiting request got no answer")
        self.assertEqual(late["r"].status, 200, late["r"])
        found = [m["uid"] for m in late["r"].json["messages"]]
        # the append whose client left still happened, once
        self.assertEqual(found, self.imap.uids(box))
        self.assertEqual(len(found), 1)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        self.healthy()
        self.daemon.term()

    def test_imap_connection_lost_mid_download(self):
        # Dovecot's answer stalls after about 1.5 MiB of a download (a proxy
        # holds it); with timeout = 2 imaphookd gives the IMAP connection
        # up while the reply is streaming: too late for a status, so the
        # stream must end without its last chunk, and the next request
        # gets a fresh connection.
        cfg = self.config(mode="plain")
        cfg.connection("main")["timeout"] = 2
        release = threading.Event()
        self.addCleanup(release.set)

        def on_server(data, conn):
            conn["bytes"] = conn.get("bytes", 0) + len(data)
            if conn["number"] == 1 and conn["bytes"] > 3 * MiB // 2:
                release.wait(60)
        proxy = harness.TcpProxy("127.0.0.1", self.server.port_plain,
                                 on_server=on_server).start()
        self.addCleanup(proxy.stop)
        cfg.connection("main")["port"] = proxy.port
        box, raw, uid = self.big_message()
        self.assertGreater(len(raw), 3 * MiB)
        self.start()
        mark = self.daemon.mark()
        body = json.dumps({"mailbox": box, "uid": uid}, ensure_ascii=False).encode()
        out, closed = raw_exchange(self.port, post_bytes("download", body), timeout=60)
        self.assertTrue(closed, "the cut stream was not closed")
        head, _, rest = out.partition(b"\r\n\r\n")
        self.assertRegex(head, rb"^HTTP/1\.1 200 ")
        self.assertIn(b"chunked", head.lower())
        self.assertFalse(rest.endswith(b"\r\n0\r\n\r\n"),
                         "a cut download must not end like a complete one")
        self.assertLess(len(rest), len(raw))
        self.daemon.wait_for_log(r"download failed after the reply started", since=mark)
        r = self.post("download", {"mailbox": box, "uid": uid})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == raw, "download on the new connection differs")
        self.assertEqual(proxy.connections, 2)
        release.set()
        self.daemon.term()

    def download_and_leave(self, box, uid, times=3):
        """Starts downloading a large message and resets the connection
        after the first 64 KiB, times times."""
        body = json.dumps({"mailbox": box, "uid": uid}, ensure_ascii=False).encode()
        for _ in range(times):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            s.sendall(post_bytes("download", body))
            got = b""
            while len(got) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertRegex(got, rb"^HTTP/1\.1 200 ")
            rst_close(s)

    def test_client_gone_mid_download_keeps_serving(self):
        # Leak detection is off here: the known leak of this case is
        # test_client_gone_mid_download_leaves_no_leak's business.
        self.config()
        box, raw, uid = self.big_message()
        self.start(env=NO_LEAK_CHECK)
        self.download_and_leave(box, uid)
        r = self.post("download", {"mailbox": box, "uid": uid})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == raw, "download after the aborted ones differs")
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        self.healthy()
        self.daemon.term()      # exit 0, no ASan/UBSan report

    # When a client goes away while its download is being streamed, libevent
    # detaches the request from the dying connection and leaves it to the
    # daemon to free (this test caught the leak when it did not).
    def test_client_gone_mid_download_leaves_no_leak(self):
        self.config()
        box, raw, uid = self.big_message()
        self.start()
        self.download_and_leave(box, uid)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        self.daemon.term()      # LeakSanitizer: evhttp_request_new


# ------------------------------------------------- backpressure and queueing

class TestLimits(ApiTestCase):
    """What one API client can make the daemon hold: a download waits for
    its client to read (and keeps its IMAP connection meanwhile), at most
    API_MAX_WAITING calls wait for a connection, and none waits longer
    than the connection's timeout."""

    def fetches(self):
        """The bytes of download chunks the daemon has asked Dovecot for."""
        return sum(int(m.group(1)) for m in FETCH_RE.finditer(self.daemon.log))

    def stall_download(self, box, uid):
        """Starts a download on a raw socket with a small receive buffer,
        reads its head and a little, then stops reading; returns the socket
        and what it read, once the daemon's fetches have stopped
        advancing."""
        body = json.dumps({"mailbox": box, "uid": uid}, ensure_ascii=False).encode()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(60)
        s.connect(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        s.sendall(post_bytes("download", body, b"Connection: close\r\n"))
        got = b""
        while b"\r\n\r\n" not in got or len(got) < 4096:
            b = s.recv(4096)
            self.assertTrue(b, "the daemon closed the download")
            got += b
        self.assertRegex(got, rb"^HTTP/1\.1 200 ")
        wait_stable(self.fetches, what="the bytes fetched for the download")
        return s, got

    def finish_download(self, s, got, raw):
        """Reads the rest of the stalled download; asserts it is exactly
        raw."""
        data = got + recv_all(s)
        body, complete = dechunk(data)
        self.assertTrue(complete, "the download did not end with its last chunk")
        self.assertEqual(len(body), len(raw))
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(raw).hexdigest())

    def test_download_waits_for_a_client_that_does_not_read(self):
        self.config(log_level="debug")
        box, raw, uid = self.big_message(48 * MiB)
        # ASan's quarantine keeps freed memory resident (256 MB by default):
        # without it, VmRSS measures what the daemon holds
        self.start(env=NO_QUARANTINE)
        # one small download first, so that the baseline includes the
        # connection and its buffers
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        rss = vmrss(self.daemon.pid)
        s, got = self.stall_download(box, uid)
        fetched = self.fetches()
        grown = vmrss(self.daemon.pid) - rss
        # the daemon stops fetching a few MiB ahead of its client, and does
        # not hold the message in memory meanwhile
        self.assertLess(fetched, 16 * MiB, "fetched %d of %d bytes for a client that "
                        "read nothing" % (fetched, len(raw)))
        if not harness.WRAP:
            # (under valgrind freed blocks wait in its own queue, as in
            # ASan's quarantine, and its shadow memory grows with the heap)
            self.assertLess(grown, 16 * MiB, "imaphookd grew by %d bytes" % grown)
        # the download waits with its connection: then every byte arrives
        self.finish_download(s, got, raw)
        self.assertEqual(self.fetches(), (len(raw) // MiB + 1) * MiB)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        self.healthy()
        self.daemon.term()

    def test_client_gone_while_its_download_waits(self):
        # the waiting download keeps the only connection; its client resets
        # the connection: everything is freed (LeakSanitizer at the end)
        # and the connection serves the next call
        cfg = self.config(log_level="debug")
        cfg.connection("main")["max_connections"] = 1
        box, raw, uid = self.big_message(24 * MiB)
        self.start()
        for close in (rst_close, socket.socket.close):
            with self.subTest(close=close.__name__):
                s, _ = self.stall_download(box, uid)
                self.assertLess(self.fetches(), 24 * MiB)
                close(s)
                self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        r = self.post("download", {"mailbox": box, "uid": uid})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == raw, "the download after the abandoned ones differs")
        self.healthy()
        # and a SIGTERM while a download waits: exit 0, nothing leaked
        self.stall_download(box, uid)
        self.daemon.term()

    def test_a_call_waits_at_most_the_connection_timeout(self):
        # a download whose client does not read holds the only connection;
        # a call waiting for it is answered 503 after the connection's
        # timeout, and its place in the queue is given up
        cfg = self.config(log_level="debug")
        cfg.connection("main").update(max_connections=1, timeout=2)
        box, raw, uid = self.big_message(24 * MiB)
        self.start()
        s, got = self.stall_download(box, uid)
        r = self.post("mailbox-status", {"mailbox": box})
        self.assertApiError(r, 503, code="wait_timeout")
        self.assertEqual(r.headers.get("retry-after"), "1", r)
        self.finish_download(s, got, raw)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        self.assertEqual(self.healthy()["connections"][0]["open"], 1)
        self.daemon.term()

    def test_calls_waiting_for_a_connection_are_capped(self):
        # the one connection is busy (Dovecot's answer to STATUS is held);
        # of API_MAX_WAITING + 6 more calls, 6 are refused at once
        cfg = self.config(mode="plain")
        gate = harness.ImapGate(self.server.host, self.server.port_plain, rb" STATUS ").start()
        self.addCleanup(gate.stop)
        cfg.connection("main").update(port=gate.port, max_connections=1)
        box = "Warteschlange \u00fc"
        self.imap.create(box)
        self.imap.append(box, harness.message_bytes(subject="w"))
        self.start()
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)

        gate.arm()
        n = API_MAX_WAITING + 6
        results, errors = {}, []
        lock = threading.Lock()

        def call(i):
            try:
                r = self.post("mailbox-status", {"mailbox": box}, timeout=120)
            except Exception as e:      # reported below
                r = e
                errors.append("call %d: %r" % (i, e))
            with lock:
                results[i] = r
        holder = threading.Thread(target=call, args=("holder",), daemon=True)
        holder.start()
        gate.wait_held()
        threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        try:
            harness.wait_until(lambda: len(results) >= 6, timeout=30,
                               what="6 calls refused while %d wait" % API_MAX_WAITING)
            with lock:
                refused = dict(results)
        finally:
            gate.release()
        for t in threads + [holder]:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(refused), 6, refused)
        for i, r in refused.items():
            with self.subTest(refused=i):
                self.assertApiError(r, 503, code="busy")
                self.assertEqual(r.headers.get("retry-after"), "1", r)
        self.assertEqual(len(results), n + 1)
        for i, r in results.items():
            if i not in refused:
                with self.subTest(admitted=i):
                    self.assertEqual((r.status, r.json["messages"]), (200, 1), r)
        self.assertEqual(self.healthy()["connections"][0]["open"], 1)
        self.assertEqual(self.ok("mailbox-status", {"mailbox": box})["messages"], 1)
        self.daemon.term()


# --------------------------------------------------------- healthz, metrics

class TestHealthAndMetrics(ApiTestCase):
    def test_healthz_and_metrics(self):
        cfg = self.config()
        box = "Eing\u00e4nge \u00fc"
        self.imap.create(box)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("eingang", "main", box, ["hook"], interval=1)
        self.start()
        self.api.wait_polls("eingang", more=1)

        r = self.request("GET", "/healthz")
        self.assertEqual((r.status, r.ctype), (200, "application/json"), r)
        doc = r.json
        self.assertTrue({"status", "triggers", "connections"} <= set(doc), doc)
        self.assertEqual(doc["status"], "ok")
        (t,) = doc["triggers"]
        self.assertTrue({"name", "connection", "mailbox", "mode", "lastPollAt", "lastSuccessAt",
                         "lastError", "queued"} <= set(t), t)
        self.assertEqual((t["name"], t["connection"], t["mailbox"], t["mode"]),
                         ("eingang", "main", box, "poll"))
        self.assertRegex(t["lastPollAt"], ISO_RE)
        self.assertRegex(t["lastSuccessAt"], ISO_RE)
        self.assertIsNone(t["lastError"])
        self.assertEqual(t["queued"], 0)
        (c,) = doc["connections"]
        self.assertTrue({"name", "state", "open"} <= set(c), c)
        self.assertEqual(c["name"], "main")
        self.assertIsInstance(c["state"], str)
        self.assertIsInstance(c["open"], int)
        self.assertTrue(0 <= c["open"] <= 2, c)

        uid = self.imap.append(box, harness.message_bytes(subject="neu"))
        rx.wait_for(1, timeout=30)
        self.assertEqual(rx.requests[0].json["uid"], uid)

        r = self.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.ctype.startswith("text/plain"), r)

        # the poll that queued the event commits it (and the delivery may be
        # counted) before its UNSELECT round trip ends the poll
        def delivered():
            m = self.api.metrics()
            return (m.get("imaphook_webhook_deliveries_total", 0, webhook="hook",
                          result="ok") >= 1 and
                    m.get("imaphook_polls_total", 0, trigger="eingang", result="ok") >= 2 and m)
        m = harness.wait_until(delivered, timeout=15,
                               what="the delivery and the poll behind it to be counted")
        self.assertEqual(m.get("imaphook_webhook_deliveries_total", webhook="hook",
                               result="ok"), 1)
        for result in ("retry", "dead"):
            self.assertEqual(m.get("imaphook_webhook_deliveries_total", webhook="hook",
                                   result=result), 0, result)
        self.assertEqual(m.get("imaphook_events_queued_total", trigger="eingang"), 1)
        self.assertGreaterEqual(m.get("imaphook_polls_total", trigger="eingang", result="ok"), 2)
        self.assertEqual(m.get("imaphook_polls_total", trigger="eingang", result="error"), 0)
        self.assertEqual(m.get("imaphook_outbox_depth", webhook="hook"), 0)
        conns = m.get("imaphook_imap_connections", connection="main")
        self.assertIsNotNone(conns)
        self.assertTrue(1 <= conns <= 2, conns)
        self.assertEqual(m.types.get("imaphook_poll_duration_seconds"), "histogram")
        buckets = sorted(((float(dict(k)["le"]), v) for (n, k), v in m.samples.items()
                          if n == "imaphook_poll_duration_seconds_bucket"))
        self.assertGreater(len(buckets), 1)
        self.assertEqual(buckets[-1][0], float("inf"))
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets),
                         "buckets are cumulative")
        count = m.get("imaphook_poll_duration_seconds_count")
        self.assertEqual(buckets[-1][1], count)
        self.assertGreaterEqual(count, 2)
        self.assertGreaterEqual(m.get("imaphook_poll_duration_seconds_sum"), 0)
        for name in ("imaphook_polls_total", "imaphook_events_queued_total",
                     "imaphook_webhook_deliveries_total", "imaphook_outbox_depth",
                     "imaphook_imap_connections"):
            self.assertIn(name, m.types, name)
        self.assertTrue(all(n.startswith("imaphook_") for n in m.names()), m.names())

        doc = self.healthy()
        self.assertEqual(doc["triggers"][0]["queued"], 0)

    def test_healthz_is_503_while_a_trigger_fails(self):
        cfg = self.config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        missing = "Fehlt noch \u00fc"
        cfg.add_trigger("gut", "main", "INBOX", ["hook"], interval=1)
        cfg.add_trigger("kaputt", "main", missing, ["hook"], interval=1)
        self.start()

        def status(want):
            r = self.request("GET", "/healthz")
            return r.status == want and r
        r = harness.wait_until(lambda: status(503), timeout=20, what="/healthz 503")
        doc = r.json
        self.assertEqual(r.ctype, "application/json")
        self.assertNotEqual(doc["status"], "ok")
        ts = {t["name"]: t for t in doc["triggers"]}
        self.assertIsInstance(ts["kaputt"]["lastError"], str)
        self.assertNotEqual(ts["kaputt"]["lastError"], "")
        self.assertIsNone(ts["kaputt"]["lastSuccessAt"])
        self.assertRegex(ts["kaputt"]["lastPollAt"], ISO_RE)
        self.assertEqual(ts["kaputt"]["mailbox"], missing)
        self.assertGreaterEqual(self.api.polls("kaputt", "error"), 1)
        # the API itself still works
        self.assertEqual(self.ok("mailbox-status", {"mailbox": "INBOX"})["path"], "INBOX")

        self.imap.create(missing)
        r = harness.wait_until(lambda: status(200), timeout=20,
                               what="/healthz 200 once the mailbox exists")
        ts = {t["name"]: t for t in r.json["triggers"]}
        self.assertEqual(r.json["status"], "ok")
        self.assertIsNone(ts["kaputt"]["lastError"])
        self.assertRegex(ts["kaputt"]["lastSuccessAt"], ISO_RE)

    def test_healthz_without_triggers(self):
        self.config()
        self.start()
        doc = self.healthy()
        self.assertEqual(doc["status"], "ok")
        self.assertEqual(doc["triggers"], [])
        self.assertEqual([c["name"] for c in doc["connections"]], ["main"])
        m = self.api.metrics()
        self.assertIsNotNone(m.get("imaphook_imap_connections", connection="main"))
        self.assertEqual(m.types.get("imaphook_poll_duration_seconds"), "histogram")


if __name__ == "__main__":
    unittest.main()
