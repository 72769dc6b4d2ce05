"""Running imaphookd: liveness, reloads, metrics and its command line.

- /healthz: a trigger on a missing mailbox makes it 503 with lastError while
  the other trigger delivers, and creating the mailbox brings back 200; a
  wrong password is logged (never the password) and shown; a Dovecot stopped
  and started again is survived without restarting the daemon;
- SIGHUP: added triggers start, removed ones stop, unchanged ones keep their
  state (counters go on, nothing delivered again, no flood), a changed one
  resumes from its persisted state; a bad new file is refused and the old
  one stays in force; removing a trigger while its UID FETCH is in flight
  (held by a proxy), with and without a change of its connection;
- /metrics: the SPEC families are there and move;
- --check-config (0, 78 with FILE:LINE:), unknown options (64);
- stopping or reloading while a pooled connection is being opened.
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from pathlib import Path

from . import harness

dovecot = None


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()     # the test_daemon_* modules share it
    OpsTestCase.server = dovecot


class OpsTestCase(harness.DaemonTestCase):

    def wait_health(self, status, timeout=15, pred=None):
        """Waits until GET /healthz answers status (and pred(doc)); returns
        the document."""
        def check():
            code, doc = self.api.healthz()
            return code == status and (pred is None or pred(doc)) and doc
        return harness.wait_until(check, timeout=timeout,
                                  what="/healthz %d%s" % (status, "" if pred is None
                                                          else " (and condition)"))

    @staticmethod
    def entry(doc, kind, name):
        return next(x for x in doc[kind] if x["name"] == name)


class TestHealth(OpsTestCase):

    def test_missing_mailbox_is_shown_and_recovers(self):
        cfg = self.make_config(poll_backoff_max=1)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("missing", "main", "Nope", ["hook"], interval=1)
        cfg.add_trigger("fine", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        doc = self.wait_health(503, pred=lambda doc: self.entry(doc, "triggers", "missing")
                               ["lastError"] is not None)
        self.assertEqual(doc["status"], "failing")
        missing = self.entry(doc, "triggers", "missing")
        self.assertIn("Nope", missing["lastError"])
        self.assertEqual((missing["connection"], missing["mailbox"], missing["mode"]),
                         ("main", "Nope", "poll"))
        self.assertIsNotNone(missing["lastPollAt"])
        self.assertIsNone(missing["lastSuccessAt"])
        self.assertEqual(self.entry(doc, "connections", "main")["name"], "main")
        # the other trigger is fine and delivers
        d.wait_for_log(r"trigger fine: watching INBOX")
        uv = self.uidvalidity()
        [u] = self.append(1)
        rx.wait_for_ids(self.event_ids("fine", uv, [u]))
        status, fine = self.api.trigger("fine")
        self.assertEqual(status, 503)
        self.assertIsNone(fine["lastError"])
        self.assertIsNotNone(fine["lastSuccessAt"])
        self.assertRegex(d.log, r"(?i)warn.*trigger missing: poll failed:.*Nope")
        self.assertGreater(self.api.metrics().get("imaphook_polls_total", 0, trigger="missing",
                                                  result="error"), 0)
        # the mailbox appears: back to 200, and its mail is delivered
        self.imap.create("Nope")
        doc = self.wait_health(200)
        self.assertEqual(doc["status"], "ok")
        self.assertIsNone(self.entry(doc, "triggers", "missing")["lastError"])
        d.wait_for_log(r"trigger missing: watching Nope")
        uv2 = self.uidvalidity("Nope")
        [n] = self.append(1, mailbox="Nope")
        rx.wait_for_ids(self.event_ids("missing", uv2, [n]))
        self.assertSigned(rx)

    def test_wrong_password_is_logged_and_shown(self):
        secret_pw = "Wr0ng-" + secrets.token_hex(8)
        cfg = self.make_config(auth_backoff_max=30)
        cfg.connection("main")["password"] = secret_pw
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        doc = self.wait_health(503, pred=lambda doc: self.entry(doc, "connections", "main")
                               ["state"] == "backoff")
        t = self.entry(doc, "triggers", "t")
        conn = self.entry(doc, "connections", "main")
        self.assertRegex(t["lastError"] or "", r"(?i)auth")
        self.assertRegex(conn["lastError"] or "", r"(?i)auth")
        self.assertEqual(conn["open"], 0)
        # the log line is written with lastError; our reader may lag
        d.wait_for_log(r"(?i)trigger t: poll failed: .*auth", timeout=5)
        self.assertNotIn(secret_pw, d.log)
        harness.wait_until(lambda: any("auth failed" in line
                                       for line in dovecot.log_lines(self.user)),
                           what="Dovecot to log a failed login of %s" % self.user)
        self.assertEqual(rx.requests, [])
        # stopping while the pool backs off (not while it is connecting:
        # see TestPoolShutdown)
        d.term()
        self.assertNotIn(secret_pw, d.log)

    def test_sighup_with_the_right_password_polls_at_once(self):
        # The trigger of a connection whose settings changed restarts: not
        # after the back-off its failures with the old password built up.
        cfg = self.make_config(auth_backoff_max=600)
        right = cfg.connection("main")["password"]
        cfg.connection("main")["password"] = "Wr0ng-" + secrets.token_hex(8)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        uv = self.uidvalidity()
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: poll failed: .*\(retry in (8|9|\d\d+)\.\d s\)", timeout=30)
        cfg.connection("main")["password"] = right
        cfg.write()
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"reloaded: 0 triggers kept, 1 started, 1 stopped", since=mark)
        # its first poll comes now (the state was never written: a baseline)
        d.wait_for_log(r"trigger t: watching INBOX", since=mark, timeout=5)
        a = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, a))

    def test_survives_dovecot_restart(self):
        # the module's Dovecot: started again whatever happens here
        self.addCleanup(lambda: dovecot.running or dovecot.start())
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        [before] = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, [before]))
        pid = d.pid
        self.imap.close()
        dovecot.stop()
        doc = self.wait_health(503)
        self.assertIsNotNone(self.entry(doc, "triggers", "t")["lastError"])
        dovecot.start()
        with dovecot.imap(self.user) as c:
            after = c.append("INBOX", harness.make_message(subject="after the restart"))
        rx.wait_for_ids(self.event_ids("t", uv, [after]), timeout=20)
        self.wait_health(200)
        self.assertTrue(d.running)
        self.assertEqual(d.pid, pid)
        self.assertDeliveredExactly(rx, self.event_ids("t", uv, [before, after]))
        d.wait_for_log(r"trigger t: polling works again")


class TestReload(OpsTestCase):

    def test_sighup_adds_removes_keeps_and_refuses(self):
        for box in ("Other", "Third", "Fourth"):
            self.imap.create(box)
        third_old = self.append(2, mailbox="Third")
        fourth_old = self.append(2, mailbox="Fourth")
        uv = {b: self.uidvalidity(b) for b in ("INBOX", "Other", "Third", "Fourth")}
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("keep", "main", "INBOX", ["hook"], interval=1, start_from="all")
        cfg.add_trigger("gone", "main", "Other", ["hook"], interval=1)
        cfg.add_trigger("changed", "main", "Fourth", ["hook"], interval=1, start_from="all")
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger gone: watching Other")
        [k1] = self.append(1)
        [g1] = self.append(1, mailbox="Other")
        expected = (self.event_ids("keep", uv["INBOX"], [k1]) +
                    self.event_ids("gone", uv["Other"], [g1]) +
                    self.event_ids("changed", uv["Fourth"], fourth_old))
        rx.wait_for_ids(expected)
        polls_before = self.api.polls("keep")

        # remove "gone", add "new" (start_from all: it delivers Third's
        # mail), change "changed" (interval), keep "keep" unchanged
        cfg.remove_trigger("gone")
        cfg.trigger("changed")["interval"] = 2
        cfg.add_trigger("new", "main", "Third", ["hook"], interval=1, start_from="all")
        cfg.write()
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"reloaded: 1 trigger kept, 2 started, 2 stopped", since=mark)
        self.assertRegex("".join(d.lines[mark:]), r"trigger gone: stopped \(reload\)")
        rx.wait_for_ids(self.event_ids("new", uv["Third"], third_old))
        [k2] = self.append(1)
        [g2] = self.append(1, mailbox="Other")
        [t3] = self.append(1, mailbox="Third")
        [f3] = self.append(1, mailbox="Fourth")
        expected += (self.event_ids("new", uv["Third"], third_old) +
                     self.event_ids("keep", uv["INBOX"], [k2]) +
                     self.event_ids("new", uv["Third"], [t3]) +
                     self.event_ids("changed", uv["Fourth"], [f3]))
        rx.wait_for_ids(expected)
        self.api.wait_polls(["keep", "new"], 2)
        self.assertEqual(sorted(rx.ids(ok_only=True)), sorted(expected),
                         "a kept or changed trigger delivered again, or the removed one ran")
        self.assertNotIn(self.event_ids("gone", uv["Other"], [g2])[0], rx.ids())
        # "keep" is the same trigger: its counters went on
        self.assertGreater(self.api.polls("keep"), polls_before)
        m = self.api.metrics()
        self.assertIsNone(m.get("imaphook_polls_total", None, trigger="gone", result="ok"))
        status, doc = self.api.healthz()
        self.assertEqual(sorted(t["name"] for t in doc["triggers"]), ["changed", "keep", "new"])

        # a bad file is refused: the old configuration goes on
        good_text = cfg.path.read_text()
        harness.write_file(cfg.path, good_text + "bogus_key = 1;\ntriggers = 3;\n")
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"reload refused: the configuration in force stays", since=mark)
        self.assertRegex("".join(d.lines[mark:]), r"reload refused: .*imaphook\.conf:\d+: ")
        [k3] = self.append(1)
        [t4] = self.append(1, mailbox="Third")
        expected += (self.event_ids("keep", uv["INBOX"], [k3]) +
                     self.event_ids("new", uv["Third"], [t4]))
        rx.wait_for_ids(expected)
        self.assertTrue(d.running)
        self.assertEqual(sorted(rx.ids(ok_only=True)), sorted(expected))
        self.assertSigned(rx)
        # per trigger, UID order
        for name in ("keep", "new", "changed"):
            uids = [e["uid"] for e in rx.events(ok_only=True) if e["trigger"] == name]
            self.assertEqual(uids, sorted(uids), name)


    def test_reload_refuses_what_the_daemon_cannot_use(self):
        # a ca_file without a certificate: --check-config says so at its
        # line (not "ok" while the start would fail), a reload is refused
        # and the daemon goes on (it once kept a connection without a pool
        # and crashed at the next /healthz)
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        empty = cfg.dir / "empty.pem"
        empty.write_text("")
        good_ca = cfg.connection("main").get("ca_file")
        cfg.connection("main")["ca_file"] = str(empty)
        cfg.write()
        result = harness.Daemon.check_config(cfg)
        self.assertExit(result, 78)
        self.assertRegex(result.stderr, r"%s:%d: .*ca_file.*no certificate" % (
            re.escape(str(cfg.path)), cfg.line_of("empty.pem")))
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"reload refused: the configuration in force stays", since=mark)
        status, _ = self.api.healthz()
        self.assertEqual(status, 200)
        [u1] = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, [u1]))

        # an API address that cannot be bound: the old one keeps serving
        if good_ca is None:
            cfg.connection("main").pop("ca_file")
        else:
            cfg.connection("main")["ca_file"] = good_ca
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        cfg.api["listen"] = "127.0.0.1:%d" % taken.getsockname()[1]
        cfg.write()
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"reloaded: 1 trigger kept", since=mark)
        self.assertRegex("".join(d.lines[mark:]), r"api: still listening on 127\.0\.0\.1:%d"
                         % self.api.port)
        status, _ = self.api.healthz()
        self.assertEqual(status, 200)
        [u2] = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, [u1, u2]))

        # another address on the same port: the old listener goes first
        # (the new bind failed with EADDRINUSE while it was there)
        port = self.api.port
        cfg.api["listen"] = "0.0.0.0:%d" % port
        cfg.api["token"] = "tok-" + secrets.token_hex(8)
        cfg.write()
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"api: listening on 0\.0\.0\.0:%d \(bearer token" % port, since=mark)
        self.assertNotRegex("".join(d.lines[mark:]), r"still listening")
        status, _, _ = harness.http_get(port, "/v1/actions/test-connection")
        self.assertEqual(status, 401)           # the new listener's token
        status, _, _ = harness.http_get(port, "/v1/actions/test-connection",
                                        token=cfg.api["token"])
        self.assertEqual(status, 405)           # (a GET)
        self.assertTrue(d.running)
        d.term()


class TestReloadMidPoll(OpsTestCase):
    """SIGHUP while a trigger that the new file removes has a UID FETCH in
    flight (held by a proxy), with its connection unchanged or changed."""
    imap_mode = "plain"

    def reload_mid_fetch(self, change_connection):
        self.imap.create("Other")
        gate = harness.ImapGate(dovecot.host, dovecot.port_plain, rb" UID FETCH ").start()
        self.addCleanup(gate.stop)
        cfg = self.make_config(mode="plain", max_connections=2)
        cfg.connection("main")["port"] = gate.port
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        cfg.add_trigger("other", "main", "Other", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        d.wait_for_log(r"trigger other: watching Other")
        gate.arm()
        self.append(1)
        gate.wait_held()
        cfg.remove_trigger("t")
        if change_connection:
            cfg.connection("main")["timeout"] = 30
        cfg.write()
        mark = d.mark()
        d.hup()
        # a trigger of a connection whose settings changed restarts
        d.wait_for_log(r"reloaded: 0 triggers kept, 1 started, 2 stopped" if change_connection
                       else r"reloaded: 1 trigger kept, 0 started, 1 stopped", since=mark)
        gate.release()
        uv = self.uidvalidity("Other")
        [o] = self.append(1, mailbox="Other")
        rx.wait_for_ids(self.event_ids("other", uv, [o]), timeout=15)
        self.assertTrue(d.running)
        d.term()                                # exit 0, no sanitizer report
        self.assertEqual([e["trigger"] for e in rx.events()], ["other"])

    def test_sighup_removing_a_trigger_mid_fetch(self):
        self.reload_mid_fetch(change_connection=False)

    # Regression: the removed trigger's UID FETCH, still in flight on a
    # connection of the replaced pool, once completed into the freed trigger
    # (heap-use-after-free in trig_cmd_done): trigger_stop() now fails its
    # commands while it still exists.
    def test_sighup_removing_a_trigger_mid_fetch_and_changing_its_connection(self):
        self.reload_mid_fetch(change_connection=True)


class TestMetrics(OpsTestCase):

    def test_metrics_are_present_and_move(self):
        cfg = self.make_config(webhook_backoff_max=1)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        [u1] = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, [u1]))
        m1 = self.api.wait_metric("imaphook_webhook_deliveries_total", 1, webhook="hook",
                                  result="ok")
        self.assertEqual(m1.types.get("imaphook_polls_total"), "counter")
        self.assertEqual(m1.types.get("imaphook_events_queued_total"), "counter")
        self.assertEqual(m1.types.get("imaphook_webhook_deliveries_total"), "counter")
        self.assertEqual(m1.types.get("imaphook_outbox_depth"), "gauge")
        self.assertEqual(m1.types.get("imaphook_imap_connections"), "gauge")
        self.assertEqual(m1.types.get("imaphook_poll_duration_seconds"), "histogram")
        self.assertGreaterEqual(m1.get("imaphook_polls_total", trigger="t", result="ok"), 1)
        self.assertEqual(m1.get("imaphook_polls_total", trigger="t", result="error"), 0)
        self.assertEqual(m1.get("imaphook_events_queued_total", trigger="t"), 1)
        self.assertEqual(m1.get("imaphook_webhook_deliveries_total", webhook="hook", result="ok"), 1)
        self.assertEqual(m1.get("imaphook_outbox_depth", webhook="hook"), 0)
        self.assertEqual(m1.get("imaphook_imap_connections", connection="main"), 1)
        count1 = m1.get("imaphook_poll_duration_seconds_count")
        self.assertEqual(m1.get("imaphook_poll_duration_seconds_bucket", le="+Inf"), count1)
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in m1.samples.items()
                         if name == "imaphook_poll_duration_seconds_bucket")
        self.assertGreaterEqual(len(buckets), 5)
        self.assertEqual([v for _, v in buckets], sorted(v for _, v in buckets),
                         "histogram buckets are not cumulative")
        self.assertGreater(m1.get("imaphook_poll_duration_seconds_sum"), 0)

        # the webhook fails for a while: the outbox fills, retries count
        rx.respond(503, 503)
        more = self.append(2)
        harness.wait_until(lambda: self.api.metrics().get("imaphook_outbox_depth",
                                                          webhook="hook") == 2,
                           what="outbox_depth 2 while the webhook fails")
        status, t = self.api.trigger("t")
        self.assertEqual((status, t["queued"]), (200, 2))
        rx.wait_for_ids(self.event_ids("t", uv, more), timeout=15)
        self.api.wait_polls("t", 1)
        m2 = self.api.wait_metric("imaphook_webhook_deliveries_total", 3, webhook="hook",
                                  result="ok")
        self.assertGreater(m2.get("imaphook_polls_total", trigger="t", result="ok"),
                           m1.get("imaphook_polls_total", trigger="t", result="ok"))
        self.assertEqual(m2.get("imaphook_events_queued_total", trigger="t"), 3)
        self.assertEqual(m2.get("imaphook_webhook_deliveries_total", webhook="hook", result="ok"), 3)
        self.assertEqual(m2.get("imaphook_webhook_deliveries_total", webhook="hook",
                                result="retry"), 2)
        self.assertEqual(m2.get("imaphook_outbox_depth", webhook="hook"), 0)
        self.assertEqual(m2.get("imaphook_imap_connections", connection="main"), 1)
        self.assertGreater(m2.get("imaphook_poll_duration_seconds_count"), count1)
        self.assertEqual(m2.get("imaphook_poll_duration_seconds_bucket", le="+Inf"),
                         m2.get("imaphook_poll_duration_seconds_count"))


class TestCommandLine(OpsTestCase):

    def test_check_config_and_usage_exit_codes(self):
        cfg = self.make_config(api=False)
        cfg.add_webhook("hook", "http://127.0.0.1:9/hook")
        cfg.add_trigger("t", "main", "INBOX", ["hook"])
        cfg.write()
        good = harness.Daemon.check_config(cfg)
        self.assertExit(good, 0)
        self.assertFalse((cfg.dir / "state").exists(), "--check-config wrote the state_dir")

        bad = harness.Config(**self.config_defaults)
        bad.add_connection(**dovecot.connection(self.user), bogus_key=1)
        bad.add_webhook("hook", "http://127.0.0.1:9/hook", timeout="ten")
        bad.add_trigger("t", "main", "INBOX", ["nowhere"])
        bad.add_trigger("bad name!", "main", "INBOX", ["hook"])
        bad.write()
        result = harness.Daemon.check_config(bad)
        self.assertExit(result, 78)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        path = str(bad.path)
        for line in lines:
            self.assertRegex(line, r"^%s:\d+: \S" % re.escape(path), result.describe())
        numbers = {int(re.match(r"^%s:(\d+):" % re.escape(path), line).group(1)) for line in lines}
        for needle in ("bogus_key", 'timeout = "ten"', '"nowhere"', "bad name!"):
            self.assertIn(bad.line_of(needle), numbers,
                          "no error at the line of %s\n%s" % (needle, result.describe()))
        self.assertNotIn(dovecot.users[self.user], result.stderr)
        # a config error stops the daemon itself too
        self.assertExit(harness.Daemon.run(bad), 78)

        for args in (["--no-such-option"], ["-x"], ["-c"]):
            result = harness.Daemon.run(cfg if args != ["-c"] else None, *args)
            self.assertExit(result, 64)
            self.assertRegex(result.stderr, r"(?i)usage|option|needs")
        self.assertExit(harness.Daemon.run(None, "--version"), 0)
        self.assertExit(harness.Daemon.run(None, "--help"), 0)


class TestSupervision(OpsTestCase):
    """What systemd and a terminal see: sd_notify datagrams, SIGINT."""

    def test_sd_notify_ready_and_stopping(self):
        sock_path = Path(tempfile.mkdtemp(prefix="imaphook-notify-")) / "notify"
        self.addCleanup(shutil.rmtree, sock_path.parent, True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        cfg = self.make_config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        # WATCHDOG_USEC as systemd sets it for WatchdogSec=2s: a ping every 1 s
        d = self.run_daemon(cfg, env={"NOTIFY_SOCKET": str(sock_path),
                                      "WATCHDOG_USEC": "2000000"})
        got = []

        def received(what):
            def check():
                try:
                    got.append(sock.recv(4096).decode())
                except socket.timeout:
                    pass
                return any(what in m.split("\n") for m in got)
            return check
        harness.wait_until(received("READY=1"), timeout=10, what="READY=1")
        harness.wait_until(received("WATCHDOG=1"), timeout=10, what="WATCHDOG=1")
        d.signal(signal.SIGINT)                 # Ctrl-C: a clean stop, like SIGTERM
        harness.wait_until(received("STOPPING=1"), timeout=10, what="STOPPING=1")
        self.assertEqual(d.wait(10), 0)
        ready = next(i for i, m in enumerate(got) if "READY=1" in m.split("\n"))
        stopping = next(i for i, m in enumerate(got) if "STOPPING=1" in m.split("\n"))
        self.assertLess(ready, stopping, got)


class TestDemo(unittest.TestCase):
    """`make demo` runs tests/fixtures/demo.sh: its own Dovecot, receiver and
    imaphookd, one appended message whose signed event must arrive."""

    def test_demo_delivers_a_signed_event(self):
        if os.geteuid() != 0:
            self.skipTest("the demo's Dovecot needs root")
        result = subprocess.run(
            ["bash", str(harness.TOP / "tests/fixtures/demo.sh")], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=180,
            env=harness.project_env({"DEMO_ONCE": 1, "IMAPHOOK_BUILD": harness.BUILD}))
        out = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, out)
        self.assertRegex(out, r"event demo-inbox:\d+:1 signature=ok")
        self.assertIn("Grüße aus München", out)    # the subject, RFC 2047 decoded


class TestPoolShutdown(OpsTestCase):
    """Freeing a pool while one of its connections is being opened (greeting,
    capability, authentication in flight): at exit (SIGTERM) and when SIGHUP
    replaces the pool of a changed connection."""

    def start_connecting(self, **settings):
        cfg = self.make_config(log_level="debug", auth_backoff_max=30, **settings)
        cfg.connection("main")["password"] = "wrong-" + secrets.token_hex(4)
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        # the login is on its way: Dovecot answers a failed one after a
        # moment (its 0.5 s tick), and the pool waits for it
        d.wait_for_log(r"main#\d+: C: \S+ AUTHENTICATE")
        return cfg, rx, d

    # Regression (fixed in 54745a8): imap_pool_free() -> entry_free() closed
    # a connection that was not ready yet; imap_conn_close() called the
    # pool's ready callback with an error, pool_ready_cb() freed the entry
    # (after removing it from the list a second time) and entry_free() then
    # read it: heap-use-after-free (common/imap_pool.c:188). Also hit at the
    # exit of `imaphookd --once` with two triggers on one connection.
    def test_sigterm_while_a_connection_is_being_opened(self):
        cfg, rx, d = self.start_connecting()
        d.term()                                # exit 0, no sanitizer report

    # The same, in a running daemon: SIGHUP with a changed connection (here:
    # the right password) frees the old pool while it connects.
    def test_sighup_changing_a_connection_while_it_is_being_opened(self):
        cfg, rx, d = self.start_connecting()
        cfg.connection("main")["password"] = self.password
        cfg.write()
        mark = d.mark()
        d.hup()
        d.wait_for_log(r"reloaded: ", since=mark)
        uv = self.uidvalidity()
        d.wait_for_log(r"trigger t: watching INBOX", since=mark, timeout=40)
        [u] = self.append(1)
        rx.wait_for_ids(self.event_ids("t", uv, [u]))
        d.term()
