"""mode = "idle": new mail pushed by NOTIFY or IDLE, without waiting for the
interval. Three Dovecots: one with everything (NOTIFY), one advertising IDLE
but not NOTIFY, one advertising neither; a fourth with a public namespace
(PublicNamespaceTest), which NOTIFY's "personal" filter does not cover."""

import itertools
import json
import re
import shutil
import unittest
import urllib.request

from . import harness, hostile

full = None             # NOTIFY and IDLE
idle_only = None        # IDLE, no NOTIFY
no_push = None          # neither

BASE_CAPS = "IMAP4rev1 SASL-IR ID ENABLE NAMESPACE UIDPLUS CHILDREN UNSELECT LITERAL+"


def setUpModule():
    global full, idle_only, no_push
    full = harness.Dovecot.start_new()
    idle_only = harness.Dovecot.start_new()
    idle_only.set_capabilities(BASE_CAPS + " IDLE")
    no_push = harness.Dovecot.start_new()
    no_push.set_capabilities(BASE_CAPS)


def tearDownModule():
    for server in (full, idle_only, no_push):
        if server is not None:
            server.stop()


class PushTestBase(unittest.TestCase):
    """A daemon with idle triggers on a fresh user, and what it shows."""

    def start(self, server, mailboxes, interval=3600, max_connections=2, log_level="info",
              **conn):
        """A daemon with one idle trigger per mailbox on a fresh user."""
        self.server = server
        self.user, _ = server.add_user()
        with server.imap(self.user) as imap:
            for m in mailboxes:
                if m.upper() != "INBOX":
                    imap.create(m)
        self.rx = harness.Receiver().start()
        self.addCleanup(self.rx.stop)
        d = harness.make_tmpdir("push")
        cfg = harness.Config(d)
        cfg.set(log_level=log_level, poll_backoff_max=2)
        # plain text: the daemon's logins are told apart from the test's
        # own (TLS) ones in Dovecot's log
        cfg.add_connection(**server.connection(self.user, mode="plain",
                                               max_connections=max_connections, **conn))
        cfg.add_webhook("w", self.rx.url())
        self.api_port = cfg.enable_api()
        self.names = []
        for i, m in enumerate(mailboxes):
            name = "t%d" % i
            cfg.add_trigger(name, "main", m, ["w"], interval=interval, mode="idle")
            self.names.append(name)
        self.cfg = cfg
        self.daemon = harness.Daemon(cfg.write())
        self.addCleanup(self.daemon.stop)
        self.daemon.start()
        for name in self.names:
            harness.wait_until(lambda n=name: (cfg.state_dir / "triggers" / (n + ".json")).exists(),
                               timeout=20, what="first poll of %s" % name)

    def daemon_logins(self):
        return [line for line in self.server.logins(self.user) if ", TLS," not in line]

    def health(self):
        url = "http://127.0.0.1:%d/healthz" % self.api_port
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())

    def push_of(self):
        return {t["name"]: t.get("push") for t in self.health()["triggers"]}

    def append(self, mailbox, subject):
        with self.server.imap(self.user) as imap:
            imap.append(mailbox, harness.message_bytes(subject=subject))

    def subjects(self):
        return [r.json["envelope"]["subject"] for r in self.rx.requests
                if r.json.get("type") == "email.new"]


class PushTest(PushTestBase):

    def test_idle_preferred_when_each_mailbox_gets_a_connection(self):
        # NOTIFY is there, but the mailbox fits a spare connection with one
        # more to spare: IDLE, the quicker of the two on Dovecot, and NOTIFY
        # beside it for what IDLE cannot see (a mailbox created anew)
        self.start(full, ["INBOX"], max_connections=3)
        harness.wait_until(lambda: self.push_of() == {"t0": "idle"}, timeout=10,
                           what="IDLE in force")
        self.daemon.wait_for_log(r"push main: IDLE on 1 connection, NOTIFY on one more",
                                 timeout=5)
        self.append("INBOX", "idled")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["idled"])
        self.assertLessEqual(len(self.daemon_logins()), 3)

    def test_notify_when_no_connection_is_left_beside_idle(self):
        # one spare connection: IDLE there would leave none for NOTIFY
        self.start(full, ["INBOX"], max_connections=2)
        harness.wait_until(lambda: self.push_of() == {"t0": "notify"}, timeout=10,
                           what="NOTIFY in force")

    def test_notify_delivers_without_waiting_for_the_interval(self):
        # two mailboxes, one spare connection: NOTIFY watches both
        self.start(full, ["INBOX", "Other"])
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "notify"},
                           timeout=10, what="NOTIFY in force")
        self.append("INBOX", "pushed one")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["pushed one"])
        self.append("INBOX", "pushed two")
        self.rx.wait_for(2, timeout=10)
        self.assertEqual(self.subjects(), ["pushed one", "pushed two"])

    def test_notify_wakes_a_trigger_on_inbox_in_another_case(self):
        # NOTIFY reports "INBOX"; the trigger says "Inbox", as mail clients
        # show it: the same mailbox (RFC 3501 5.1)
        self.start(full, ["Inbox"])
        harness.wait_until(lambda: self.push_of() == {"t0": "notify"}, timeout=10,
                           what="NOTIFY in force")
        self.append("INBOX", "any case")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["any case"])

    def test_notify_watches_many_mailboxes_on_one_connection(self):
        boxes = ["INBOX", "Sales", "Support", "Entwürfe", "Archive/2026", "Rechnungen"]
        self.start(full, boxes, max_connections=2)
        harness.wait_until(lambda: set(self.push_of().values()) == {"notify"}, timeout=10,
                           what="NOTIFY for every trigger")
        for m in boxes:
            self.append(m, "to " + m)
        self.rx.wait_for(len(boxes), timeout=15)
        self.assertEqual(sorted(self.subjects()), sorted("to " + m for m in boxes))
        # one watcher plus the shared pool: never more than max_connections
        # sessions, although six mailboxes are pushed
        logins = self.daemon_logins()
        self.assertLessEqual(len(logins), 2, logins)

    def test_idle_within_the_connection_budget(self):
        self.start(idle_only, ["INBOX", "A", "B"], max_connections=3)
        # one connection stays for polls and the API: two can IDLE
        harness.wait_until(lambda: sorted(self.push_of().values(), key=str) ==
                           ["idle", "idle", "poll"], timeout=10, what="two IDLE watchers")
        self.daemon.wait_for_log(r"no connection left for IDLE on B", timeout=5)
        self.append("INBOX", "idle inbox")
        self.append("A", "idle A")
        self.rx.wait_for(2, timeout=15)
        self.assertEqual(sorted(self.subjects()), ["idle A", "idle inbox"])
        self.assertLessEqual(len(self.daemon_logins()), 3)

    def test_idle_is_reissued(self):
        self.start(idle_only, ["INBOX"], log_level="debug", idle_restart=5)
        harness.wait_until(lambda: self.push_of() == {"t0": "idle"}, timeout=10,
                           what="IDLE in force")
        mark = self.daemon.mark()
        restart = r"push main: watching -> restart"
        self.daemon.wait_for_log(restart, timeout=15, since=mark)
        # watching again after that re-issue (not after the first set-up)
        self.daemon.wait_for_log(r"push main: (setup|restart) -> watching", timeout=10,
                                 since=self.daemon.log_index(restart, since=mark) + 1)
        self.append("INBOX", "after re-issue")
        self.rx.wait_for(1, timeout=10)
        self.assertEqual(self.subjects(), ["after re-issue"])
        # the re-issue reused the connection: one watcher, one pool login at most
        self.assertLessEqual(len(self.daemon_logins()), 2)

    def test_mail_between_idle_and_its_reissue(self):
        # Mail that comes after the server ended IDLE and before the
        # watcher's EXAMINE shows only in that EXAMINE's EXISTS count: no
        # news in itself. The watcher polls once the new IDLE runs.
        gate = harness.ImapGate(idle_only.host, idle_only.port_plain, rb"^DONE\r\n").start()
        self.addCleanup(gate.stop)
        gate.arm()
        self.start(idle_only, ["INBOX"], log_level="debug", idle_restart=5, port=gate.port)
        harness.wait_until(lambda: self.push_of() == {"t0": "idle"}, timeout=10,
                           what="IDLE in force")
        gate.wait_blocked()     # IDLE's OK is at the gate: the session idles no more
        mark = self.daemon.mark()
        self.append("INBOX", "between")
        gate.release()
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["between"])
        # it was that wake-up, not a notice in IDLE, that found the mail
        self.daemon.wait_for_log(r"push main: restart -> setup", since=0)
        self.assertNotRegex("".join(self.daemon.lines[mark:]), r"push main: EXISTS in INBOX")

    def test_sighup_keeps_watching_without_new_logins(self):
        # a reload that leaves the account and its mailboxes as they were
        # keeps its watchers (SPEC: unchanged triggers keep their timers)
        self.start(full, ["INBOX", "Other"])
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "notify"},
                           timeout=10, what="NOTIFY in force")
        self.append("INBOX", "before")
        self.rx.wait_for(1, timeout=10)
        logins = len(self.daemon_logins())
        # one trigger changes (its interval): restarted, still pushed
        self.cfg.trigger("t1")["interval"] = 1800
        self.cfg.write()
        mark = self.daemon.mark()
        self.daemon.hup()
        self.daemon.wait_for_log(r"reloaded: 1 trigger kept, 1 started, 1 stopped", since=mark)
        self.assertEqual(self.push_of(), {"t0": "notify", "t1": "notify"})
        self.append("Other", "after")
        self.rx.wait_for(2, timeout=10)         # the interval is half an hour
        self.assertEqual(self.subjects(), ["before", "after"])
        self.assertEqual(len(self.daemon_logins()), logins, "the reload logged in again")
        self.assertNotIn("push main: NOTIFY watches", "".join(self.daemon.lines[mark:]))

    def test_reconnects_after_the_server_restarts(self):
        self.start(full, ["INBOX", "Other"])
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "notify"},
                           timeout=10, what="NOTIFY in force")
        mark = self.daemon.mark()
        self.server.stop()
        try:
            self.daemon.wait_for_log(r"push main.*polling meanwhile", since=mark, timeout=30)
            # while the watcher is away, /healthz says the triggers poll
            harness.wait_until(lambda: self.push_of() == {"t0": "poll", "t1": "poll"},
                               timeout=10, what="poll while the watcher is away")
        finally:
            self.server.start()
        self.daemon.wait_for_log(r"push main.*watching again", since=mark, timeout=30)
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "notify"},
                           timeout=10, what="NOTIFY in force again")
        self.append("INBOX", "after restart")
        self.rx.wait_for(1, timeout=15)
        self.assertEqual(self.subjects(), ["after restart"])

    def test_server_without_push_polls(self):
        self.start(no_push, ["INBOX"], interval=1)
        self.daemon.wait_for_log(r"neither NOTIFY nor IDLE", timeout=10)
        self.assertEqual(self.push_of(), {"t0": "poll"})
        self.append("INBOX", "polled")
        self.rx.wait_for(1, timeout=10)
        self.assertEqual(self.subjects(), ["polled"])

    def test_one_connection_leaves_none_to_watch(self):
        self.start(full, ["INBOX"], interval=1, max_connections=1)
        self.daemon.wait_for_log(r"max_connections = 1 leaves no connection", timeout=10)
        self.assertEqual(self.push_of(), {"t0": "poll"})
        self.append("INBOX", "polled anyway")
        self.rx.wait_for(1, timeout=10)
        self.assertEqual(self.subjects(), ["polled anyway"])

    def test_metrics_show_the_push_method(self):
        self.start(full, ["INBOX", "Other"])
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "notify"},
                           timeout=10, what="NOTIFY in force")
        url = "http://127.0.0.1:%d/metrics" % self.api_port
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        self.assertIn('imaphook_trigger_push{trigger="t0",method="notify"} 1', text)


class ServerEndsIdle(unittest.TestCase):
    """A server that ends IDLE itself (some do after a while), played by
    hostile.HostileImap: Dovecot cannot be made to."""

    def start(self, idle_for):
        srv = hostile.HostileImap(caps=hostile.CAPS + " IDLE", idle_for=idle_for).start()
        self.addCleanup(srv.stop)
        rx = harness.Receiver().start()
        self.addCleanup(rx.stop)
        cfg = harness.Config(harness.make_tmpdir("push"))
        cfg.set(log_level="debug", poll_backoff_max=2)
        cfg.add_connection(name="main", host="127.0.0.1", port=srv.port, secure=False,
                           username="user", password="secret", timeout=5)
        cfg.add_webhook("w", rx.url())
        cfg.add_trigger("t0", "main", "INBOX", ["w"], interval=3600, mode="idle")
        d = harness.Daemon(cfg.write())
        self.addCleanup(d.stop)
        d.start()
        return srv, d

    @staticmethod
    def idles(srv):
        return sum(1 for s in list(srv.sessions) for c in list(s.commands)
                   if re.fullmatch(rb"\S+ IDLE", c))

    def test_idle_ended_by_the_server_is_issued_again(self):
        # not only every idle_restart (25 min): the watcher would hear
        # nothing until then
        srv, d = self.start(idle_for=1.5)
        harness.wait_until(lambda: self.idles(srv) >= 3, timeout=20,
                           what="IDLE issued again after the server ended it")
        self.assertNotIn("reconnecting", d.log)         # on the same connection
        self.assertEqual(srv.errors, [])

    def test_idle_ended_at_once_backs_off(self):
        # an IDLE that ends right after its "+" is of no use: reconnect with
        # back-off rather than issue it again and again
        srv, d = self.start(idle_for=0)
        d.wait_for_log(r"push main INBOX: the server ended IDLE at once \(reconnecting in",
                       timeout=15)
        mark = self.idles(srv)
        harness.wait_until(lambda: d.log.count("the server ended IDLE at once") >= 3,
                           timeout=20, what="two more attempts, backing off")
        # a back-off of 1-2 s between attempts, not thousands of IDLEs
        self.assertLess(self.idles(srv) - mark, 10)
        self.assertEqual(srv.errors, [])


# A public namespace (RFC 2342 "shared"): every user reaches its mailboxes
# (no ACL plugin; the files belong to nobody, mail_uid of the fixture).
PUBLIC_NS = """
namespace public {
  type = public
  separator = /
  prefix = Public/
  location = maildir:@DIR@/public
  subscriptions = no
  list = children
}
"""


class PublicNamespaceTest(PushTestBase):
    """NOTIFY SET (personal ...) hears nothing of a mailbox in a public
    namespace: such a mailbox gets IDLE when a connection is left for it,
    else it polls (and says so); it is never labelled "notify"."""

    _boxes = itertools.count(1)

    @classmethod
    def setUpClass(cls):
        cls.public = harness.Dovecot.start_new(extra_conf=PUBLIC_NS)
        pub = cls.public.dir / "public"
        pub.mkdir(mode=0o700)
        shutil.chown(pub, "nobody", "nogroup")

    @classmethod
    def tearDownClass(cls):
        cls.public.stop()

    def public_box(self):
        # public mailboxes are shared by every user (and test): one each
        return "Public/Support%d" % next(self._boxes)

    def test_fixture_public_namespace(self):
        # what the other tests build on, with a plain imaplib session
        box = self.public_box()
        user, _ = self.public.add_user()
        other, _ = self.public.add_user()
        with self.public.imap(user) as imap:
            self.assertEqual(imap.command("NAMESPACE"),
                             [b'(("" "/")) NIL (("Public/" "/"))'])
            imap.create(box)
            imap.append(box, harness.message_bytes(subject="public"))
            self.assertEqual(imap.select(box), 1)
        with self.public.imap(other) as imap:
            self.assertEqual(imap.select(box), 1)

    def test_notify_only_leaves_a_public_mailbox_polling(self):
        # max_connections = 2: one for NOTIFY, one for polls and API calls,
        # none for IDLE. NOTIFY takes INBOX; the public mailbox polls, and
        # says so, rather than pretend NOTIFY watches it.
        box = self.public_box()
        self.start(self.public, ["INBOX", box], max_connections=2)
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "poll"},
                           timeout=10, what="NOTIFY for INBOX, polling for %s" % box)
        self.daemon.wait_for_log(r"push main: %s is outside the personal namespaces, which "
                                 r"NOTIFY does not cover, and no connection is left for IDLE"
                                 % re.escape(box), timeout=5)
        self.daemon.wait_for_log(r"push main: NOTIFY watches 1 mailbox on one", timeout=5)
        self.append("INBOX", "personal")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["personal"])
        self.assertEqual(self.push_of(), {"t0": "notify", "t1": "poll"})

    def test_idle_for_a_public_mailbox_beside_notify(self):
        # max_connections = 3: too few for IDLE on both and NOTIFY beside
        # them, enough for NOTIFY (INBOX) and one IDLE (the public mailbox)
        box = self.public_box()
        self.start(self.public, ["INBOX", box], max_connections=3)
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "idle"},
                           timeout=10, what="NOTIFY for INBOX, IDLE for %s" % box)
        self.daemon.wait_for_log(r"push main: IDLE on 1 more connection for mailboxes "
                                 r"outside the personal namespaces", timeout=5)
        self.append(box, "public")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.append("INBOX", "personal")
        self.rx.wait_for(2, timeout=10)
        self.assertEqual(self.subjects(), ["public", "personal"])
        self.assertLessEqual(len(self.daemon_logins()), 3)

    def test_idle_on_every_mailbox_with_connections_to_spare(self):
        # max_connections = 4: IDLE on both and NOTIFY beside them (as
        # before NAMESPACE was asked: IDLE serves any mailbox)
        box = self.public_box()
        self.start(self.public, ["INBOX", box], max_connections=4)
        harness.wait_until(lambda: self.push_of() == {"t0": "idle", "t1": "idle"},
                           timeout=10, what="IDLE for both")
        self.append(box, "public")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["public"])

    def test_only_public_mailboxes_need_no_notify(self):
        # NOTIFY would see none of them: IDLE on the one spare connection
        box = self.public_box()
        self.start(self.public, [box], max_connections=2)
        harness.wait_until(lambda: self.push_of() == {"t0": "idle"}, timeout=10,
                           what="IDLE for %s" % box)
        self.daemon.wait_for_log(r"push main: IDLE on 1 connection \(NOTIFY covers none",
                                 timeout=5)
        self.append(box, "public")
        self.rx.wait_for(1, timeout=10)         # the interval is an hour
        self.assertEqual(self.subjects(), ["public"])


class NamespaceAnswers(unittest.TestCase):
    """NAMESPACE answers Dovecot does not give, played by hostile.HostileImap:
    one refused or garbled leaves everything personal (NOTIFY for all, as
    without NAMESPACE); it never costs the watcher its connection."""

    CAPS = hostile.CAPS + " IDLE NOTIFY NAMESPACE"

    def start(self, namespace_answer):
        srv = hostile.HostileImap(caps=self.CAPS,
                                  answers={"NAMESPACE": namespace_answer}).start()
        self.addCleanup(srv.stop)
        rx = harness.Receiver().start()
        self.addCleanup(rx.stop)
        cfg = harness.Config(harness.make_tmpdir("push"))
        cfg.set(log_level="debug", poll_backoff_max=2)
        cfg.add_connection(name="main", host="127.0.0.1", port=srv.port, secure=False,
                           username="user", password="secret", timeout=5, max_connections=2)
        cfg.add_webhook("w", rx.url())
        cfg.add_trigger("t0", "main", "INBOX", ["w"], interval=3600, mode="idle")
        cfg.add_trigger("t1", "main", "Public/Support", ["w"], interval=3600, mode="idle")
        self.api_port = cfg.enable_api()
        d = harness.Daemon(cfg.write())
        self.addCleanup(d.stop)
        d.start()
        return srv, d

    def push_of(self):
        url = "http://127.0.0.1:%d/healthz" % self.api_port
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                health = json.loads(r.read())
        except urllib.error.HTTPError as e:
            health = json.loads(e.read())
        return {t["name"]: t.get("push") for t in health["triggers"]}

    def notify_for_all(self, srv, d, why):
        d.wait_for_log(why, timeout=10)
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "notify"},
                           timeout=10, what="NOTIFY for both")
        d.wait_for_log(r"push main: setup -> watching", timeout=10)
        self.assertNotIn("reconnecting", d.log)
        self.assertEqual(srv.errors, [])

    def test_refused(self):
        srv, d = self.start(["{tag} BAD unknown command"])
        self.notify_for_all(srv, d, r"push main: NAMESPACE failed \(unknown command\): "
                            r"every mailbox counts as personal")

    def test_garbled(self):
        # a fourth group: not RFC 2342 (the Public/ prefix is not believed)
        srv, d = self.start(['* NAMESPACE (("" "/")) NIL (("Public/" "/")) (("x" "/"))',
                             "{tag} OK done"])
        self.notify_for_all(srv, d, r"push main: the server's NAMESPACE answer makes no "
                            r"sense: every mailbox counts as personal")

    def test_honoured(self):
        # the same server answering well: the public mailbox polls
        srv, d = self.start(['* NAMESPACE (("" "/")) NIL (("Public/" "/"))',
                             "{tag} OK done"])
        d.wait_for_log(r"push main: Public/Support is outside the personal namespaces",
                       timeout=10)
        harness.wait_until(lambda: self.push_of() == {"t0": "notify", "t1": "poll"},
                           timeout=10, what="NOTIFY for INBOX only")
        self.assertEqual(srv.errors, [])
