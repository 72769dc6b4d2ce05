"""A webhook outage against a running imaphookd: the receiver's port first
refuses connections, then answers 503, then hangs past the webhook's
time-out, while mail keeps arriving in two watched mailboxes; then it comes
back. webhook_backoff_max = 1 turns what would be hours of the default
back-off (1 s doubling to 5 min) into seconds: the test reports how long
the same number of attempts would have taken with the defaults.

Meanwhile the triggers keep polling (/healthz 200: a webhook outage is not a
failing poll), their state advances over durably queued events (outbox
files and the /healthz "queued" count match what arrived), only the head of
each queue is tried, and nothing goes to dead letters. Afterwards every
event is delivered exactly once (counting 2xx answers), in UID order per
trigger.
"""

import sys

from . import harness

dovecot = None

DEFAULT_CAP = 300       # SPEC: a failed webhook attempt waits 1 s doubling up to 5 min


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()
    WebhookOutageTest.server = dovecot


def default_schedule(attempts):
    """Seconds that `attempts` consecutive failures of one queue take with
    the default back-off (no jitter)."""
    return sum(min(2 ** n, DEFAULT_CAP) for n in range(attempts))


class WebhookOutageTest(harness.DaemonTestCase):

    def retries(self):
        return self.api.metrics().get("imaphook_webhook_deliveries_total", 0,
                                      webhook="hook", result="retry")

    def test_refused_then_503_then_hanging_then_back(self):
        port = harness.free_port()              # nothing listens yet: refused
        secret = harness.new_webhook_secret()
        cfg = self.make_config(webhook_backoff_max=1)
        cfg.add_webhook("hook", "http://127.0.0.1:%d/hook" % port, secret=secret, timeout=1)
        self.imap.create("Other")
        cfg.add_trigger("t1", "main", "INBOX", ["hook"], interval=1)
        cfg.add_trigger("t2", "main", "Other", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t1: watching INBOX")
        d.wait_for_log(r"trigger t2: watching Other")
        uv1, uv2 = self.uidvalidity(), self.uidvalidity("Other")
        inbox, other = [], []

        def arrive(n1, n2):
            inbox.extend(self.append(n1))
            other.extend(self.append(n2, mailbox="Other"))

        def queued_everything():
            files = harness.queued_files(cfg.state_dir)
            doc = self.api.healthz()[1]
            q = {t["name"]: t["queued"] for t in doc["triggers"]}
            return (len(files) == len(inbox) + len(other) and q["t1"] == len(inbox) and
                    q["t2"] == len(other))

        # 1. connection refused
        arrive(3, 2)
        harness.wait_until(queued_everything, timeout=20, what="5 events queued")
        start = self.retries()
        harness.wait_until(lambda: self.retries() >= start + 10, timeout=40,
                           what="10 refused attempts")
        self.assertRegex(d.log, r"(?i)warn.*webhook hook")
        refused = self.retries()

        # 2. 503
        rx = self.start_receiver(secret=secret, port=port, default=harness.Response(503))
        arrive(2, 2)
        harness.wait_until(queued_everything, timeout=20, what="9 events queued")
        rx.wait_until(lambda reqs: len(reqs) >= 8, timeout=40, what="8 answers of 503")
        heads = {self.event_ids("t1", uv1, inbox[:1])[0], self.event_ids("t2", uv2, other[:1])[0]}
        self.assertLessEqual(set(rx.ids()), heads, "only the head of a queue is tried")

        # 3. the receiver hangs past the webhook's time-out
        n = len(rx.requests)
        rx.default = harness.Response(hang=True)
        arrive(2, 1)
        harness.wait_until(queued_everything, timeout=20, what="12 events queued")
        rx.wait_until(lambda reqs: sum(1 for r in reqs[n:] if r.status is None) >= 4,
                      timeout=40, what="4 requests left hanging")
        self.assertLessEqual(set(rx.ids()), heads)
        status, doc = self.api.healthz()
        self.assertEqual(status, 200, doc)
        self.assertEqual({t["name"]: t["lastUid"] for t in doc["triggers"]},
                         {"t1": inbox[-1], "t2": other[-1]})
        self.assertEqual(self.api.metrics().get("imaphook_outbox_depth", webhook="hook"),
                         len(inbox) + len(other))

        # 4. back
        rx.default = harness.Response(200)
        arrive(1, 1)
        ids1 = self.event_ids("t1", uv1, inbox)
        ids2 = self.event_ids("t2", uv2, other)
        rx.wait_for_ids(ids1 + ids2, timeout=60)
        self.api.wait_polls(["t1", "t2"], 2)
        retries = self.retries()
        d.term()

        got = rx.ids(ok_only=True)
        self.assertEqual([i for i in got if i.startswith("t1:")], ids1)
        self.assertEqual([i for i in got if i.startswith("t2:")], ids2)
        self.assertEqual(len(got), len(ids1) + len(ids2), "delivered twice")
        self.assertSigned(rx)
        self.assertEqual(harness.queued_files(cfg.state_dir), [])
        self.assertEqual(harness.dead_letters(cfg.state_dir), [])
        answered = sum(1 for r in rx.requests if r.status == 503)
        hung = sum(1 for r in rx.requests if r.status is None)
        failed = int(refused) + answered + hung
        per_queue = failed // 2
        self.assertGreaterEqual(retries, failed)
        sys.stderr.write("\n  [webhook outage: %d failed attempts (%d refused, %d answered 503, "
                         "%d hung), about %d per queue: %.0f min with the default back-off]\n"
                         % (failed, refused, answered, hung, per_queue,
                            default_schedule(per_queue) / 60))
