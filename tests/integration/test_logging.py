"""log_format = "json": one JSON object per line on stderr, secrets never
logged, log_level honoured."""

import json
import unittest

from . import harness

dovecot = None


def setUpModule():
    global dovecot
    dovecot = harness.Dovecot.start_new()


def tearDownModule():
    dovecot.stop()


class JsonLogTest(unittest.TestCase):

    def run_once(self, **settings):
        user, password = dovecot.add_user()
        cfg = harness.Config(harness.make_tmpdir("log"))
        cfg.set(**settings)
        cfg.add_connection(**dovecot.connection(user))
        with harness.Receiver().start() as rx:
            cfg.add_webhook("w", rx.url(), secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            cfg.add_trigger("t", "main", "INBOX", ["w"], start_from="all")
            with dovecot.imap(user) as imap:
                imap.append("INBOX", harness.message_bytes(subject="logged"))
            r = harness.run_program([harness.binary("imaphookd"), "-c", str(cfg.write()),
                                     "--once"])
            self.assertEqual(r.rc, 0, r.describe())
            self.assertEqual(len(rx.requests), 1)
        return r, password

    def test_one_json_object_per_line(self):
        r, password = self.run_once(log_format="json", log_level="debug")
        lines = [line for line in r.stderr.splitlines() if line]
        self.assertGreater(len(lines), 5)
        levels = set()
        for line in lines:
            obj = json.loads(line)          # every line is one object
            self.assertEqual(set(obj), {"time", "level", "prog", "msg"}, line)
            self.assertEqual(obj["prog"], "imaphookd")
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            levels.add(obj["level"])
        self.assertIn("debug", levels)
        self.assertIn("info", levels)
        self.assertNotIn(password, r.stderr)
        self.assertNotIn("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r.stderr)

    def test_text_lines_and_level(self):
        r, password = self.run_once(log_level="warn")
        # nothing went wrong: warn hides info and debug
        self.assertEqual(r.stderr.strip(), "", r.describe())
        r, password = self.run_once(log_level="info")
        lines = r.stderr.splitlines()
        self.assertTrue(any(" imaphookd info: trigger t: queued 1 new email" in line
                            for line in lines), r.stderr)
        self.assertFalse(any(" debug: " in line for line in lines))
        self.assertNotIn(password, r.stderr)
