"""Hostile mail through a real Dovecot to imaphookd with fetch_content = true:
MIME nested 1,000 deep, broken base64, unknown charsets (in the body, in an
encoded-word), a text part of control characters and quotes (the worst case
for JSON escaping), a 3 MiB Subject, a 50 MiB attachment, and a message
with 60,000 recipients.

Every message still produces its event with what could be parsed (strings
valid UTF-8), content is parsed from at most max_content_size bytes
("truncated": true beyond), and the POST bodies stay bounded: by
max_content_size times the JSON escaping factor (at most 6: "\\u0001") for
content, plus the envelope, which Dovecot sends whole (bounded only by the
IMAP parser's limits: the figures line shows the sizes).
"""

import base64
import os
import sys

from . import harness

dovecot = None

MiB = 1 << 20


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()
    HostileMailTest.server = dovecot


def nested(depth):
    out = ["From: a@example.org\r\nTo: b@example.org\r\nSubject: nested %d deep\r\n"
           "MIME-Version: 1.0\r\n" % depth]
    for i in range(depth):
        out.append('Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i))
    out.append("Content-Type: text/plain\r\n\r\nthe innermost text\r\n")
    for i in reversed(range(depth)):
        out.append("--b%d--\r\n" % i)
    return "".join(out).encode("ascii")


BROKEN_BASE64 = (b"From: a@example.org\r\nSubject: broken base64\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n"
                 b"SGVsbG8gV29ybGQ!!!@@@ not base64 ===\r\n====\r\nSGk=SGk\r\n")

UNKNOWN_CHARSETS = (b"From: a@example.org\r\nSubject: =?x-unknown?Q?caf=E9?= ok\r\n"
                    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n"
                    b"--x\r\nContent-Type: text/plain; charset=\"x-no-such-charset\"\r\n"
                    b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 \xff\xfe\r\n"
                    b"--x\r\nContent-Type: text/html; charset=\"utf-7\"\r\n\r\n"
                    b"<p>+AOk-t+AOk-</p>\r\n--x--\r\n")


def control_text(size):
    return (b"From: a@example.org\r\nSubject: control characters\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + b"\x01" * size + b"\r\n")


def big_subject(size):
    return b"From: a@example.org\r\nSubject: " + b"S" * size + b"\r\n\r\nbody\r\n"


def attachment(size):
    data = os.urandom(size)
    b64 = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"From: a@example.org\r\nSubject: a big attachment\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
            b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee the attachment\r\n"
            b"--zz\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 + b"--zz--\r\n")


def many_recipients(n):
    to = ", ".join("u%d@example.org" % i for i in range(n))
    return ("From: a@example.org\r\nTo: %s\r\nSubject: %d recipients\r\n\r\nbody\r\n"
            % (to, n)).encode("ascii")


class HostileMailTest(harness.DaemonTestCase):

    def check_strings(self, v, where="event"):
        """Every string in the event is valid UTF-8 (json.loads would have
        failed otherwise) and holds no surrogate."""
        if isinstance(v, dict):
            for k, x in v.items():
                self.check_strings(x, "%s.%s" % (where, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                self.check_strings(x, "%s[%d]" % (where, i))
        elif isinstance(v, str):
            v.encode("utf-8")

    def test_hostile_mime_still_posts_events_within_bounds(self):
        limit = 256 * 1024
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, start_from="all",
                        fetch_content=True, max_content_size=limit)
        raws = {"nested": nested(1000), "base64": BROKEN_BASE64, "charsets": UNKNOWN_CHARSETS,
                "control": control_text(4 * limit), "subject": big_subject(3 * MiB)}
        uids = {name: self.imap.append("INBOX", raw) for name, raw in raws.items()}
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        ids = self.event_ids("t", uv, list(uids.values()))
        rx.wait_for_ids(ids, timeout=60)
        self.api.wait_polls("t", 2)
        d.term()
        self.assertDeliveredExactly(rx, ids)
        by_uid = {r.json["uid"]: r for r in rx.requests}
        figures = []
        for name, uid in uids.items():
            r = by_uid[uid]
            e = r.json
            c = e["content"]
            self.check_strings(e)
            self.assertEqual(c["truncated"], len(raws[name]) > limit, name)
            self.assertEqual(e["size"], len(raws[name]), name)
            figures.append("%s %d B -> POST %d B" % (name, len(raws[name]), len(r.body)))
            if name != "subject":
                # content: max_content_size times the JSON escaping factor
                self.assertLessEqual(len(r.body), 6 * limit + 64 * 1024, name)
        ev = {name: by_uid[uid].json for name, uid in uids.items()}
        self.assertEqual(ev["nested"]["envelope"]["subject"], "nested 1000 deep")
        self.assertIsNone(ev["nested"]["content"]["text"])     # deeper than MIME_MAX_DEPTH
        self.assertTrue(ev["base64"]["content"]["text"].startswith("Hello World"))
        self.assertEqual(ev["charsets"]["content"]["text"].rstrip(), "caf\u00e9 \u00ff\u00fe")
        self.assertEqual(ev["charsets"]["content"]["html"].rstrip(), "<p>\u00e9t\u00e9</p>")
        self.assertTrue(ev["charsets"]["envelope"]["subject"].startswith("caf"))
        self.assertTrue(set(ev["control"]["content"]["text"]) <= {"\x01", "\r", "\n"})
        self.assertLessEqual(len(ev["control"]["content"]["text"]), limit)
        self.assertEqual(len(ev["subject"]["envelope"]["subject"]), 3 * MiB)
        sys.stderr.write("\n  [hostile mail (max_content_size %d): %s]\n" % (limit, "; ".join(figures)))

    def test_50_mib_attachment(self):
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, fetch_content=True)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        raw = attachment(50 * MiB)
        uid = self.imap.append("INBOX", raw)
        [event_id] = self.event_ids("t", self.uidvalidity(), [uid])
        rx.wait_for_ids([event_id], timeout=120)
        r = rx.requests[-1]
        e = r.json
        self.assertEqual(e["size"], len(raw))
        self.assertTrue(e["content"]["truncated"])
        self.assertEqual(e["content"]["text"].rstrip(), "see the attachment")
        [att] = e["content"]["attachments"]
        self.assertEqual((att["partId"], att["filename"], att["contentType"]),
                         ("2", "big.bin", "application/octet-stream"))
        self.assertLess(att["size"], 4 * MiB)          # what the first 4 MiB hold
        self.assertLess(len(r.body), 4 * MiB)          # max_content_size (default)
        st = self.api.healthz()
        self.assertEqual(st[0], 200)
        d.term()
        sys.stderr.write("\n  [50 MiB attachment: message %d B, POST %d B, attachment size "
                         "in the event %d B]\n" % (len(raw), len(r.body), att["size"]))

    def test_60000_recipients_do_not_block_the_mailbox(self):
        # Dovecot sends the ENVELOPE of a message with 60,000 To: addresses
        # (a 1 MiB header) on one line of about 2 MiB: the parser's limits
        # (16 MiB lines) take it, the event is delivered and later mail
        # flows, not a UID FETCH failing and retried for ever.
        cfg = self.make_config(poll_backoff_max=1)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, start_from="all")
        uids = [self.imap.append("INBOX", many_recipients(60000)),
                self.imap.append("INBOX", harness.make_message(subject="after it"))]
        ids = self.event_ids("t", self.uidvalidity(), uids)
        self.run_daemon(cfg)
        rx.wait_for_ids(ids[1:], timeout=20)
