"""imaphookd's "New Emails" trigger against a real Dovecot and real HTTP
receivers: what gets delivered, once, in which order, with which body.

- start_from "now" does not flood, "all" delivers the backlog in UID order;
- a burst and a trickle while running: UID order, exactly once;
- the email.new body field by field and the Standard Webhooks headers;
- fetch_content: multipart text/html, attachments (cross-checked with
  `imaphook download --part`), RFC 2047, ISO-8859-1 quoted-printable,
  max_content_size truncation;
- mark_as_read on and off, seen through an independent imaplib client;
- a clean stop and start delivers exactly the new mail;
- the "UID n:*" answer for the last message is never delivered again;
- a message appended between STATUS and FETCH (a TCP proxy appends it when
  the daemon sends EXAMINE) is delivered exactly once;
- a UIDVALIDITY change posts one mailbox.reset, then follows start_from.

Every receiver checks every signature; every test has its own Dovecot user.
"""

import calendar
import datetime
import os
import re
import signal
import threading
import time

from . import harness

dovecot = None

UTC = datetime.timezone.utc


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()     # the test_daemon_* modules share it
    TriggerTestCase.server = dovecot


def iso(dt):
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def internaldate_iso(s):
    """An IMAP INTERNALDATE string ("02-Jan-2024 03:04:05 +0000") as UTC ISO."""
    return iso(datetime.datetime.strptime(s, "%d-%b-%Y %H:%M:%S %z"))


class TriggerTestCase(harness.DaemonTestCase):

    @staticmethod
    def commands(log, since=0, after_status=False):
        """The IMAP verbs the daemon sent (its debug log shows every command
        as "C: TAG VERB ..."): log is a Daemon (lines from number since on)
        or a text. after_status: from the first STATUS on (leaving out the
        end of a poll in progress)."""
        lines = log.lines[since:] if isinstance(log, harness.Daemon) else log.splitlines()
        verbs = []
        for line in lines:
            m = re.search(r" C: \S+ (UID \S+|\S+)", line)
            if m:
                verbs.append(m.group(1))
        if after_status and "STATUS" in verbs:
            verbs = verbs[verbs.index("STATUS"):]
        return set(verbs)

    def simple_setup(self, mailbox="INBOX", trigger="t", **keys):
        """A config with one signed receiver and one trigger on mailbox,
        polled every second. Returns (cfg, rx)."""
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        keys.setdefault("interval", 1)
        cfg.add_trigger(trigger, "main", mailbox, ["hook"], **keys)
        return cfg, rx


class TestStartFrom(TriggerTestCase):

    def test_now_does_not_flood_and_all_delivers_backlog_in_order(self):
        old = self.append(5)
        uv = self.uidvalidity()
        cfg = self.make_config()
        rx_now, rx_all = self.receiver(), self.receiver()
        self.add_hook(cfg, "now-hook", rx_now)
        self.add_hook(cfg, "all-hook", rx_all)
        cfg.add_trigger("now", "main", "INBOX", ["now-hook"], interval=1, start_from="now")
        cfg.add_trigger("all", "main", "INBOX", ["all-hook"], interval=1, start_from="all")
        d = self.run_daemon(cfg)
        rx_all.wait_for_ids(self.event_ids("all", uv, old))
        d.wait_for_log(r"trigger now: watching INBOX")
        # A sentinel appended once both run: when it has arrived, anything
        # older would have arrived before it (delivery is in UID order).
        new = self.imap.append("INBOX", harness.make_message(subject="sentinel"))
        rx_now.wait_for_ids(self.event_ids("now", uv, [new]))
        rx_all.wait_for_ids(self.event_ids("all", uv, [new]))
        self.api.wait_polls(["now", "all"], 2)
        self.assertDeliveredExactly(rx_now, self.event_ids("now", uv, [new]),
                                    "start_from = now delivered the old mail")
        self.assertDeliveredExactly(rx_all, self.event_ids("all", uv, old + [new]))
        self.assertEqual([e["uid"] for e in rx_all.events()], old + [new])


class TestOrderAndOnce(TriggerTestCase):

    def test_burst_then_trickle_in_uid_order_exactly_once(self):
        cfg, rx = self.simple_setup()
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        burst = self.append(50)
        rx.wait_for_ids(self.event_ids("t", uv, burst), timeout=20)
        trickle = [self.imap.append("INBOX", harness.make_message(subject="late %d" % i))
                   for i in range(10)]
        rx.wait_for_ids(self.event_ids("t", uv, trickle), timeout=20)
        self.api.wait_polls("t", 2)
        self.assertEqual(burst + trickle, list(range(1, 61)))
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, burst + trickle))
        self.assertEqual([e["envelope"]["subject"] for e in rx.events()],
                         ["m%d" % i for i in range(1, 51)] + ["late %d" % i for i in range(10)])

    def test_stop_append_start_delivers_exactly_the_new_ones(self):
        cfg, rx = self.simple_setup()
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        first = self.append(3)
        rx.wait_for_ids(self.event_ids("t", uv, first))
        d.term()                                # asserts exit status 0 within 10 s
        self.assertRegex(d.log, r"SIGTERM received")
        second = self.append(4)
        d2 = self.run_daemon(cfg)
        rx.wait_for_ids(self.event_ids("t", uv, second))
        # A second delivery would come from the outbox at start-up (before
        # the new events: same queue, lower keys) or from a poll that did
        # not see the state: the state file says every UID is queued.
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, first + second))
        d2.term()
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, first + second))
        self.assertEqual(harness.trigger_state(cfg.state_dir, "t")["lastUid"], second[-1])
        self.assertEqual(harness.queued_files(cfg.state_dir), [])

    def test_uid_range_answer_for_last_message_is_not_redelivered(self):
        # "UID FETCH n:*" with n above every UID makes the server answer
        # with the last message. Make the daemon send such a FETCH: UIDNEXT
        # moves past the last message (append + expunge) without new mail.
        cfg, rx = self.simple_setup()
        cfg.set(log_level="debug")
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        [u1] = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, [u1]))
        mark = d.mark()
        self.api.wait_polls("t", 2)             # nothing new: nothing again...
        self.assertEqual(self.commands(d, mark, after_status=True), {"STATUS"},
                         "a poll that found nothing new sent more than STATUS")
        mark = d.mark()
        # no poll between the append and the expunge (it would queue "gone")
        os.kill(d.pid, signal.SIGSTOP)
        try:
            gone = self.imap.append("INBOX", harness.make_message(subject="expunged"))
            self.imap.expunge("INBOX", gone)
        finally:
            os.kill(d.pid, signal.SIGCONT)
        d.wait_for_log(r"C: \S+ UID FETCH %d:\* " % gone, since=mark)
        mark = d.mark()
        self.api.wait_polls("t", 2)
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, [u1]),
                                    "the UID %d:* answer (UID %d) was delivered again"
                                    % (gone, u1))
        self.assertEqual(harness.trigger_state(cfg.state_dir, "t")["lastUid"], u1)
        # Regression (fixed in 54745a8): with the newest message expunged,
        # UIDNEXT - 1 stayed above the last queued UID and every poll sent
        # EXAMINE + UID FETCH n:* + UNSELECT for ever instead of one STATUS.
        # (Still so for each `--once` run: the fix is kept in memory.)
        self.assertEqual(self.commands(d, mark, after_status=True), {"STATUS"},
                         "polls with nothing new after an expunge:\n" + "".join(d.lines[mark:]))

class TestEventBody(TriggerTestCase):

    def test_email_new_fields_and_standard_webhooks_headers(self):
        box = "Posteingang \u00dc"
        self.imap.create(box)
        cfg = self.make_config()
        rx_signed = self.receiver()
        rx_plain = self.receiver(secret=False)
        # extra headers (one that would replace Content-Type is a config
        # error: test_config_more)
        self.add_hook(cfg, "signed", rx_signed, headers=["X-Team: support", "X-Trace: abc-1"])
        cfg.add_webhook("plain", rx_plain.url())
        cfg.add_trigger("body", "main", box, ["signed", "plain"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger body: watching")
        date = datetime.datetime(2025, 3, 4, 5, 6, 7,
                                 tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
        internal = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        msg = harness.make_message(
            subject="Gr\u00fc\u00dfe aus K\u00f6ln \u2615",
            sender=("J\u00fcrgen M\u00fcller", "juergen@example.org"),
            to=[("Zo\u00eb Kr\u00e4mer", "zoe@example.org"), "plain@example.org"],
            cc=[("\u00c7a va", "cc@example.net")], date=date,
            message_id="<body-test@example.org>",
            headers=[("Reply-To", "Antwort <reply@example.org>"),
                     ("Sender", "Sekret\u00e4r <sender@example.org>"),
                     ("In-Reply-To", "<original@example.org>")])
        uid = self.imap.append(box, msg, flags=["\\Flagged", "custom"], internal_date=internal)
        uv = self.uidvalidity(box)
        attrs = self.imap.attributes(box, str(uid))[uid]
        [req] = rx_signed.wait_for(1)
        [plain] = rx_plain.wait_for(1)
        now = time.time()
        ev = req.json
        expected_id = "body:%d:%d" % (uv, uid)

        required = {"type", "id", "timestamp", "trigger", "connection", "mailbox",
                    "uidValidity", "uid", "flags", "size", "internalDate", "envelope"}
        self.assertLessEqual(required, set(ev), ev)
        self.assertNotIn("content", ev, "content without fetch_content")
        self.assertEqual(ev["type"], "email.new")
        self.assertEqual(ev["id"], expected_id)
        self.assertRegex(ev["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertLess(abs(parse_iso(ev["timestamp"]) - now), 60, ev["timestamp"])
        self.assertEqual(ev["trigger"], "body")
        self.assertEqual(ev["connection"], "main")
        self.assertEqual(ev["mailbox"], box)
        self.assertEqual(ev["uidValidity"], uv)
        self.assertEqual(ev["uid"], uid)
        self.assertEqual(set(ev["flags"]), {"\\Flagged", "custom"})
        self.assertEqual(set(ev["flags"]), attrs["flags"])
        self.assertEqual(ev["size"], attrs["size"], "size is not RFC822.SIZE")
        self.assertEqual(ev["internalDate"], iso(internal))
        self.assertEqual(ev["internalDate"], internaldate_iso(attrs["internalDate"]))
        self.assertEqual(ev["envelope"], {
            "date": "2025-03-04T04:06:07Z",
            "subject": "Gr\u00fc\u00dfe aus K\u00f6ln \u2615",
            "messageId": "<body-test@example.org>",
            "inReplyTo": "<original@example.org>",
            "from": [{"name": "J\u00fcrgen M\u00fcller", "address": "juergen@example.org"}],
            "sender": [{"name": "Sekret\u00e4r", "address": "sender@example.org"}],
            "replyTo": [{"name": "Antwort", "address": "reply@example.org"}],
            "to": [{"name": "Zo\u00eb Kr\u00e4mer", "address": "zoe@example.org"},
                   {"name": None, "address": "plain@example.org"}],
            "cc": [{"name": "\u00c7a va", "address": "cc@example.net"}],
            "bcc": [],
        })

        # Standard Webhooks headers
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.header("content-type"), "application/json")
        self.assertEqual(req.header("webhook-id"), expected_id)
        self.assertRegex(req.header("webhook-timestamp"), r"^\d+$")
        self.assertLess(abs(int(req.header("webhook-timestamp")) - now), 60)
        self.assertTrue(req.signature_ok, req.header_list)
        self.assertRegex(req.header("webhook-signature"), r"^v1,[A-Za-z0-9+/]{43}=$")
        self.assertEqual(req.header("x-team"), "support")
        self.assertEqual(req.header("x-trace"), "abc-1")
        self.assertEqual([v for k, v in req.header_list if k.lower() == "content-type"],
                         ["application/json"])
        # the webhook without a secret: same event, no signature, no extras
        self.assertEqual(plain.json, ev)
        self.assertEqual(plain.header("webhook-id"), expected_id)
        self.assertIsNotNone(plain.header("webhook-timestamp"))
        self.assertIsNone(plain.header("webhook-signature"), plain.header_list)
        self.assertIsNone(plain.header("x-team"))


ISO_8859_1_QP = (
    b"From: =?iso-8859-1?q?J=FCrgen?= <j@example.org>\r\n"
    b"To: x@example.org\r\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe_aus_K=F6ln?=\r\n"
    b"Date: Tue, 04 Mar 2025 05:06:07 +0100\r\n"
    b"Message-ID: <qp-latin1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=FC=DFe aus K=F6ln, =E0 bient=F4t =\r\n"
    b"et =A7 12.\r\n")


def normalize(text):
    return text.replace("\r\n", "\n").strip("\n") if text is not None else None


class TestContent(TriggerTestCase):

    def test_fetch_content_parts_attachments_charsets_and_truncation(self):
        self.imap.create("Big")
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 12 + b"\n%%EOF\n"
        rich = harness.make_message(
            subject="Pr\u00fcfung \u2713", body="Hallo Welt \u00fc\n",
            html="<p>Hallo <b>Welt</b> \u00fc</p>\n",
            attachments=[("Bericht \u00fc.pdf", "application/pdf", pdf)])
        u_rich = self.imap.append("INBOX", rich)
        u_qp = self.imap.append("INBOX", ISO_8859_1_QP)
        big = harness.make_message(subject="Gro\u00df", body="Anfang\n",
                                   attachments=[("big.bin", "application/octet-stream",
                                                 bytes(range(256)) * 40)])
        u_big = self.imap.append("Big", big)
        big_size = self.imap.attributes("Big", str(u_big))[u_big]["size"]
        self.assertGreater(big_size, 4 * 1024)

        cfg = self.make_config(api=False)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("c", "main", "INBOX", ["hook"], start_from="all", fetch_content=True)
        cfg.add_trigger("small", "main", "Big", ["hook"], start_from="all",
                        fetch_content=True, max_content_size=1024)
        self.once(cfg)
        self.assertSigned(rx)
        events = {(e["trigger"], e["uid"]): e for e in rx.events(ok_only=True)}
        self.assertEqual(set(events), {("c", u_rich), ("c", u_qp), ("small", u_big)})

        c = events[("c", u_rich)]["content"]
        self.assertLessEqual({"headers", "text", "html", "attachments"}, set(c), c)
        self.assertIs(c.get("truncated"), False)
        self.assertEqual(normalize(c["text"]), "Hallo Welt \u00fc")
        self.assertEqual(normalize(c["html"]), "<p>Hallo <b>Welt</b> \u00fc</p>")
        self.assertIn({"name": "Subject", "value": "Pr\u00fcfung \u2713"}, c["headers"])
        self.assertEqual([h["name"] for h in c["headers"]][:1], ["From"])
        self.assertEqual(c["attachments"], [{
            "partId": "2", "filename": "Bericht \u00fc.pdf", "contentType": "application/pdf",
            "size": len(pdf), "disposition": "attachment", "contentId": None}])
        self.assertEqual(events[("c", u_rich)]["envelope"]["subject"], "Pr\u00fcfung \u2713")
        # the partId is what `imaphook download --part` takes
        cli_cfg = harness.Config()
        cli_cfg.add_connection(**dovecot.connection(self.user))
        got = harness.run_cli(cli_cfg, "download", "--mailbox", "INBOX", "--uid", str(u_rich),
                              "--part", c["attachments"][0]["partId"])
        self.assertExit(got, 0)
        self.assertEqual(got.stdout, pdf)

        q = events[("c", u_qp)]
        self.assertEqual(q["envelope"]["subject"], "Gr\u00fc\u00dfe aus K\u00f6ln")
        self.assertEqual(q["envelope"]["from"], [{"name": "J\u00fcrgen", "address": "j@example.org"}])
        self.assertEqual(normalize(q["content"]["text"]),
                         "Gr\u00fc\u00dfe aus K\u00f6ln, \u00e0 bient\u00f4t et \u00a7 12.")
        self.assertIsNone(q["content"]["html"])
        self.assertEqual(q["content"]["attachments"], [])
        self.assertIn({"name": "Subject", "value": "Gr\u00fc\u00dfe aus K\u00f6ln"},
                      q["content"]["headers"])

        b = events[("small", u_big)]
        self.assertIs(b["content"]["truncated"], True)
        self.assertEqual(b["size"], big_size)
        self.assertEqual(b["envelope"]["subject"], "Gro\u00df")
        self.assertIn({"name": "Subject", "value": "Gro\u00df"}, b["content"]["headers"])

    def test_mark_as_read_on_and_off(self):
        self.imap.create("Mark")
        self.imap.create("Keep")
        marked = self.append(5, mailbox="Mark")
        # gaps: the UID STORE set has single UIDs and ranges ("1,3,5:6")
        gone = marked[1::2]
        self.imap.expunge("Mark", ",".join(map(str, gone)))
        marked = marked[0::2]
        flagged = self.imap.append("Mark", harness.make_message(subject="flagged"),
                                   flags=["\\Flagged"])
        kept = self.append(3, mailbox="Keep")
        cfg = self.make_config(api=False)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("mark", "main", "Mark", ["hook"], start_from="all", mark_as_read=True)
        cfg.add_trigger("keep", "main", "Keep", ["hook"], start_from="all",
                        mark_as_read=False, fetch_content=True)
        self.once(cfg)
        self.assertEqual(sorted((e["trigger"], e["uid"]) for e in rx.events(ok_only=True)),
                         sorted([("mark", u) for u in marked + [flagged]] +
                                [("keep", u) for u in kept]))
        self.assertEqual(self.imap.flags("Mark"),
                         {**{u: {"\\Seen"} for u in marked}, flagged: {"\\Seen", "\\Flagged"}})
        self.assertEqual(self.imap.flags("Keep"), {u: set() for u in kept},
                         "fetch_content without mark_as_read set flags")


class TestRaces(TriggerTestCase):
    imap_mode = "plain"

    def test_message_appended_between_status_and_fetch_is_delivered_once(self):
        box = "Race"
        self.imap.create(box)
        hook_imap = dovecot.imap(self.user)
        self.addCleanup(hook_imap.close)
        lock = threading.Lock()
        armed = threading.Event()
        appended = threading.Event()
        seen = {"uidnext": None, "race_uid": None}

        def on_server(data, conn):
            m = re.search(rb"\* STATUS \S+ \(([^)]*)\)", data)
            if m:
                words = m.group(1).decode().split()
                conn["status"] = {words[i].upper(): int(words[i + 1])
                                  for i in range(0, len(words) - 1, 2)}

        def on_client(data, conn):
            if re.search(rb"(?m)^\S+ STATUS ", data):
                conn.pop("status", None)
            if (re.search(rb"(?m)^\S+ EXAMINE ", data) and "status" in conn
                    and armed.is_set() and not appended.is_set()):
                with lock:
                    # before the daemon's EXAMINE and UID FETCH reach Dovecot
                    seen["uidnext"] = conn["status"]["UIDNEXT"]
                    seen["race_uid"] = hook_imap.append(
                        box, harness.make_message(subject="between STATUS and FETCH"))
                    appended.set()

        proxy = harness.TcpProxy(dovecot.host, dovecot.port_plain, on_client=on_client,
                                 on_server=on_server).start()
        self.addCleanup(proxy.stop)
        cfg = self.make_config(mode="plain")
        cfg.connection("main")["port"] = proxy.port
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("race", "main", box, ["hook"], interval=1)
        uv = self.uidvalidity(box)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger race: watching")
        armed.set()
        [a] = self.append(1, mailbox=box)
        harness.wait_until(appended.is_set, timeout=10, what="the proxy to append")
        self.assertEqual(proxy.errors, [])
        b = seen["race_uid"]
        self.assertEqual(seen["uidnext"], a + 1, "STATUS already counted the racing message")
        self.assertEqual(b, a + 1)
        rx.wait_for_ids(self.event_ids("race", uv, [a, b]))
        [c] = self.append(1, mailbox=box)
        rx.wait_for_ids(self.event_ids("race", uv, [c]))
        self.api.wait_polls("race", 2)
        self.assertDeliveredExactly(rx, self.event_ids("race", uv, [a, b, c]))
        self.assertEqual(harness.trigger_state(cfg.state_dir, "race")["lastUid"], c)


class TestUidValidity(TriggerTestCase):

    def test_uidvalidity_change_posts_one_reset_then_follows_start_from(self):
        box = "Watched"
        self.imap.create(box)
        old = self.append(2, mailbox=box)
        uv1 = self.uidvalidity(box)
        cfg = self.make_config(api=False)
        rx_all, rx_now = self.receiver(), self.receiver()
        self.add_hook(cfg, "all-hook", rx_all)
        self.add_hook(cfg, "now-hook", rx_now)
        cfg.add_trigger("all", "main", box, ["all-hook"], start_from="all")
        cfg.add_trigger("now", "main", box, ["now-hook"], start_from="now")
        self.once(cfg)
        self.assertDeliveredExactly(rx_all, self.event_ids("all", uv1, old))
        self.assertDeliveredExactly(rx_now, [])

        # delete and recreate the watched mailbox: a new UIDVALIDITY
        self.imap.delete(box)
        self.imap.create(box)
        uv2 = self.uidvalidity(box)
        self.assertNotEqual(uv1, uv2)
        again = self.append(3, mailbox=box)
        result = self.once(cfg)
        self.assertRegex(result.stderr, r"(?i)warn.*UIDVALIDITY")
        self.assertDeliveredExactly(
            rx_all, self.event_ids("all", uv1, old) + ["all:%d:reset" % uv2] +
            self.event_ids("all", uv2, again))
        self.assertDeliveredExactly(rx_now, ["now:%d:reset" % uv2])
        for rx, trigger in ((rx_all, "all"), (rx_now, "now")):
            [reset] = [e for e in rx.events() if e["type"] == "mailbox.reset"]
            self.assertLessEqual({"type", "id", "timestamp", "trigger", "connection", "mailbox",
                                  "uidValidity", "previousUidValidity"}, set(reset), reset)
            self.assertEqual((reset["id"], reset["trigger"], reset["connection"],
                              reset["mailbox"], reset["uidValidity"],
                              reset["previousUidValidity"]),
                             ("%s:%d:reset" % (trigger, uv2), trigger, "main", box, uv2, uv1))
            self.assertRegex(reset["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertNotIn("uid", reset)

        # and on from there: one more message, no second reset
        [last] = self.append(1, mailbox=box)
        self.once(cfg)
        self.assertDeliveredExactly(
            rx_all, self.event_ids("all", uv1, old) + ["all:%d:reset" % uv2] +
            self.event_ids("all", uv2, again + [last]))
        self.assertDeliveredExactly(rx_now, ["now:%d:reset" % uv2] +
                                    self.event_ids("now", uv2, [last]))
