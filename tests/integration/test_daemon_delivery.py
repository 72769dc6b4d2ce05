"""imaphookd's webhook delivery against real HTTP receivers: retries, dead
letters, crashes and --once.

- 5xx, 429, dropped connections are retried until a 2xx, head of the queue
  first, nothing missing or reordered; Retry-After is honoured;
- a 410 sends the event to state_dir/dead/ with a .reason while the other
  webhook and the other trigger go on delivering;
- SIGTERM while a UID FETCH answer is held back (a proxy) and while a
  webhook request is in flight: exit 0, and the next start delivers the
  rest with nothing twice;
- SIGKILL during the fetch, right after queueing and during delivery of a
  burst of several hundred messages: after the restarts every UID arrived,
  first deliveries in UID order (duplicates are allowed: at least once);
- --once delivers and exits 0; with the webhook refusing connections it
  exits after one attempt leaving the events in state_dir/outbox/, and a
  later run delivers them; a failing poll gives the SPEC exit status (1,
  77, 69) while the other trigger still delivers.

Every receiver checks every signature; every test has its own Dovecot user.
"""

import json
import re
import secrets
import sys
import threading

from . import harness

dovecot = None


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()     # the test_daemon_* modules share it
    DeliveryTestCase.server = dovecot


class DeliveryTestCase(harness.DaemonTestCase):
    pass


class TestRetries(DeliveryTestCase):

    def test_transient_failures_are_retried_in_order_until_success(self):
        cfg = self.make_config(webhook_backoff_max=1)
        rx = self.receiver()
        # a connection closed without an answer, 5xx, 429, 408. (The drop
        # comes first, on a new connection: on a reused one curl itself
        # sends the request again, which the daemon never sees as a failure.)
        rx.respond(harness.Response(drop=True), 503, 429, 408)
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, start_from="all")
        uids = self.append(4)
        ids = self.event_ids("t", self.uidvalidity(), uids)
        self.run_daemon(cfg)
        rx.wait_for_ids(ids, timeout=20)
        # one request in flight per queue: the head is retried, nothing overtakes it
        self.assertEqual(rx.ids(), [ids[0]] * 5 + ids[1:])
        self.assertEqual([r.status for r in rx.requests], [None, 503, 429, 408] + [200] * 4)
        self.assertDeliveredExactly(rx, ids)
        m = self.api.wait_metric("imaphook_webhook_deliveries_total", 4, webhook="hook",
                                 result="ok")
        self.assertEqual(m.get("imaphook_webhook_deliveries_total", webhook="hook", result="retry"), 4)

    def test_retry_after_is_honoured(self):
        # Without Retry-After the first retry comes after 1 to 1.25 s: a
        # retry 2 s later shows the header was used.
        cfg = self.make_config(webhook_backoff_max=30)
        rx = self.receiver()
        rx.respond(harness.Response(503, {"Retry-After": "2"}))
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, start_from="all")
        uids = self.append(2)
        ids = self.event_ids("t", self.uidvalidity(), uids)
        self.run_daemon(cfg)
        rx.wait_for_ids(ids, timeout=15)
        self.assertEqual(rx.ids(), [ids[0], ids[0], ids[1]])
        gap = rx.requests[1].time - rx.requests[0].time
        self.assertGreaterEqual(gap, 1.9, "retried %.2f s after Retry-After: 2" % gap)
        self.assertDeliveredExactly(rx, ids)


class TestDeadLetters(DeliveryTestCase):

    def test_410_goes_to_dead_letters_while_others_go_on(self):
        self.imap.create("Other")
        cfg = self.make_config()
        rx_gone = self.receiver(default=harness.Response(410, body="gone for good\n"))
        rx_ok = self.receiver()
        self.add_hook(cfg, "gone", rx_gone)
        self.add_hook(cfg, "ok", rx_ok)
        cfg.add_trigger("t1", "main", "INBOX", ["gone", "ok"], interval=1, start_from="all")
        cfg.add_trigger("t2", "main", "Other", ["ok"], interval=1, start_from="all")
        inbox = self.append(3)
        other = self.append(2, mailbox="Other")
        ids1 = self.event_ids("t1", self.uidvalidity(), inbox)
        ids2 = self.event_ids("t2", self.uidvalidity("Other"), other)
        d = self.run_daemon(cfg)
        rx_ok.wait_for_ids(ids1 + ids2)
        rx_gone.wait_for(3)
        harness.wait_until(lambda: len(harness.dead_letters(cfg.state_dir, "gone", "t1")) == 3,
                           what="3 dead letters in %s" % cfg.state_dir)
        # more mail: the dead webhook still gets (and buries) the new events
        [late] = self.append(1)
        late_id = self.event_ids("t1", self.uidvalidity(), [late])
        rx_ok.wait_for_ids(late_id)
        rx_gone.wait_for(4)
        harness.wait_until(lambda: len(harness.dead_letters(cfg.state_dir, "gone", "t1")) == 4,
                           what="the 4th dead letter")
        self.api.wait_polls("t1", 2)

        # a permanent failure is not retried
        self.assertEqual(rx_gone.ids(), ids1 + late_id)
        self.assertEqual(sorted(rx_ok.ids()), sorted(ids1 + ids2 + late_id))
        self.assertEqual([i for i in rx_ok.ids() if i.startswith("t1:")], ids1 + late_id)
        self.assertSigned(rx_gone)
        self.assertSigned(rx_ok)
        # the dead letters: the event as it was sent, and why
        dead = harness.dead_letters(cfg.state_dir, "gone", "t1")
        sent = {r.header("webhook-id"): r.body for r in rx_gone.requests}
        self.assertEqual([json.loads(p.read_bytes())["id"] for p in dead], ids1 + late_id)
        for path in dead:
            body = path.read_bytes()
            self.assertEqual(body, sent[json.loads(body)["id"]])
            reason = path.with_suffix(".reason").read_text()
            self.assertIn("410", reason)
            self.assertIn("gone for good", reason)
            self.assertEqual(reason.rstrip("\n").count("\n"), 0, "reason is one line: %r" % reason)
        self.assertEqual(harness.dead_letters(cfg.state_dir, "ok"), [])
        self.assertEqual(harness.queued_files(cfg.state_dir), [])
        self.assertRegex(d.log, r"(?i)error.*webhook gone.*dead letters")
        m = self.api.metrics()
        self.assertEqual(m.get("imaphook_webhook_deliveries_total", webhook="gone", result="dead"), 4)
        self.assertEqual(m.get("imaphook_webhook_deliveries_total", webhook="gone", result="retry"), 0)
        self.assertEqual(m.get("imaphook_webhook_deliveries_total", webhook="ok", result="ok"), 6)


class TestCrash(DeliveryTestCase):

    def test_sigkill_during_fetch_queueing_and_delivery_loses_nothing(self):
        cfg = self.make_config(log_level="debug")
        rx = self.receiver(default=harness.Response(200, delay=0.002))
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, fetch_content=True)
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uids = self.append(700, body="x" * 2000 + "\n")     # two fetch windows of 500
        ids = self.event_ids("t", uv, uids)
        moments = []

        # 1. in the middle of the first window's FETCH: nothing committed yet
        d.wait_for_log(r"trigger t: queued t:%d:%d\b" % (uv, uids[100]), timeout=20)
        d.kill()
        moments.append(("during fetch", self.phase(d, rx)))

        # 2. just after the first window was queued, before delivery ends
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: queued \d+ new emails", timeout=20)
        d.kill()
        moments.append(("after queueing", self.phase(d, rx)))

        # 3. during delivery
        d = self.run_daemon(cfg)
        target = len(rx.ids(ok_only=True)) + 150
        rx.wait_until(lambda reqs: sum(1 for r in reqs if r.status == 200) >= target,
                      timeout=30, what="%d deliveries" % target)
        d.kill()
        moments.append(("during delivery", self.phase(d, rx)))

        d = self.run_daemon(cfg)
        rx.wait_for_ids(ids, timeout=60)
        self.api.wait_polls("t", 2)
        d.term()
        got = rx.ids(ok_only=True)
        self.assertEqual(set(got), set(ids), "missing: %s" % sorted(set(ids) - set(got))[:10])
        first = list(dict.fromkeys(got))
        self.assertEqual(first, ids, "first deliveries are not in UID order")
        self.assertSigned(rx)
        self.assertEqual(harness.queued_files(cfg.state_dir), [])
        dupes = len(got) - len(set(got))
        sys.stderr.write("\n  [crash test: %d deliveries of %d events, %d duplicates; kills: %s]\n"
                         % (len(got), len(ids), dupes,
                            "; ".join("%s (%s)" % m for m in moments)))

    @staticmethod
    def phase(d, rx):
        """Where a killed daemon was: windows committed, deliveries so far."""
        committed = re.findall(r"queued (\d+) new emails? \(up to UID (\d+)\)", d.log)
        return "this run queued up to UID %s; %d delivered so far" % (
            committed[-1][1] if committed else "-", len(rx.ids(ok_only=True)))


class TestCleanStop(DeliveryTestCase):
    imap_mode = "plain"

    def test_sigterm_mid_fetch_and_mid_delivery_then_start_delivers_nothing_twice(self):
        gate = harness.ImapGate(dovecot.host, dovecot.port_plain, rb" UID FETCH ").start()
        self.addCleanup(gate.stop)
        cfg = self.make_config(mode="plain")
        cfg.connection("main")["port"] = gate.port
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        a = self.append(2)
        rx.wait_for_ids(self.event_ids("t", uv, a))

        # SIGTERM while the UID FETCH answer is on its way
        gate.arm()
        b = self.append(3)
        gate.wait_held()
        d.term()                                # exit 0 within 10 s
        gate.release()
        self.assertEqual(rx.ids(), self.event_ids("t", uv, a))
        d = self.run_daemon(cfg)
        rx.wait_for_ids(self.event_ids("t", uv, b))

        # SIGTERM while a webhook request is in flight: it is let finish
        rx.respond(harness.Response(200, delay=1.0))
        c = self.append(2)
        c_ids = self.event_ids("t", uv, c)
        rx.wait_until(lambda reqs: c_ids[0] in [r.header("webhook-id") for r in reqs],
                      what="the first request of the last batch")
        d.term()
        d = self.run_daemon(cfg)
        rx.wait_for_ids(c_ids)
        self.api.wait_polls("t", 2)
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, a + b + c),
                                    "a clean stop and start delivered something twice")


    def test_mark_as_read_cut_off_is_done_by_the_next_poll(self):
        # The UIDs queued are persisted as still to mark \Seen with the
        # state; a poll cut off before its UID STORE went through (here:
        # the STORE never reaches Dovecot, then SIGTERM) leaves them
        # pending, and the next run marks them, delivering nothing again.
        dropping = threading.Event()
        dropped = threading.Event()

        def on_client(data, conn):
            if dropping.is_set() and re.search(rb"(?m)^\S+ UID STORE ", data):
                dropped.set()
                return b""              # lost on the way
            return None

        proxy = harness.TcpProxy(dovecot.host, dovecot.port_plain, on_client=on_client).start()
        self.addCleanup(proxy.stop)
        cfg = self.make_config(mode="plain")
        cfg.connection("main")["port"] = proxy.port
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, mark_as_read=True)
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        dropping.set()
        a = self.append(2)
        rx.wait_for_ids(self.event_ids("t", uv, a))
        harness.wait_until(dropped.is_set, timeout=10, what="the UID STORE")
        st = harness.trigger_state(cfg.state_dir, "t")
        self.assertEqual((st["lastUid"], st.get("seenFrom"), st.get("seenTo")),
                         (a[-1], a[0], a[-1]), st)
        d.term()                                # exit 0 within 10 s
        self.assertEqual(self.imap.flags("INBOX"), {u: set() for u in a})

        dropping.clear()
        d = self.run_daemon(cfg)
        harness.wait_until(lambda: self.imap.flags("INBOX") == {u: {"\\Seen"} for u in a},
                           timeout=15, what="the pending UIDs marked \\Seen")
        harness.wait_until(lambda: "seenTo" not in harness.trigger_state(cfg.state_dir, "t"),
                           timeout=10, what="nothing pending in the state")
        # and the same run goes on marking new mail
        b = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, b))
        self.api.wait_polls("t", 1)
        self.assertEqual(self.imap.flags("INBOX"), {u: {"\\Seen"} for u in a + b})
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, a + b))


class TestOnce(DeliveryTestCase):

    def test_once_delivers_and_exits_0(self):
        cfg = self.make_config(api=False)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], start_from="all")
        uids = self.append(3)
        ids = self.event_ids("t", self.uidvalidity(), uids)
        self.once(cfg)
        self.assertDeliveredExactly(rx, ids)
        self.assertEqual(harness.queued_files(cfg.state_dir), [])
        self.assertEqual(harness.trigger_state(cfg.state_dir, "t")["lastUid"], uids[-1])
        self.once(cfg)                          # nothing new: nothing sent
        self.assertDeliveredExactly(rx, ids)
        more = self.append(2)
        self.once(cfg)
        self.assertDeliveredExactly(rx, ids + self.event_ids("t", self.uidvalidity(), more))

    def test_once_with_webhook_down_leaves_events_queued_for_the_next_run(self):
        port = harness.free_port()              # nothing listens there: refused
        cfg = self.make_config(api=False)
        secret = harness.new_webhook_secret()
        cfg.add_webhook("hook", "http://127.0.0.1:%d/hook" % port, secret=secret)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], start_from="all")
        uids = self.append(3)
        ids = self.event_ids("t", self.uidvalidity(), uids)
        cfg.write()
        result = harness.Daemon.once(cfg, timeout=30)
        self.assertIn(result.rc, (0, 75), result.describe())
        sys.stderr.write("\n  [--once with the webhook down exits %d]\n" % result.rc)
        attempts = re.findall(r"(?m)^.*webhook hook: .*left queued.*$", result.stderr)
        self.assertEqual(len(attempts), 1, "not exactly one attempt:\n" + result.stderr)
        queued = harness.queued_files(cfg.state_dir, "hook", "t")
        self.assertEqual([json.loads(p.read_bytes())["id"] for p in queued], ids)
        self.assertEqual(harness.trigger_state(cfg.state_dir, "t")["lastUid"], uids[-1])
        # the webhook comes back on its URL: the next run delivers them
        rx = self.start_receiver(secret=secret, port=port)
        self.once(cfg)
        self.assertDeliveredExactly(rx, ids)
        self.assertEqual(harness.queued_files(cfg.state_dir), [])

    def test_once_exit_status_when_a_poll_fails(self):
        # SPEC exit codes: 1 refused (no such mailbox), 77 authentication,
        # 69 unreachable; the other trigger's mail is still delivered.
        cases = {"missing": ({}, "Nope", 1),
                 "auth": ({"password": "wrong-" + secrets.token_hex(4)}, "INBOX", 77),
                 "down": ({"port": harness.free_port()}, "INBOX", 69)}
        for name, (conn, mailbox, code) in cases.items():
            with self.subTest(name):
                cfg = self.make_config(api=False)
                cfg.connection("main").update(conn)
                cfg.add_connection(**dovecot.connection(self.user, name="good"))
                rx = self.receiver()
                self.add_hook(cfg, "hook", rx)
                cfg.add_trigger("bad", "main", mailbox, ["hook"], start_from="all")
                cfg.add_trigger("good", "good", "INBOX", ["hook"], start_from="all")
                if name == "missing":
                    self.append(1)
                result = self.once(cfg, expect=code)
                self.assertRegex(result.stderr, r"(?i)error.*trigger bad: poll failed")
                self.assertNotIn(self.password, result.stderr)
                self.assertEqual([e["trigger"] for e in rx.events(ok_only=True)],
                                 ["good"] * len(self.imap.uids("INBOX")))

