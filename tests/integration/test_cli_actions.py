"""The actions of the imaphook CLI against a real Dovecot.

search, download, append, copy, move, delete, add-flags, remove-flags,
set-flags, create-mailbox, rename-mailbox and delete-mailbox, every one
through build/san/imaphook, with non-ASCII mailbox names. What imaphook
reports is checked against what the server shows through an independent
imaplib client (harness.ImapClient); the expected answers are computed from
the messages the test stores, never written down.

A second Dovecot advertises only Courier's capabilities (no MOVE, BINARY,
ESEARCH, LITERAL+ or UNSELECT) so that the fallbacks run too: MOVE as COPY +
STORE + UID EXPUNGE, parts decoded by imaphook instead of the server, plain
SEARCH, synchronizing literals; and, with UIDPLUS taken away as well, the
refusals of move and delete.

The other door, POST /v1/actions/ACTION of imaphookd, runs the same table
on pooled connections: TestHttpDoor checks the HTTP statuses and that an
action leaves its connection usable for the next one (renaming or deleting
the mailbox an earlier action selected must not cost the connection).

Every test has its own Dovecot user, so mailboxes never leak between tests.
"""

import base64
import datetime
import http.client
import json
import os
import quopri
import re

from . import harness

dovecot = None          # every capability Dovecot has
reduced = None          # Courier's capabilities only

REDUCED_CAPS = "IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS CHILDREN"
NO_UIDPLUS_CAPS = "IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN"

UTC = datetime.timezone.utc



def setUpModule():
    global dovecot, reduced
    dovecot = harness.Dovecot.start_new()
    reduced = harness.Dovecot.start_new()
    reduced.set_capabilities(REDUCED_CAPS)


def tearDownModule():
    for server in (dovecot, reduced):
        if server is not None:
            server.stop()


def without_recent(flags):
    """\\Recent belongs to one session: leave it out of comparisons."""
    return {f for f in flags if f.lower() != "\\recent"}


def server_sizes(client, mailbox):
    """{uid: RFC822.SIZE} of every message, as the server says."""
    client.select(mailbox, readonly=True)
    typ, data = client.imap.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
    out = {}
    for item in data:
        if item is None:
            continue
        if isinstance(item, tuple):
            item = item[0]
        u = re.search(rb"UID (\d+)", item)
        s = re.search(rb"RFC822\.SIZE (\d+)", item)
        if u and s:
            out[int(u.group(1))] = int(s.group(1))
    return out


def iso(dt):
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def qp_text(text):
    """text (str, lines ending in LF) quoted-printable encoded with CRLF
    hard line breaks: it decodes to the text with CRLF line ends."""
    return quopri.encodestring(text.encode("utf-8")).replace(b"\n", b"\r\n")


def qp_binary(data):
    """Any bytes quoted-printable encoded (CR and LF as =0D =0A, soft
    breaks): it decodes to exactly data."""
    lines, line = [], ""
    for b in data:
        t = chr(b) if 33 <= b <= 126 and b != 61 else "=%02X" % b
        if len(line) + len(t) > 72:
            lines.append(line + "=")
            line = ""
        line += t
    lines.append(line)
    return "\r\n".join(lines).encode("ascii")


def b64_lines(data):
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


class ActionTestCase(harness.IntegrationTestCase):
    server = None           # the module's Dovecot, by default the full one

    def setUp(self):
        self.srv = self.server or dovecot
        self.user, self.password = self.srv.add_user()
        self.cfg = harness.Config()
        self.cfg.add_connection(**self.srv.connection(self.user, self.password))
        self.cfg.write()
        self.imap = self.srv.imap(self.user)
        self.addCleanup(self.imap.close)

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

    def store_messages(self, mailbox, specs):
        """Appends make_message(**spec) for each spec (flags and date
        popped from it); returns the specs with uid, raw bytes and
        message-id added."""
        out = []
        for n, spec in enumerate(specs):
            spec = dict(spec)
            flags = spec.pop("flags", ())
            date = spec.pop("date", None)
            spec.setdefault("message_id", "<m%d.%s@example.org>" % (n, self.user))
            raw = harness.message_bytes(**spec)
            uid = self.imap.append(mailbox, raw, flags=flags, internal_date=date)
            spec.update(uid=uid, raw=raw, flags=set(flags), date=date)
            out.append(spec)
        return out

    def message_ids(self, mailbox):
        """{uid: Message-ID} of every message of mailbox."""
        out = {}
        for uid in self.imap.uids(mailbox):
            hdr = self.imap.fetch(mailbox, uid, "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
            out[uid] = hdr.decode().split(":", 1)[1].strip()
        return out


# ------------------------------------------------------------------ search

class TestSearch(ActionTestCase):
    MAILBOX = "Entw\u00fcrfe/\u00c4rger & Co"

    def setUp(self):
        super().setUp()
        self.imap.create(self.MAILBOX)
        d = lambda m, day: datetime.datetime(2026, m, day, 12, 0, tzinfo=UTC)  # noqa: E731
        self.msgs = self.store_messages(self.MAILBOX, [
            dict(subject="Meeting notes", sender="alice@example.org", to="bob@example.org",
                 body="quarterly numbers\n", flags=["\\Seen"], date=d(1, 10)),
            dict(subject="Gr\u00fc\u00dfe aus K\u00f6ln", sender=("J\u00f6rg", "joerg@example.org"),
                 to="carol@example.org", body="K\u00e4sekuchen recipe\n" + "x" * 5000 + "\n",
                 flags=["\\Flagged"], date=d(2, 15)),
            dict(subject="Invoice 42", sender="billing@example.com", to="bob@example.org",
                 body="amount due\n", flags=["\\Seen", "\\Flagged"], date=d(3, 20)),
            dict(subject="Re: Gr\u00fc\u00dfe", sender="alice@example.org", to="carol@example.org",
                 body="danke\n", date=d(4, 1)),
        ])
        self.sizes = server_sizes(self.imap, self.MAILBOX)
        self.all_uids = self.imap.uids(self.MAILBOX)

    def search(self, *args, seq=False):
        argv = (["--seq"] if seq else []) + ["search", "--mailbox", self.MAILBOX] + list(args)
        doc = self.ok(*argv)
        self.assertEqual(set(doc), {"messages"})
        return doc["messages"]

    def assertFound(self, found, predicate):
        want = [m for m in self.msgs if predicate(m)]
        self.assertTrue(want or predicate is None, "the test's own selection is empty")
        self.assertEqual([m["uid"] for m in found], [m["uid"] for m in want])
        for got, m in zip(found, want):
            self.assertEqual(set(got), {"uid", "seq", "flags", "size", "internalDate",
                                        "envelope"})
            self.assertEqual(got["seq"], self.all_uids.index(m["uid"]) + 1)
            self.assertEqual(without_recent(got["flags"]), m["flags"])
            self.assertEqual(got["size"], self.sizes[m["uid"]])
            self.assertEqual(got["internalDate"], iso(m["date"]))
            env = got["envelope"]
            self.assertEqual(env["subject"], m["subject"])
            self.assertEqual(env["messageId"], m["message_id"])
            sender = m["sender"] if isinstance(m["sender"], tuple) else (None, m["sender"])
            self.assertEqual(env["from"], [{"name": sender[0], "address": sender[1]}])

    def test_everything(self):
        self.assertFound(self.search(), lambda m: True)

    def test_text_criteria_with_non_ascii_values(self):
        self.assertFound(self.search("--subject", "Gr\u00fc\u00dfe"),
                         lambda m: "Gr\u00fc\u00dfe" in m["subject"])
        self.assertFound(self.search("--text", "K\u00e4sekuchen"),
                         lambda m: "K\u00e4sekuchen" in m["body"])
        self.assertFound(self.search("--from", "J\u00f6rg"),
                         lambda m: isinstance(m["sender"], tuple))
        self.assertFound(self.search("--from", "alice@example.org", "--to", "carol"),
                         lambda m: m["sender"] == "alice@example.org"
                         and m["to"] == "carol@example.org")

    def test_seen_and_flagged(self):
        self.assertFound(self.search("--seen", "read"), lambda m: "\\Seen" in m["flags"])
        self.assertFound(self.search("--seen", "unread"), lambda m: "\\Seen" not in m["flags"])
        self.assertFound(self.search("--seen", "all"), lambda m: True)
        self.assertFound(self.search("--flagged", "true"), lambda m: "\\Flagged" in m["flags"])
        self.assertFound(self.search("--flagged", "false", "--seen", "read"),
                         lambda m: "\\Flagged" not in m["flags"] and "\\Seen" in m["flags"])

    def test_dates_and_sizes(self):
        since, before = datetime.date(2026, 2, 15), datetime.date(2026, 3, 21)
        self.assertFound(self.search("--since", since.isoformat()),
                         lambda m: m["date"].date() >= since)
        self.assertFound(self.search("--before", before.isoformat()),
                         lambda m: m["date"].date() < before)
        self.assertFound(self.search("--since", since.isoformat(), "--before",
                                     before.isoformat()),
                         lambda m: since <= m["date"].date() < before)
        limit = sorted(self.sizes.values())[1]
        self.assertFound(self.search("--larger", str(limit)),
                         lambda m: self.sizes[m["uid"]] > limit)
        self.assertFound(self.search("--smaller", str(limit)),
                         lambda m: self.sizes[m["uid"]] < limit)

    def test_range_limit_and_seq(self):
        u = [m["uid"] for m in self.msgs]
        self.assertFound(self.search("--range", "%d:%d" % (u[1], u[2])),
                         lambda m: u[1] <= m["uid"] <= u[2])
        self.assertFound(self.search("--range", "%d:*" % u[2]), lambda m: m["uid"] >= u[2])
        self.assertFound(self.search("--range", "*"), lambda m: m["uid"] == u[-1])
        # n:* never yields a message below n, whatever IMAP's * rule says
        self.assertEqual(self.search("--range", "%d:*" % (u[-1] + 5)), [])
        self.assertFound(self.search("--range", "2:3", seq=True),
                         lambda m: self.all_uids.index(m["uid"]) + 1 in (2, 3))
        self.assertFound(self.search("--limit", "2"), lambda m: m["uid"] in u[-2:])
        self.assertFound(self.search("--limit", "1", "--seen", "read"),
                         lambda m: m["uid"] == max(x["uid"] for x in self.msgs
                                                   if "\\Seen" in x["flags"]))

    def test_no_match(self):
        self.assertEqual(self.search("--subject", "nothing like this"), [])

    def test_does_not_set_seen(self):
        before = self.imap.flags(self.MAILBOX)
        self.search()
        self.assertEqual(self.imap.flags(self.MAILBOX), before)

    def test_many_messages_in_batches(self):
        # more than one UID FETCH batch (250), and a limit across batches
        for n in range(300):
            self.imap.append("INBOX", harness.message_bytes(subject="Nachricht %d" % n,
                                                            body="n\n"))
        uids = self.imap.uids("INBOX")
        doc = self.ok("search", "--mailbox", "INBOX")
        self.assertEqual([m["uid"] for m in doc["messages"]], uids)
        self.assertEqual([m["envelope"]["subject"] for m in doc["messages"]],
                         ["Nachricht %d" % n for n in range(300)])
        self.assertEqual([m["seq"] for m in doc["messages"]], list(range(1, 301)))
        doc = self.ok("search", "--mailbox", "INBOX", "--limit", "260")
        self.assertEqual([m["uid"] for m in doc["messages"]], uids[-260:])

    def test_at_most_10000_at_once(self):
        # the envelopes of one search are answered as one document: more
        # than 10,000 need a limit (or a narrower search)
        box = "Viele"
        self.imap.create(box)
        uids = []
        for start in range(0, 10001, 2500):
            uids += self.imap.append_many(box, [harness.message_bytes(subject="m%d" % n,
                                                                      body="n\n")
                                                for n in range(start, min(start + 2500, 10001))])
        r = self.fails(64, "search", "--mailbox", box)
        self.assertStderrMatches(r, "10001 messages match, more than 10000 at once")
        doc = self.ok("search", "--mailbox", box, "--limit", "10000")
        self.assertEqual([m["uid"] for m in doc["messages"]], uids[1:])
        doc = self.ok("search", "--mailbox", box, "--subject", "m10000")
        self.assertEqual([m["uid"] for m in doc["messages"]], uids[-1:])
        self.fails(64, "search", "--mailbox", box, "--limit", "10001")

    def test_errors(self):
        self.fails(1, "search", "--mailbox", "Gibt es nicht \u00fc")
        self.fails(64, "search")
        self.fails(64, "search", "--mailbox", "INBOX", "--since", "2026-02-30")
        self.fails(64, "search", "--mailbox", "INBOX", "--seen", "maybe")
        self.fails(64, "search", "--mailbox", "INBOX", "--limit", "0")
        self.fails(64, "search", "--mailbox", "INBOX", "--range", "1:x")
        self.fails(64, "search", "--mailbox", "INBOX", "--flagged", "yes")
        # numbers beyond 32 bits, strings beyond one IMAP line: usage
        for args in (("--larger", "5000000000"), ("--smaller", "4294967296"),
                     ("--limit", "4294967296"), ("--subject", "x" * 65537),
                     ("--range", "1," * 20000 + "1")):
            with self.subTest(param=args[0]):
                r = self.fails(64, "search", "--mailbox", self.MAILBOX, *args)
                self.assertStderrMatches(r, '"%s"' % args[0][2:])
        r = self.fails(64, "search", "--mailbox", "\u00e4" * 513)
        self.assertStderrMatches(r, '"mailbox"')
        self.assertEqual(self.search("--larger", "4294967295"), [])
        # a long string goes as a literal (synchronizing without LITERAL+)
        self.assertEqual(self.search("--subject", "\u00e4" * 4096, "--text", "x" * 8192), [])


# ---------------------------------------------------------------- download

def multipart_message(binary, text, qp_data):
    """A message whose parts are: 1 text/plain, 2 binary (base64), 3 text
    (quoted-printable, CRLF lines), 4 binary (quoted-printable), 5 a
    message/rfc822 holding one text part (5.1). Returns (raw, files) with
    files {part: the decoded bytes}."""
    b = "b0undary-42"
    crlf_text = text.replace("\n", "\r\n").encode("utf-8")
    inner = (b"Subject: inner\r\nFrom: inner@example.org\r\nContent-Type: text/plain\r\n\r\n"
             b"Innen drin.\r\n")
    parts = [
        (b"Content-Type: text/plain; charset=us-ascii\r\n\r\nHallo.\r\n"),
        (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; filename=\"daten.bin\"\r\n\r\n" + b64_lines(binary)),
        (b"Content-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n"
         b"Content-Disposition: attachment; filename=\"notiz.txt\"\r\n\r\n" + qp_text(text)),
        (b"Content-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: Quoted-Printable\r\n"
         b"Content-Disposition: attachment; filename=\"roh.bin\"\r\n\r\n"
         + qp_binary(qp_data)),
        (b"Content-Type: message/rfc822\r\n\r\n" + inner),
    ]
    raw = (b"From: sender@example.org\r\nTo: receiver@example.org\r\n"
           b"Subject: parts\r\nMessage-ID: <parts@example.org>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"" + b.encode() + b"\"\r\n\r\n"
           b"preamble\r\n")
    for p in parts:
        # the CRLF before a boundary belongs to the boundary, not the part
        raw += b"--" + b.encode() + b"\r\n" + p + b"\r\n"
    raw += b"--" + b.encode() + b"--\r\n"
    files = {"1": b"Hallo.\r\n", "2": binary, "3": crlf_text, "4": qp_data, "5": inner,
             "5.1": b"Innen drin.\r\n"}
    return raw, files


def sized_message(size, tag):
    """A plain message of exactly size bytes (CRLF lines)."""
    head = ("From: a@example.org\r\nTo: b@example.org\r\nSubject: big %s\r\n"
            "Message-ID: <%s@example.org>\r\n\r\n" % (tag, tag)).encode()
    left = size - len(head)
    line = b"0123456789" * 7 + b"abcdef\r\n"        # 78 bytes
    body = line * (left // len(line))
    rest = left - len(body)
    if rest == 1:
        body = body[:-len(line)] + b"z" * (len(line) - 1) + b"\r\n"
        rest = left - len(body)
    if rest:
        body += b"y" * (rest - 2) + b"\r\n"
    raw = head + body
    assert len(raw) == size
    return raw


class DownloadTests:
    """Shared by the full and the reduced server (mixin)."""

    MAILBOX = "Anh\u00e4nge"

    def setUp(self):
        super().setUp()
        self.imap.create(self.MAILBOX)
        rnd = os.urandom(1_500_000)
        text = ("Zeile mit \u00dcmlauten = und Gleichheitszeichen, " * 4 + "\n") * 40 + \
            "Leerzeichen am Ende   \nletzte Zeile ohne Umbruch"
        qp_data = bytes(range(256)) * 3 + b"\r\n\r\n\n\r=" + os.urandom(500)
        self.raw, self.files = multipart_message(rnd, text, qp_data)
        self.uid = self.imap.append(self.MAILBOX, self.raw)

    def download(self, *args, output=None):
        argv = ["download", "--mailbox", self.MAILBOX] + list(args)
        if output is not None:
            argv += ["--output", output]
        r = self.run_action(*argv)
        self.assertExit(r, 0)
        if output is not None:
            self.assertEqual(r.stdout, b"")
            with open(output, "rb") as f:
                return f.read()
        return r.stdout

    def test_whole_message_is_what_was_appended(self):
        self.assertEqual(self.download("--uid", str(self.uid)), self.raw)
        out = self.tmpdir() / "msg.eml"
        self.assertEqual(self.download("--index", "1", output=out), self.raw)

    def test_parts_are_decoded_byte_for_byte(self):
        for part, data in sorted(self.files.items()):
            with self.subTest(part=part):
                out = self.tmpdir() / ("part-" + part)
                got = self.download("--uid", str(self.uid), "--part", part, output=out)
                self.assertEqual(len(got), len(data))
                self.assertTrue(got == data, "part %s differs" % part)

    def test_never_sets_seen(self):
        self.download("--uid", str(self.uid))
        self.download("--uid", str(self.uid), "--part", "2")
        self.assertEqual(without_recent(self.imap.flags(self.MAILBOX)[self.uid]), set())

    def test_missing_message_or_part(self):
        self.fails(1, "download", "--mailbox", self.MAILBOX, "--uid", str(self.uid + 1))
        self.fails(1, "download", "--mailbox", self.MAILBOX, "--index", "2")
        for part in ("6", "1.1", "2.1", "5.2", "5.1.1"):
            with self.subTest(part=part):
                self.fails(1, "download", "--mailbox", self.MAILBOX, "--uid", str(self.uid),
                           "--part", part)
        self.fails(1, "download", "--mailbox", "Fehlt \u00fc", "--uid", "1")

    def test_bad_parameters(self):
        base = ["download", "--mailbox", self.MAILBOX]
        self.fails(64, *base)
        self.fails(64, *base, "--uid", "1", "--index", "1")
        self.fails(64, *base, "--uid", "0")
        self.fails(64, *base, "--uid", "1", "--part", "0")
        self.fails(64, *base, "--uid", "1", "--part", "2.")
        self.fails(64, *base, "--uid", "x")
        # a part number too long to name a section: refused, not truncated
        r = self.fails(64, *base, "--uid", "1", "--part", ".".join(["1"] * 49))
        self.assertStderrMatches(r, '"part"')
        self.fails(64, *base, "--uid", "1", "--part", "1.4294967296")

    def test_output_file_only_on_success(self):
        out = self.tmpdir() / "nothing.eml"
        self.fails(1, "download", "--mailbox", self.MAILBOX, "--uid", str(self.uid + 7),
                   "--output", str(out))
        self.assertFalse(out.exists())
        self.assertEqual(os.listdir(out.parent), [])


class TestDownload(DownloadTests, ActionTestCase):
    def test_large_messages_stream_in_chunks(self):
        # exactly two 1 MiB chunks (the end is found by an empty third),
        # and one that ends inside a chunk
        for size in (2 * 1024 * 1024, 2 * 1024 * 1024 + 1234567):
            with self.subTest(size=size):
                raw = sized_message(size, "s%d" % size)
                uid = self.imap.append(self.MAILBOX, raw)
                out = self.tmpdir() / "big.eml"
                got = self.download("--uid", str(uid), output=out)
                self.assertEqual(len(got), size)
                self.assertTrue(got == raw, "large message differs")
                self.assertEqual(without_recent(self.imap.flags(self.MAILBOX)[uid]), set())


class TestDownloadWithoutBinary(DownloadTests, ActionTestCase):
    """No BINARY: imaphook decodes base64 and quoted-printable itself."""

    @property
    def server(self):
        return reduced


# ------------------------------------------------------------------ append

class AppendTests:
    MAILBOX = "Eing\u00e4nge/Neu"

    def setUp(self):
        super().setUp()
        self.imap.create(self.MAILBOX)

    def check_appended(self, doc, raw_crlf, flags=()):
        uids = self.imap.uids(self.MAILBOX)
        self.assertEqual(set(doc), {"path", "uidValidity", "uid"})
        self.assertEqual(doc["path"], self.MAILBOX)
        self.assertEqual(doc["uid"], uids[-1])
        self.assertEqual(doc["uidValidity"], self.imap.status(self.MAILBOX)["UIDVALIDITY"])
        self.assertEqual(self.imap.fetch(self.MAILBOX, doc["uid"]), raw_crlf)
        self.assertEqual(without_recent(self.imap.flags(self.MAILBOX)[doc["uid"]]), set(flags))

    def test_file_with_bare_lf_is_stored_with_crlf(self):
        crlf = harness.message_bytes(subject="Gr\u00fc\u00dfe", body="eins\nzwei\n\ndrei\n")
        path = self.tmpdir() / "m.eml"
        path.write_bytes(crlf.replace(b"\r\n", b"\n"))
        doc = self.ok("append", "--mailbox", self.MAILBOX, "--file", str(path))
        self.check_appended(doc, crlf)

    def test_stdin_and_flags(self):
        crlf = harness.message_bytes(subject="von stdin", body="x\n")
        doc = self.ok("append", "--mailbox", self.MAILBOX, "--file", "-", "--flag", "\\Seen",
                      "--flag", "Wichtig", stdin=crlf)
        self.check_appended(doc, crlf, {"\\Seen", "Wichtig"})
        # a second one gets the next UID
        doc2 = self.ok("append", "--mailbox", self.MAILBOX, "--file", "-", stdin=crlf)
        self.assertGreater(doc2["uid"], doc["uid"])
        self.check_appended(doc2, crlf)

    def test_8bit_message_is_stored_as_is(self):
        crlf = ("From: j\u00f6rg@example.org\r\nSubject: 8bit \u00e4\u00f6\u00fc\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\nK\u00e4se\r\n").encode("utf-8")
        doc = self.ok("append", "--mailbox", self.MAILBOX, "--file", "-", stdin=crlf)
        self.check_appended(doc, crlf)

    def test_input_errors(self):
        d = self.tmpdir()
        (d / "empty.eml").write_bytes(b"")
        (d / "body-only.eml").write_bytes(b"just some text\n\nand more\n")
        (d / "blank-first.eml").write_bytes(b"\nSubject: late\n\nbody\n")
        for path in (d / "missing.eml", d, d / "empty.eml", d / "body-only.eml",
                     d / "blank-first.eml"):
            with self.subTest(path=path.name):
                self.fails(65, "append", "--mailbox", self.MAILBOX, "--file", str(path))
        self.fails(65, "append", "--mailbox", self.MAILBOX, "--file", "-", stdin=b"")
        self.fails(65, "append", "--mailbox", self.MAILBOX, "--file", "-",
                   stdin=b"Subject: nul\r\n\r\na\x00b\r\n")
        self.assertEqual(self.imap.uids(self.MAILBOX), [])

    def test_usage_and_refusal(self):
        path = self.tmpdir() / "m.eml"
        path.write_bytes(harness.message_bytes())
        self.fails(64, "append", "--mailbox", self.MAILBOX)
        self.fails(64, "append", "--file", str(path))
        self.fails(64, "append", "--mailbox", self.MAILBOX, "--file", str(path),
                   "--message", "Subject: x\n\nx\n")
        self.fails(64, "append", "--mailbox", self.MAILBOX, "--file", str(path),
                   "--flag", "two words")
        self.fails(1, "append", "--mailbox", "Nicht da \u00fc", "--file", str(path))


class TestAppend(AppendTests, ActionTestCase):
    pass


class TestAppendSynchronizingLiteral(AppendTests, ActionTestCase):
    """No LITERAL+: the message waits for the server's continuation."""

    @property
    def server(self):
        return reduced


# -------------------------------------------------------------- copy, move

class CopyMoveTests:
    SRC = "Quelle \u00fc"
    DST = "Ziel/\u00c4\u00d6\u00dc & mehr"

    def setUp(self):
        super().setUp()
        self.imap.create(self.SRC)
        self.imap.create(self.DST)
        self.msgs = self.store_messages(self.SRC, [
            dict(subject="m%d" % n, body="body %d\n" % n) for n in range(6)])
        self.uids = [m["uid"] for m in self.msgs]
        # a bystander flagged \Deleted outside every range used below
        self.bystander = self.uids[0]
        self.imap.store(self.SRC, self.bystander, "+FLAGS", ["\\Deleted"])
        self.src_ids = self.message_ids(self.SRC)

    def check_map(self, doc, src_uids):
        self.assertEqual(set(doc), {"path", "uidMap"})
        self.assertEqual(doc["path"], self.DST)
        self.assertEqual(sorted(int(k) for k in doc["uidMap"]), sorted(src_uids))
        dst_ids = self.message_ids(self.DST)
        for src, dst in doc["uidMap"].items():
            self.assertIsInstance(dst, int)
            self.assertEqual(dst_ids[dst], self.src_ids[int(src)],
                             "uidMap %s -> %s is not the same message" % (src, dst))
        self.assertEqual(len(dst_ids), len(src_uids))

    def test_copy(self):
        rng = "%d:%d" % (self.uids[2], self.uids[4])
        doc = self.ok("copy", "--mailbox", self.SRC, "--range", rng, "--to", self.DST)
        self.check_map(doc, self.uids[2:5])
        self.assertEqual(self.imap.uids(self.SRC), self.uids)     # nothing removed

    def test_copy_by_sequence_numbers(self):
        doc = self.ok("--seq", "copy", "--mailbox", self.SRC, "--range", "2,4", "--to", self.DST)
        self.check_map(doc, [self.uids[1], self.uids[3]])

    def test_move(self):
        moved = [self.uids[1], self.uids[3], self.uids[5]]
        doc = self.ok("move", "--mailbox", self.SRC, "--range",
                      ",".join(str(u) for u in moved), "--to", self.DST)
        self.check_map(doc, moved)
        left = self.imap.uids(self.SRC)
        self.assertEqual(left, [u for u in self.uids if u not in moved])
        # the \Deleted bystander is still there, still \Deleted
        self.assertIn("\\Deleted", self.imap.flags(self.SRC)[self.bystander])

    def test_move_star(self):
        doc = self.ok("move", "--mailbox", self.SRC, "--range", "*", "--to", self.DST)
        self.check_map(doc, [self.uids[-1]])
        self.assertEqual(self.imap.uids(self.SRC), self.uids[:-1])

    def test_nothing_matches(self):
        doc = self.ok("move", "--mailbox", self.SRC, "--range", str(self.uids[-1] + 10),
                      "--to", self.DST)
        self.assertEqual(doc, {"path": self.DST, "uidMap": {}})
        self.assertEqual(self.imap.uids(self.SRC), self.uids)

    def test_star_range_beyond_the_last_uid(self):
        """n:* with every UID below n is nothing (RFC 3501 would read it as
        last:n and act on the last message); a:* below the last UID still
        spans a..last."""
        beyond = self.uids[-1] + 10
        for action in ("copy", "move"):
            for rng in ("%d:*" % beyond, "*:%d" % beyond):
                with self.subTest(action=action, range=rng):
                    doc = self.ok(action, "--mailbox", self.SRC, "--range", rng,
                                  "--to", self.DST)
                    self.assertEqual(doc, {"path": self.DST, "uidMap": {}})
        self.assertEqual(self.imap.uids(self.SRC), self.uids)
        self.assertEqual(self.imap.uids(self.DST), [])
        # the part of the range that exists, and only it
        doc = self.ok("copy", "--mailbox", self.SRC, "--range",
                      "%d,%d:*" % (self.uids[2], beyond), "--to", self.DST)
        self.check_map(doc, [self.uids[2]])
        doc = self.ok("move", "--mailbox", self.SRC, "--range", "%d:*" % self.uids[4],
                      "--to", self.DST)
        self.assertEqual(sorted(int(k) for k in doc["uidMap"]), self.uids[4:])
        self.assertEqual(self.imap.uids(self.SRC), self.uids[:4])
        self.assertEqual(len(self.imap.uids(self.DST)), 3)
        # nothing in the range and no such target: still 404
        self.fails(1, "move", "--mailbox", self.SRC, "--range", "%d:*" % beyond,
                   "--to", "Fehlt \u00fc")

    def test_errors(self):
        for action in ("copy", "move"):
            with self.subTest(action=action):
                self.fails(1, action, "--mailbox", self.SRC, "--range", "1:*",
                           "--to", "Fehlt \u00fc")
                self.fails(1, action, "--mailbox", "Fehlt \u00fc", "--range", "1",
                           "--to", self.DST)
                # nothing to copy: the server may not look at the target
                self.fails(1, action, "--mailbox", self.SRC, "--range",
                           str(self.uids[-1] + 10), "--to", "Fehlt \u00fc")
                self.fails(64, action, "--mailbox", self.SRC, "--to", self.DST)
                self.fails(64, action, "--mailbox", self.SRC, "--range", "0:3",
                           "--to", self.DST)
        self.assertEqual(self.imap.uids(self.SRC), self.uids)
        self.assertEqual(self.imap.uids(self.DST), [])


class TestCopyMove(CopyMoveTests, ActionTestCase):
    pass


class TestCopyMoveWithoutMove(CopyMoveTests, ActionTestCase):
    """No MOVE: COPY, STORE \\Deleted and UID EXPUNGE of exactly the UIDs."""

    @property
    def server(self):
        return reduced


# ------------------------------------------------------------------ delete

class TestDelete(ActionTestCase):
    MAILBOX = "Papierkorb \u00fc"

    def setUp(self):
        super().setUp()
        self.imap.create(self.MAILBOX)
        self.uids = [m["uid"] for m in self.store_messages(self.MAILBOX, [
            dict(subject="d%d" % n) for n in range(3)])]
        # another message already flagged \Deleted must survive
        self.imap.store(self.MAILBOX, self.uids[0], "+FLAGS", ["\\Deleted"])

    def test_delete_only_that_uid(self):
        doc = self.ok("delete", "--mailbox", self.MAILBOX, "--uid", str(self.uids[1]))
        self.assertEqual(doc, {"deleted": [self.uids[1]]})
        self.assertEqual(self.imap.uids(self.MAILBOX), [self.uids[0], self.uids[2]])
        self.assertIn("\\Deleted", self.imap.flags(self.MAILBOX)[self.uids[0]])

    def test_missing_uid(self):
        self.fails(1, "delete", "--mailbox", self.MAILBOX, "--uid", str(self.uids[-1] + 1))
        self.ok("delete", "--mailbox", self.MAILBOX, "--uid", str(self.uids[2]))
        self.fails(1, "delete", "--mailbox", self.MAILBOX, "--uid", str(self.uids[2]))
        self.assertEqual(self.imap.uids(self.MAILBOX), self.uids[:2])

    def test_errors(self):
        self.fails(1, "delete", "--mailbox", "Fehlt \u00fc", "--uid", "1")
        self.fails(64, "delete", "--mailbox", self.MAILBOX)
        self.fails(64, "delete", "--mailbox", self.MAILBOX, "--uid", "0")
        self.fails(64, "delete", "--mailbox", self.MAILBOX, "--uid", "1:2")
        self.assertEqual(self.imap.uids(self.MAILBOX), self.uids)


class TestWithoutUidplus(ActionTestCase):
    """No UIDPLUS (and no MOVE): delete and move refuse rather than expunge
    other messages flagged \\Deleted."""

    @property
    def server(self):
        return reduced

    @classmethod
    def setUpClass(cls):
        reduced.set_capabilities(NO_UIDPLUS_CAPS)

    @classmethod
    def tearDownClass(cls):
        reduced.set_capabilities(REDUCED_CAPS)

    def test_refusals(self):
        self.imap.create("Ziel")
        uids = [m["uid"] for m in self.store_messages("INBOX", [dict(subject="a"),
                                                                dict(subject="b")])]
        self.imap.store("INBOX", uids[0], "+FLAGS", ["\\Deleted"])
        r = self.fails(1, "delete", "--mailbox", "INBOX", "--uid", str(uids[1]))
        self.assertStderrMatches(r, "UIDPLUS")
        r = self.fails(1, "move", "--mailbox", "INBOX", "--range", str(uids[1]), "--to", "Ziel")
        self.assertStderrMatches(r, "UIDPLUS")
        self.assertEqual(self.imap.uids("INBOX"), uids)
        self.assertEqual(self.imap.uids("Ziel"), [])
        # copy needs neither
        doc = self.ok("copy", "--mailbox", "INBOX", "--range", str(uids[1]), "--to", "Ziel")
        self.assertEqual(doc["path"], "Ziel")
        self.assertEqual(self.imap.uids("INBOX"), uids)
        self.assertEqual(len(self.imap.uids("Ziel")), 1)


# ------------------------------------------------------------------- flags

class TestFlags(ActionTestCase):
    MAILBOX = "Markiert \u00fc"

    def setUp(self):
        super().setUp()
        self.imap.create(self.MAILBOX)
        self.uids = [m["uid"] for m in self.store_messages(self.MAILBOX, [
            dict(subject="f%d" % n, flags=fl) for n, fl in
            enumerate([(), ["\\Seen"], ["\\Flagged", "alt"], ()])])]

    def flags_action(self, action, rng, flags, seq=False):
        argv = (["--seq"] if seq else []) + [action, "--mailbox", self.MAILBOX, "--range", rng]
        for f in flags:
            argv += ["--flag", f]
        doc = self.ok(*argv)
        self.assertEqual(set(doc), {"messages"})
        server = self.imap.flags(self.MAILBOX)
        got = [m["uid"] for m in doc["messages"]]
        self.assertEqual(got, sorted(got), "UID order")
        for m in doc["messages"]:
            self.assertEqual(set(m), {"uid", "flags"})
            self.assertEqual(without_recent(m["flags"]), without_recent(server[m["uid"]]),
                             "uid %d: reported flags differ from the server's" % m["uid"])
        return {m["uid"]: without_recent(m["flags"]) for m in doc["messages"]}, server

    def test_add_remove_set(self):
        u = self.uids
        before = self.imap.flags(self.MAILBOX)
        got, server = self.flags_action("add-flags", "*", ["\\Flagged", "$Projekt"])
        self.assertEqual(list(got), [u[-1]])
        self.assertEqual(got[u[-1]], without_recent(before[u[-1]]) | {"\\Flagged", "$Projekt"})
        for uid in u[:-1]:
            self.assertEqual(without_recent(server[uid]), without_recent(before[uid]),
                             "only * changed")

        got, server = self.flags_action("add-flags", "1:*", ["\\Answered", "erledigt"])
        self.assertEqual(list(got), u)
        for uid in u:
            self.assertTrue({"\\Answered", "erledigt"} <= got[uid])

        got, _ = self.flags_action("remove-flags", "%d:%d" % (u[1], u[2]),
                                   ["\\Answered", "alt", "\\Seen"])
        self.assertEqual(list(got), u[1:3])
        self.assertEqual(got[u[1]], without_recent(before[u[1]]) - {"\\Seen"} | {"erledigt"})
        self.assertEqual(got[u[2]], {"\\Flagged", "erledigt"})

        got, server = self.flags_action("set-flags", "%d,%d" % (u[0], u[3]),
                                        ["\\Seen", "nur-das"])
        self.assertEqual(got, {u[0]: {"\\Seen", "nur-das"}, u[3]: {"\\Seen", "nur-das"}})
        self.assertIn("erledigt", server[u[1]])
        self.assertNotIn("\\Seen", server[u[1]])

    def test_by_sequence_number(self):
        got, _ = self.flags_action("add-flags", "2:3", ["\\Draft"], seq=True)
        self.assertEqual(list(got), self.uids[1:3])
        self.assertTrue(all("\\Draft" in f for f in got.values()))

    def test_unchanged_flags_are_reported_too(self):
        self.flags_action("add-flags", "1:*", ["\\Seen"])
        got, _ = self.flags_action("add-flags", "1:*", ["\\Seen"])
        self.assertEqual(list(got), self.uids)

    def test_star_range_beyond_the_last_uid(self):
        """n:* with every UID below n touches nothing (RFC 3501 would read
        it as last:n, and set-flags would replace the last message's
        flags); a:* below the last UID still spans a..last."""
        u = self.uids
        before = self.imap.flags(self.MAILBOX)
        for action in ("add-flags", "remove-flags", "set-flags"):
            for rng in ("%d:*" % (u[-1] + 10), "*:%d" % (u[-1] + 1)):
                with self.subTest(action=action, range=rng):
                    got, server = self.flags_action(action, rng, ["\\Seen", "x"])
                    self.assertEqual(got, {})
                    for uid in u:
                        self.assertEqual(without_recent(server[uid]),
                                         without_recent(before[uid]), "uid %d changed" % uid)
        got, server = self.flags_action("set-flags", "%d:*" % u[2], ["nur-das"])
        self.assertEqual(got, {u[2]: {"nur-das"}, u[3]: {"nur-das"}})
        for uid in u[:2]:
            self.assertEqual(without_recent(server[uid]), without_recent(before[uid]))
        got, _ = self.flags_action("add-flags", "%d,%d:*" % (u[0], u[-1] + 1), ["y"])
        self.assertEqual(list(got), [u[0]])

    def test_errors(self):
        base = ["--mailbox", self.MAILBOX, "--range", "1:*"]
        self.fails(64, "add-flags", *base)
        self.fails(64, "add-flags", *base, "--flag", "K\u00e4se")
        self.fails(64, "set-flags", *base, "--flag", "a b")
        self.fails(64, "remove-flags", "--mailbox", self.MAILBOX, "--flag", "x")
        self.fails(1, "add-flags", "--mailbox", "Fehlt \u00fc", "--range", "1", "--flag", "x")
        self.fails(1, "add-flags", *base, "--flag", "\\Recent")


# --------------------------------------------------------------- mailboxes

class TestMailboxActions(ActionTestCase):
    def test_create(self):
        path = "Projekte/\u00dcn\u00efc\u00f8d\u00e9 & Co"
        doc = self.ok("create-mailbox", "--path", path)
        self.assertEqual(doc, {"path": path, "created": True})
        self.assertIn(path, self.imap.mailboxes())
        self.assertIn(path, self.imap.subscribed())
        self.fails(1, "create-mailbox", "--path", path)
        self.fails(1, "create-mailbox", "--path", "INBOX")
        self.fails(64, "create-mailbox")
        self.fails(64, "create-mailbox", "--path", "")

    def test_rename_moves_subscriptions(self):
        self.imap.create("Alt \u00e4", subscribe=True)
        self.imap.create("Alt \u00e4/Kind", subscribe=True)
        self.imap.create("Alt \u00e4hnlich", subscribe=True)     # not below it
        uid = self.imap.append("Alt \u00e4", harness.message_bytes(subject="bleibt"))
        doc = self.ok("rename-mailbox", "--path", "Alt \u00e4", "--new-path", "Neu \u00f6")
        self.assertEqual(doc, {"path": "Alt \u00e4", "newPath": "Neu \u00f6"})
        names = self.imap.mailboxes()
        self.assertNotIn("Alt \u00e4", names)
        self.assertIn("Neu \u00f6", names)
        self.assertIn("Neu \u00f6/Kind", names)
        self.assertEqual(self.imap.uids("Neu \u00f6"), [uid])
        subs = self.imap.subscribed()
        self.assertTrue({"Neu \u00f6", "Neu \u00f6/Kind", "Alt \u00e4hnlich"} <= subs, subs)
        self.assertFalse({"Alt \u00e4", "Alt \u00e4/Kind"} & subs, subs)

    def test_rename_errors(self):
        self.imap.create("Da")
        self.imap.create("Auch da")
        self.fails(1, "rename-mailbox", "--path", "Fehlt \u00fc", "--new-path", "X")
        self.fails(1, "rename-mailbox", "--path", "Da", "--new-path", "Auch da")
        self.fails(64, "rename-mailbox", "--path", "Da")
        self.assertTrue({"Da", "Auch da"} <= set(self.imap.mailboxes()))

    def test_delete(self):
        path = "Weg damit \u00fc"
        self.imap.create(path, subscribe=True)
        self.imap.append(path, harness.message_bytes())
        doc = self.ok("delete-mailbox", "--path", path)
        self.assertEqual(doc, {"path": path, "deleted": True})
        self.assertNotIn(path, self.imap.mailboxes())
        self.assertNotIn(path, self.imap.subscribed())
        self.fails(1, "delete-mailbox", "--path", path)
        self.fails(64, "delete-mailbox")

    def test_round_trip_through_every_action(self):
        # create, append, search, flag, copy, download, move, delete and
        # remove mailboxes again, all with non-ASCII names
        a, b = "R\u00fcckweg/\u00e4", "R\u00fcckweg/\u00df"
        self.ok("create-mailbox", "--path", a)
        self.ok("create-mailbox", "--path", b)
        raw = harness.message_bytes(subject="Rundreise \u00fc", body="hin und her\n")
        uid = self.ok("append", "--mailbox", a, "--file", "-", stdin=raw)["uid"]
        found = self.ok("search", "--mailbox", a, "--subject", "Rundreise \u00fc")["messages"]
        self.assertEqual([m["uid"] for m in found], [uid])
        self.ok("add-flags", "--mailbox", a, "--range", str(uid), "--flag", "\\Flagged")
        dst = self.ok("copy", "--mailbox", a, "--range", str(uid), "--to", b)["uidMap"][str(uid)]
        r = self.run_action("download", "--mailbox", b, "--uid", str(dst))
        self.assertExit(r, 0)
        self.assertEqual(r.stdout, raw)
        self.assertIn("\\Flagged", self.imap.flags(b)[dst])
        moved = self.ok("move", "--mailbox", b, "--range", str(dst), "--to", a)["uidMap"]
        self.assertEqual(list(moved), [str(dst)])
        self.ok("delete", "--mailbox", a, "--uid", str(uid))
        self.assertEqual(self.imap.uids(a), [moved[str(dst)]])
        self.ok("delete-mailbox", "--path", b)
        self.ok("delete-mailbox", "--path", a)
        self.assertFalse({a, b} & set(self.imap.mailboxes()))


# --------------------------------------------------------------- HTTP door

class TestHttpDoor(ActionTestCase):
    """The same actions through imaphookd's POST /v1/actions/ACTION, on one
    pooled connection (max_connections = 1) that every request reuses."""

    def setUp(self):
        super().setUp()
        self.cfg.connection("main")["max_connections"] = 1
        self.port = harness.free_port()
        self.cfg.api = {"listen": "127.0.0.1:%d" % self.port}
        self.cfg.write()
        self.daemon = self.start_daemon(self.cfg, wait_for=r"api: listening")

    def post(self, action, params):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/v1/actions/" + action, body=json.dumps(params).encode(),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type"), resp.read()
        finally:
            conn.close()

    def post_json(self, action, params, status=200):
        code, ctype, body = self.post(action, params)
        self.assertEqual(code, status, "%s %r -> %s %s" % (action, params, code, body[:500]))
        doc = json.loads(body)
        if status != 200:
            self.assertEqual(set(doc), {"error"})
            self.assertEqual(set(doc["error"]), {"code", "message"})
        return doc

    def test_actions_share_one_connection(self):
        box, new = "Ordner \u00fc", "Umbenannt \u00f6"
        self.imap.create(box, subscribe=True)
        raw, files = multipart_message(os.urandom(4000), "Text \u00e4\n", b"\x00\xff=")
        # search leaves box selected on the pooled connection
        self.assertEqual(self.post_json("search", {"mailbox": box}), {"messages": []})
        # renaming the selected mailbox must not make the server hang up
        self.assertEqual(self.post_json("rename-mailbox", {"path": box, "newPath": new}),
                         {"path": box, "newPath": new})
        doc = self.post_json("append", {"mailbox": new, "message": raw.decode("utf-8"),
                                        "flags": ["\\Seen", "http"]})
        uid = doc["uid"]
        self.assertEqual(self.imap.fetch(new, uid), raw)
        self.assertEqual(without_recent(self.imap.flags(new)[uid]), {"\\Seen", "http"})
        code, ctype, body = self.post("download", {"mailbox": new, "uid": uid, "part": "2"})
        self.assertEqual((code, ctype), (200, "application/octet-stream"))
        self.assertEqual(body, files["2"])
        code, ctype, body = self.post("download", {"mailbox": new, "uid": uid})
        self.assertEqual((code, ctype, body), (200, "message/rfc822", raw))
        doc = self.post_json("add-flags", {"mailbox": new, "range": "*", "flags": ["x1"]})
        self.assertEqual([m["uid"] for m in doc["messages"]], [uid])
        # deleting the selected mailbox must not either
        self.assertEqual(self.post_json("delete-mailbox", {"path": new}),
                         {"path": new, "deleted": True})
        self.assertNotIn(new, self.imap.mailboxes())
        self.post_json("mailbox-status", {"mailbox": "INBOX"})
        self.assertEqual(len(self.srv.logins(self.user)), 2,     # ours and imaphookd's
                         "imaphookd had to log in again:\n" + "\n".join(
                             self.srv.log_lines(self.user)))

    def test_star_range_beyond_the_last_uid(self):
        """n:* acts on no message when every UID is below n (RFC 3501 would
        read it as last:n): an empty result, nothing changed."""
        self.imap.create("Drei")
        self.imap.create("Ziel")
        uids = [self.imap.append("Drei", harness.message_bytes(subject="m%d" % n))
                for n in range(3)]
        before = self.imap.flags("Drei")
        beyond = "%d:*" % (uids[-1] + 7)
        for action in ("copy", "move"):
            self.assertEqual(self.post_json(action, {"mailbox": "Drei", "range": beyond,
                                                     "to": "Ziel"}),
                             {"path": "Ziel", "uidMap": {}})
        for action in ("add-flags", "remove-flags", "set-flags"):
            self.assertEqual(self.post_json(action, {"mailbox": "Drei", "range": beyond,
                                                     "flags": ["\\Seen"]}),
                             {"messages": []})
        self.assertEqual(self.imap.uids("Drei"), uids)
        self.assertEqual(self.imap.uids("Ziel"), [])
        after = self.imap.flags("Drei")
        for uid in uids:
            self.assertEqual(without_recent(after[uid]), without_recent(before[uid]))
        doc = self.post_json("set-flags", {"mailbox": "Drei", "range": "%d:*" % uids[1],
                                           "flags": ["neu"]})
        self.assertEqual([(m["uid"], m["flags"]) for m in doc["messages"]],
                         [(uids[1], ["neu"]), (uids[2], ["neu"])])
        doc = self.post_json("move", {"mailbox": "Drei", "range": "%d:*" % uids[1],
                                      "to": "Ziel"})
        self.assertEqual(sorted(int(k) for k in doc["uidMap"]), uids[1:])
        self.assertEqual(self.imap.uids("Drei"), uids[:1])

    def test_statuses(self):
        self.imap.create("Da")
        self.post_json("create-mailbox", {"path": "Da"}, 409)
        self.post_json("search", {"mailbox": "Fehlt \u00fc"}, 404)
        uid = self.imap.append("Da", harness.message_bytes())
        self.post_json("copy", {"mailbox": "Da", "range": str(uid), "to": "Fehlt"}, 404)
        self.post_json("move", {"mailbox": "Da", "range": str(uid + 1), "to": "Fehlt"}, 404)
        self.post_json("download", {"mailbox": "Da", "uid": uid + 1}, 404)
        self.post_json("append", {"mailbox": "Da", "message": "kein Kopf\n\nText\n"}, 400)
        self.post_json("append", {"mailbox": "Da", "message": ""}, 400)
        self.post_json("append", {"mailbox": "Da", "file": "/etc/passwd"}, 400)
        self.post_json("append", {"mailbox": "Da"}, 400)
        self.post_json("download", {"mailbox": "Da", "uid": 1, "index": 1}, 400)
        self.post_json("add-flags", {"mailbox": "Da", "range": "1", "flags": "x"}, 400)
        self.assertEqual(self.imap.uids("Da"), [uid])
