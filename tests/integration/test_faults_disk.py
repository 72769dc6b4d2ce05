"""imaphookd with its state_dir on a tiny tmpfs (512 KiB, mounted for the
test, unmounted in clean-up) that fills up:

- filled with a file while the daemon runs: the next poll cannot queue its
  events, says so (log, /healthz 503 with "No space left on device"), and
  once the file is removed delivers everything;
- filled by the outbox itself (big events with fetch_content while the
  webhook is down): the trigger queues what fits, then stops; when the
  webhook comes back, deliveries free the space and everything else
  follows;
- a single poll whose events are more than the whole file system holds.

All along a watcher thread checks the promise "state never ahead of the
disk": every UID up to the trigger's persisted lastUid is either delivered
(2xx) or in an outbox file.
"""

import re
import threading

from . import harness, hostile

dovecot = None

SIZE = 512 * 1024


def setUpModule():
    global dovecot
    dovecot = harness.shared_dovecot()
    DiskFullTest.server = dovecot


class StateWatcher(threading.Thread):
    """Samples (persisted lastUid, outbox files, 2xx deliveries) every few
    milliseconds; records every UID at or below lastUid that is neither
    queued nor delivered."""

    def __init__(self, state_dir, trigger, rx, uv):
        super().__init__(daemon=True)
        self.state_dir, self.trigger, self.rx, self.uv = state_dir, trigger, rx, uv
        self.appended = []              # UIDs, filled by the test
        self.violations = []
        self.samples = 0
        self.max_last_uid = 0
        self._halt = threading.Event()

    def run(self):
        try:
            self._watch()
        except Exception as e:          # a dead watcher must not pass for a quiet one
            self.violations.append("watcher failed: %r" % e)

    def _watch(self):
        while not self._halt.wait(0.01):
            try:
                st = harness.trigger_state(self.state_dir, self.trigger)
            except ValueError:          # never: the file is replaced by rename
                self.violations.append("unreadable state file")
                continue
            if st is None:
                continue
            files = {p.name for p in harness.queued_files(self.state_dir)}
            got = set(self.rx.ids(ok_only=True))
            last = st.get("lastUid", 0)
            self.max_last_uid = max(self.max_last_uid, last)
            self.samples += 1
            for uid in list(self.appended):
                if uid > last:
                    continue
                event = "%s:%d:%d" % (self.trigger, self.uv, uid)
                if event not in got and not any(name.endswith("-%010d.json" % uid)
                                                for name in files):
                    self.violations.append("lastUid %d but UID %d neither queued nor "
                                           "delivered" % (last, uid))

    def stop(self):
        self._halt.set()
        self.join(10)


class DiskFullTest(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.fs = hostile.Tmpfs(SIZE)
        self.fs.mount()
        # registered before the daemon's clean-up, so it runs after it
        self.addCleanup(self.fs.unmount)

    def config(self, **kw):
        return self.make_config(state_dir=self.fs.path / "state", poll_backoff_max=1,
                                webhook_backoff_max=1, **kw)

    def watch(self, cfg, rx, uv):
        w = StateWatcher(cfg.state_dir, "t", rx, uv)
        w.start()
        self.addCleanup(w.stop)
        return w

    def health(self, status, error=None, timeout=30, daemon=None):
        last = []

        def check():
            code, doc = self.api.healthz()
            last[:] = [code, doc]
            t = doc["triggers"][0]
            if code != status:
                return False
            if status == 200:
                return t["lastError"] is None and t
            return t["lastError"] and (error is None or re.search(error, t["lastError"])) and t
        try:
            return harness.wait_until(check, timeout=timeout, what="/healthz %d" % status)
        except AssertionError as e:
            raise AssertionError("%s; last answer %r\n%s" % (e, last, daemon.log if daemon else ""))

    def test_filled_by_a_file_then_freed(self):
        # Every outbox_put() of a poll fails (ENOSPC): the poll must fail
        # loudly (logged, /healthz 503, lastError) and fetch the same UIDs
        # again, not count as a success that skips them until new mail
        # changes UIDNEXT; once the space is freed they are delivered.
        cfg = self.config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        w = self.watch(cfg, rx, uv)
        a = self.append(2)
        w.appended.extend(a)
        rx.wait_for_ids(self.event_ids("t", uv, a))
        # delivered and removed: no file of ours left to free
        harness.wait_until(lambda: self.api.trigger("t")[1]["queued"] == 0 and
                           not harness.queued_files(cfg.state_dir), what="an empty outbox")

        filler = self.fs.fill(leave=0)
        self.assertLess(self.fs.free(), 4096)
        mark = d.mark()
        b = self.append(3)
        w.appended.extend(b)
        t = self.health(503, error=r"(?i)no space left", daemon=d, timeout=10)
        d.wait_for_log(r"(?i)trigger t: poll failed: .*no space left on device", since=mark,
                       timeout=5)
        self.assertEqual(harness.trigger_state(cfg.state_dir, "t")["lastUid"], a[-1])
        self.assertEqual(harness.queued_files(cfg.state_dir), [])
        self.assertEqual(rx.ids(), self.event_ids("t", uv, a))

        filler.unlink()
        ids = self.event_ids("t", uv, a + b)
        rx.wait_for_ids(ids, timeout=20)
        self.health(200)
        w.stop()
        self.assertEqual(w.violations, [])
        self.assertDeliveredExactly(rx, ids)
        self.assertEqual(list(cfg.state_dir.glob("outbox/*/*/*.tmp")), [])
        self.assertRegex(t["lastError"], r"(?i)no space left on device")

    BODY = "".join("line %d of a long message body\n" % i for i in range(2000))  # ~64 KiB

    def fill_with_outbox(self):
        """The webhook down (nothing listens on its port), one big message
        per poll until the trigger stops queueing: returns (cfg, daemon,
        receiver (not started), watcher, number queued)."""
        port = harness.free_port()
        secret = harness.new_webhook_secret()
        cfg = self.config()
        cfg.add_webhook("hook", "http://127.0.0.1:%d/hook" % port, secret=secret)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, fetch_content=True)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        rx = harness.Receiver(secret=secret, port=port)      # started later
        self.addCleanup(rx.stop)
        w = self.watch(cfg, rx, uv)
        queued = 0
        for _ in range(20):
            [uid] = self.append(1, body=self.BODY)
            w.appended.append(uid)
            try:
                harness.wait_until(
                    lambda: harness.trigger_state(cfg.state_dir, "t")["lastUid"] == uid,
                    timeout=5, what="UID %d queued" % uid)
            except AssertionError:
                break                   # three polls or more without it: full
            queued += 1
        else:
            self.fail("20 events of 64 KiB fit in %d bytes?" % SIZE)
        return cfg, d, rx, w, queued

    def test_state_never_ahead_of_the_outbox_when_the_disk_fills(self):
        cfg, d, rx, w, queued = self.fill_with_outbox()
        # three more polls (ok or not) with the disk full
        polls = lambda: sum(self.api.polls("t", r) for r in ("ok", "error"))   # noqa: E731
        start = polls()
        harness.wait_until(lambda: polls() >= start + 3, timeout=15, what="3 more polls")
        w.stop()
        self.assertEqual(w.violations, [], "samples: %d" % w.samples)
        self.assertGreater(w.samples, 50)
        self.assertGreaterEqual(queued, 2)
        self.assertLess(self.fs.free(), 128 * 1024)
        last = harness.trigger_state(cfg.state_dir, "t")["lastUid"]
        self.assertEqual(last, w.appended[queued - 1])
        # the event that filled the disk may be on disk already (synced, its
        # state not saved): it is put again by the next poll
        files = harness.queued_files(cfg.state_dir)
        self.assertIn(len(files), (queued, queued + 1))
        self.assertTrue(d.running)

    def test_filled_by_the_outbox_then_the_webhook_comes_back(self):
        # As above once the outbox itself filled the disk: the polls whose
        # puts fail are reported and retried, and when the webhook comes
        # back and deliveries free the space, the mail that did not fit is
        # delivered too.
        cfg, d, rx, w, queued = self.fill_with_outbox()
        # not a byte left: the next puts fail whatever the sizes
        filler = self.fs.fill(leave=0)
        more = self.append(2, body=self.BODY)
        w.appended.extend(more)
        polls = lambda: sum(self.api.polls("t", r) for r in ("ok", "error"))   # noqa: E731
        start = polls()
        harness.wait_until(lambda: polls() >= start + 3, timeout=15, what="3 more polls")
        filler.unlink()
        rx.start()
        uv = w.uv
        ids = self.event_ids("t", uv, w.appended)
        try:
            rx.wait_for_ids(ids, timeout=10)
        finally:
            w.stop()
            self.assertEqual(w.violations, [], "samples: %d" % w.samples)
        self.health(200)
        self.assertDeliveredExactly(rx, ids)
        for e in rx.events():
            self.assertIn("line 1999 of a long message body", e["content"]["text"])

    def test_one_poll_bigger_than_the_disk(self):
        # More new mail than the free space holds at once (10 events of
        # ~64 KiB on 512 KiB): the events that fit are synced and committed
        # (outbox_put keeps OUTBOX_RESERVE free so that the trigger's state
        # can still be written after them), delivered, which frees the
        # space for the rest; not the whole window retried for ever.
        cfg = self.config()
        rx = self.receiver()
        self.add_hook(cfg, "hook", rx)
        cfg.add_trigger("t", "main", "INBOX", ["hook"], interval=1, fetch_content=True)
        d = self.run_daemon(cfg)
        d.wait_for_log(r"trigger t: watching INBOX")
        uv = self.uidvalidity()
        w = self.watch(cfg, rx, uv)
        uids = self.append(10, body=self.BODY)
        w.appended.extend(uids)
        ids = self.event_ids("t", uv, uids)
        try:
            # every one of them, in order: each poll queues what fits
            rx.wait_for_ids(ids, timeout=60)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, "".join(d.log.splitlines(True)[-5:])))
        finally:
            w.stop()
            self.assertEqual(w.violations, [])
        self.assertDeliveredExactly(rx, ids)
        self.assertRegex(d.log, r"kept for state files")     # the reserve was hit
