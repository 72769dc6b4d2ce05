"""IMAP server faults against a running imaphookd, with a real Dovecot:

- Dovecot stopped while a UID FETCH answer is on its way (a CutGate holds
  it, then lets through only its first half), and started again;
- Dovecot stopped between polls while mail arrives in the Maildir (as an
  MTA would deliver it), and started again;
- the user's password changed (the daemon's connection cut by a proxy, so
  that it logs in again and fails), then changed back;
- the watched mailbox deleted, then created again with mail in it.

Each time the daemon stays up (same pid), /healthz says 503 with the
trigger's lastError while it fails and 200 with lastError null once it
works again, and every message is delivered exactly once, in UID order
(no kill: nothing may be delivered twice).
"""

import os
import re
import time

from . import harness, hostile

dovecot = None


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()
    ImapFaultsTest.server = dovecot


def set_password(server, user, password):
    """Rewrites the user's passwd-file of the Dovecot fixture (as add_user
    does)."""
    users = server.dir / "users"
    tmp = harness.write_file(users / (".new-" + user),
                             "%s:{PLAIN}%s::::::\n" % (user, password), 0o644)
    os.rename(tmp, users / user)
    server.users[user] = password


def login_works(server, user, password):
    try:
        with harness.ImapClient(server, user, password, mode="plain", timeout=10):
            return True
    except harness.ImapError:
        return False


class ImapFaultsTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        # the module's Dovecot: started again whatever happens here
        self.addCleanup(lambda: dovecot.running or dovecot.start())

    def health(self, status, trigger="t", timeout=30, error=None):
        """Waits until /healthz answers status with the trigger's lastError
        set (503; matching the regex error when given) or null (200);
        returns the trigger's entry."""
        def check():
            code, doc = self.api.healthz()
            t = next(x for x in doc["triggers"] if x["name"] == trigger)
            if code != status:
                return False
            if status == 200:
                return t["lastError"] is None and doc["status"] != "failing" and t
            return (t["lastError"] is not None and
                    (error is None or re.search(error, t["lastError"])) and t)
        return harness.wait_until(check, timeout=timeout,
                                  what="/healthz %d for trigger %s%s" % (
                                      status, trigger, " (%s)" % error if error else ""))

    def reconnect(self):
        self.imap.close()
        self.imap = dovecot.imap(self.user)
        self.addCleanup(self.imap.close)

    def test_dovecot_stopped_mid_fetch_then_started(self):
        gate = hostile.CutGate(dovecot.host, dovecot.port_plain, rb" UID FETCH ").start()
        self.addCleanup(gate.stop)
        cfg = self.make_config(mode="plain", poll_backoff_max=1)
        cfg.connection("main")["port"] = gate.port
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        a = self.append(2)
        rx.wait_for_ids(self.event_ids("t", uv, a))
        self.health(200)

        gate.arm()
        b = self.append(5, body="y" * 3000 + "\n")
        gate.wait_held()
        self.imap.close()
        dovecot.stop()
        # the answer up to the middle of its second FETCH response, then EOF
        held = gate.held_data
        starts = [m.start() for m in re.finditer(rb"\* \d+ FETCH ", held)]
        cut = starts[1] + 20 if len(starts) > 1 else max(1, len(held) // 2)
        gate.release(cut=cut)
        t = self.health(503)
        self.assertEqual(rx.ids(), self.event_ids("t", uv, a))
        self.assertEqual(harness.trigger_state(cfg.state_dir, "t")["lastUid"], a[-1],
                         "state advanced past a fetch that did not complete")
        self.assertEqual(harness.queued_files(cfg.state_dir), [],
                         "events of the cut answer became deliverable")
        mark = d.mark()
        dovecot.start()
        self.reconnect()
        c = self.append(2)
        ids = self.event_ids("t", uv, a + b + c)
        rx.wait_for_ids(ids, timeout=30)
        d.wait_for_log(r"trigger t: polling works again", since=mark)
        self.health(200)
        self.assertTrue(d.running)
        self.assertDeliveredExactly(rx, ids)
        self.assertEqual(list(cfg.state_dir.glob("outbox/*/*/*.tmp")), [])
        self.assertRegex(d.log, r"trigger t: poll failed: ")
        self.assertIsNotNone(t["lastError"])

    def test_dovecot_stopped_between_polls_while_mail_arrives(self):
        cfg = self.make_config(poll_backoff_max=1)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        a = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, a))
        self.imap.close()
        dovecot.stop()
        self.health(503)
        # an MTA delivers three messages into the Maildir meanwhile
        maildir = dovecot.maildir_path(self.user)
        for i in range(3):
            name = "%d.M%dP%d.imaphook-test" % (time.time(), i, os.getpid())
            tmp = harness.write_file(maildir / "tmp" / name,
                                     harness.message_bytes(subject="while down %d" % i), 0o644)
            os.chown(tmp, (maildir / "tmp").stat().st_uid, (maildir / "tmp").stat().st_gid)
            os.rename(tmp, maildir / "new" / name)
        dovecot.start()
        self.reconnect()
        uids = self.imap.uids("INBOX")
        self.assertEqual(len(uids), 4)
        self.assertEqual(self.uidvalidity(), uv)
        ids = self.event_ids("t", uv, uids)
        rx.wait_for_ids(ids, timeout=30)
        self.health(200)
        self.assertTrue(d.running)
        self.assertDeliveredExactly(rx, ids)
        subjects = [e["envelope"]["subject"] for e in rx.events(ok_only=True)]
        self.assertEqual(subjects[1:], ["while down 0", "while down 1", "while down 2"])

    def test_auth_failing_then_fixed(self):
        proxy = hostile.DropProxy(dovecot.host, dovecot.port_plain).start()
        self.addCleanup(proxy.stop)
        cfg = self.make_config(mode="plain", auth_backoff_max=1, poll_backoff_max=1)
        cfg.connection("main")["port"] = proxy.port
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        a = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, a))

        good = self.password
        set_password(dovecot, self.user, "changed-" + good)
        harness.wait_until(lambda: not login_works(dovecot, self.user, good), timeout=15,
                           what="Dovecot to refuse the old password")
        proxy.drop_all()                        # the daemon must log in again
        t = self.health(503, error=r"(?i)auth")
        doc = self.api.healthz()[1]
        conn = next(c for c in doc["connections"] if c["name"] == "main")
        self.assertRegex(conn["lastError"] or "", r"(?i)auth")
        b = self.append(2)                      # our session is still logged in
        self.assertEqual(rx.ids(), self.event_ids("t", uv, a))

        set_password(dovecot, self.user, good)
        harness.wait_until(lambda: login_works(dovecot, self.user, good), timeout=15,
                           what="Dovecot to accept the password again")
        ids = self.event_ids("t", uv, a + b)
        rx.wait_for_ids(ids, timeout=30)
        self.health(200)
        self.assertTrue(d.running)
        self.assertDeliveredExactly(rx, ids)
        self.assertRegex(d.log, r"(?i)trigger t: poll failed: .*auth")
        self.assertNotIn(good, d.log)
        self.assertNotIn("changed-" + good, d.log)
        self.assertIsNotNone(t["lastError"])

    def test_mailbox_deleted_and_recreated(self):
        self.imap.create("Box")
        cfg = self.make_config(poll_backoff_max=1)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "Box", ["hook"], interval=1, start_from="all")
        a = self.append(2, mailbox="Box")
        uv1 = self.uidvalidity("Box")
        d = self.run_daemon(cfg)
        rx.wait_for_ids(self.event_ids("t", uv1, a))

        self.imap.delete("Box")
        t = self.health(503, error=r"Box")
        self.assertEqual(len(rx.requests), 2)
        self.imap.create("Box")
        b = self.append(3, mailbox="Box")
        uv2 = self.uidvalidity("Box")
        self.assertNotEqual(uv1, uv2)
        reset = "t:%d:reset" % uv2
        ids = self.event_ids("t", uv1, a) + [reset] + self.event_ids("t", uv2, b)
        rx.wait_for_ids(ids, timeout=30)
        self.health(200)
        self.assertTrue(d.running)
        self.assertDeliveredExactly(rx, ids)
        ev = next(e for e in rx.events() if e["id"] == reset)
        self.assertEqual((ev["type"], ev["uidValidity"], ev["previousUidValidity"]),
                         ("mailbox.reset", uv2, uv1))
        self.assertRegex(t["lastError"], r"(?i)box")
        self.assertRegex(d.log, r"(?i)warn.*trigger t: UIDVALIDITY of Box changed")
