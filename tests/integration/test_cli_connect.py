"""Foundation: the imaphook CLI against a real Dovecot.

test-connection over implicit TLS, STARTTLS and plain text; certificate,
host name and TLS version checks; wrong passwords and unreachable servers;
list-mailboxes and mailbox-status with non-ASCII mailbox names; and the exit
codes of usage and configuration errors (SPEC: 0 ok, 1 refused, 64 usage,
69 unreachable/TLS, 77 authentication, 78 configuration).

Every test has its own Dovecot user, so mailboxes never leak between tests.
"""

import re
import socket
import time

from . import harness

dovecot = None


def setUpModule():
    global dovecot
    dovecot = harness.Dovecot.start_new()


def tearDownModule():
    if dovecot is not None:
        dovecot.stop()


class CliTestCase(harness.IntegrationTestCase):
    def setUp(self):
        self.user, self.password = dovecot.add_user()

    def config(self, mode="tls", password=None, **overrides):
        """A written config with one connection "main" for this test's user."""
        cfg = harness.Config()
        cfg.add_connection(**dovecot.connection(self.user, password or self.password,
                                                mode=mode, **overrides))
        cfg.write()
        return cfg

    def assertNotLoggedIn(self, user=None):
        """Dovecot saw no login attempt (successful or not) of user: the
        client gave up before sending credentials."""
        user = user or self.user
        time.sleep(0.2)         # Dovecot logs through its log process
        self.assertEqual(dovecot.log_lines(user), [],
                         "Dovecot logged activity of %s" % user)


class TestConnect(CliTestCase):
    """test-connection: transports, certificates, TLS versions, passwords."""

    def assertConnected(self, result):
        doc = self.assertJsonResult(result)
        self.assertEqual(set(doc), {"ok", "capabilities"}, doc)
        self.assertIs(doc["ok"], True)
        self.assertIsInstance(doc["capabilities"], list)
        self.assertTrue(all(isinstance(c, str) for c in doc["capabilities"]), doc)
        self.assertIn("IMAP4rev1", doc["capabilities"])
        return doc

    def test_implicit_tls_with_ca_file(self):
        self.assertConnected(self.cli(self.config("tls"), "test-connection"))
        login = dovecot.wait_logins(self.user)[0]
        self.assertIn(", TLS,", login, "not a TLS session: " + login)

    def test_capabilities_are_those_after_login(self):
        # The answer is about what imaphook can use once logged in
        # (CONDSTORE, MOVE, SPECIAL-USE...), not the pre-login list.
        doc = self.assertConnected(self.cli(self.config("tls"), "test-connection"))
        with dovecot.imap(self.user) as imap:
            expected = imap.capabilities()
        self.assertEqual({c.upper() for c in doc["capabilities"]}, expected)

    def test_starttls(self):
        self.assertConnected(self.cli(self.config("starttls"), "test-connection"))
        login = dovecot.wait_logins(self.user)[0]
        self.assertIn(", TLS,", login, "STARTTLS did not protect the login: " + login)

    def test_starttls_verifies_the_certificate(self):
        r = self.cli(self.config("starttls", ca_file=None), "test-connection")
        self.assertExit(r, 69)
        self.assertStderrMatches(r, r"certificate verify")
        self.assertNotLoggedIn()

    def test_plain_text(self):
        self.assertConnected(self.cli(self.config("plain"), "test-connection"))
        login = dovecot.wait_logins(self.user)[0]
        self.assertNotIn(", TLS,", login)

    def test_wrong_password(self):
        wrong = "Wr0ng-" + self.password
        r = self.cli(self.config("tls", password=wrong), "test-connection")
        self.assertExit(r, 77)
        self.assertEqual(r.stdout, b"")
        self.assertNotEqual(r.stderr.strip(), "", "no message on stderr")
        self.assertNotIn(wrong, r.stderr, "the password was printed")

    def test_wrong_password_does_not_slow_later_logins(self):
        # Fixture check (Dovecot's auth penalty is off): a failed login must
        # not delay the next one, or every test after one would crawl.
        self.assertExit(self.cli(self.config("tls", password="nope"), "test-connection"), 77)
        r = self.cli(self.config("tls"), "test-connection")
        self.assertConnected(r)
        # Dovecot's penalty would be 4 s; the run itself takes about 0.1 s
        self.assertLess(r.duration, 3, "login after a failed one took %.2f s" % r.duration)

    def test_closed_port(self):
        port = harness.free_port()      # nobody listens there
        for mode in ("tls", "plain"):
            with self.subTest(mode=mode):
                r = self.cli(self.config(mode, port=port), "test-connection")
                self.assertExit(r, 69)
                self.assertEqual(r.stdout, b"")
                self.assertLess(r.duration, 10)

    def test_connect_that_never_completes_times_out(self):
        # a listener whose accept queue is full: the kernel drops our SYNs,
        # so connect(2) neither succeeds nor fails; the `timeout` ends it
        lsock = socket.socket()
        self.addCleanup(lsock.close)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fillers = []
        for _ in range(3):
            c = socket.socket()
            self.addCleanup(c.close)
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        r = self.cli(self.config("plain", port=port, timeout=2), "test-connection")
        self.assertExit(r, 69)
        self.assertIn("no answer within 2 s (connecting)", r.stderr)
        self.assertLess(r.duration, 10)

    def test_self_signed_certificate_without_ca_file(self):
        r = self.cli(self.config("tls", ca_file=None), "test-connection")
        self.assertExit(r, 69)
        self.assertStderrMatches(r, r"certificate verify")
        self.assertNotLoggedIn()

    def test_tls_verify_false_accepts_any_certificate(self):
        self.assertConnected(self.cli(self.config("tls", ca_file=None, tls_verify=False),
                                      "test-connection"))

    def test_tls_version_the_server_cannot_meet(self):
        # the fixture has ssl_min_protocol = TLSv1.2
        for mode in ("tls", "starttls"):
            with self.subTest(mode=mode):
                r = self.cli(self.config(mode, max_tls_version="TLSv1.1"), "test-connection")
                self.assertExit(r, 69)
        self.assertNotLoggedIn()

    def test_tls_version_range_the_server_meets(self):
        r = self.cli(self.config("tls", min_tls_version="TLSv1.2", max_tls_version="TLSv1.2"),
                     "test-connection")
        self.assertConnected(r)

    def test_host_localhost(self):
        # the certificate names DNS:localhost as well as IP:127.0.0.1
        for mode in ("tls", "starttls"):
            with self.subTest(mode=mode):
                self.assertConnected(self.cli(self.config(mode, host="localhost"),
                                              "test-connection"))

    def test_host_name_not_in_certificate(self):
        alias = harness.loopback_alias()
        if alias is None:
            self.skipTest("no host name other than localhost resolves to 127.0.0.1")
        r = self.cli(self.config("tls", host=alias), "test-connection")
        self.assertExit(r, 69)
        self.assertStderrMatches(r, r"certificate verify|host ?name")
        self.assertNotLoggedIn()

    def test_password_with_quotes_spaces_and_non_ascii(self):
        user, password = dovecot.add_user(password='p a"s\\s w\u00f6rd \u65e5')
        cfg = harness.Config()
        cfg.add_connection(**dovecot.connection(user, password))
        self.assertConnected(self.cli(cfg, "test-connection"))


class TestListMailboxes(CliTestCase):
    """list-mailboxes: UTF-8 paths, delimiter, special use, subscriptions."""

    CREATED = {             # name: subscribed
        "Entw\u00fcrfe": True,
        "\u65e5\u672c\u8a9e": False,
        "Archive/2026": True,
        "a&b": False,
    }

    def setUp(self):
        super().setUp()
        with dovecot.imap(self.user) as imap:
            for name, subscribe in self.CREATED.items():
                imap.create(name, subscribe=subscribe)
            self.server_mailboxes = imap.mailboxes()
            self.server_subscribed = imap.subscribed()

    def test_list_mailboxes(self):
        doc = self.assertJsonResult(self.cli(self.config(), "list-mailboxes"))
        self.assertEqual(set(doc), {"mailboxes"})
        entries = doc["mailboxes"]
        by_path = {}
        for e in entries:
            self.assertEqual(set(e), {"path", "delimiter", "flags", "specialUse", "subscribed"}, e)
            self.assertNotIn(e["path"], by_path, "listed twice: %r" % e)
            by_path[e["path"]] = e

        # exactly the mailboxes the server has, named in UTF-8
        self.assertEqual(set(by_path), set(self.server_mailboxes))
        for name in self.CREATED:
            self.assertIn(name, by_path)

        for path, e in by_path.items():
            with self.subTest(path=path):
                self.assertEqual(e["delimiter"], "/")
                self.assertIsInstance(e["flags"], list)
                self.assertTrue(all(isinstance(f, str) for f in e["flags"]), e)
                self.assertIs(e["subscribed"], path in self.server_subscribed)
                expected_use = {"Sent": "\\Sent", "Trash": "\\Trash",
                                "Drafts": "\\Drafts"}.get(path)
                self.assertEqual(e["specialUse"], expected_use)

        # what the test set up, spelled out
        self.assertIs(by_path["Entw\u00fcrfe"]["subscribed"], True)
        self.assertIs(by_path["Archive/2026"]["subscribed"], True)
        self.assertIs(by_path["\u65e5\u672c\u8a9e"]["subscribed"], False)
        self.assertIs(by_path["a&b"]["subscribed"], False)
        self.assertIs(by_path["Drafts"]["subscribed"], True)     # auto = subscribe
        self.assertIs(by_path["Sent"]["subscribed"], False)
        self.assertEqual(by_path["Sent"]["specialUse"], "\\Sent")
        self.assertIsNone(by_path["INBOX"]["specialUse"])

    def test_subscription_changes_are_seen(self):
        with dovecot.imap(self.user) as imap:
            imap.unsubscribe("Entw\u00fcrfe")
            imap.subscribe("a&b")
        doc = self.assertJsonResult(self.cli(self.config(), "list-mailboxes"))
        by_path = {e["path"]: e for e in doc["mailboxes"]}
        self.assertIs(by_path["Entw\u00fcrfe"]["subscribed"], False)
        self.assertIs(by_path["a&b"]["subscribed"], True)


class TestMailboxStatus(CliTestCase):
    """mailbox-status: counters equal to what the server's STATUS says."""

    KEYS = {"path", "messages", "unseen", "uidNext", "uidValidity", "highestModseq"}
    NON_ASCII = "Entw\u00fcrfe"

    def setUp(self):
        super().setUp()
        with dovecot.imap(self.user) as imap:
            imap.create(self.NON_ASCII)
            imap.create("\u65e5\u672c\u8a9e")
            for i, flags in enumerate([[], ["\\Seen"], [], ["\\Seen", "\\Flagged"]]):
                imap.append("INBOX", harness.make_message(subject="Nachricht %d \u00fc" % i),
                            flags=flags)
            for i, flags in enumerate([["\\Seen"], []]):
                imap.append(self.NON_ASCII, harness.make_message(subject="Entwurf %d" % i),
                            flags=flags)

    def check_status(self, mailbox, messages, unseen):
        doc = self.assertJsonResult(self.cli(self.config(), "mailbox-status",
                                             "--mailbox", mailbox))
        with dovecot.imap(self.user) as imap:
            st = imap.status(mailbox)
        self.assertEqual(set(doc), self.KEYS, doc)
        self.assertEqual(doc["path"], mailbox)
        self.assertEqual(doc["messages"], st["MESSAGES"])
        self.assertEqual(doc["unseen"], st["UNSEEN"])
        self.assertEqual(doc["uidNext"], st["UIDNEXT"])
        self.assertEqual(doc["uidValidity"], st["UIDVALIDITY"])
        self.assertIs(type(doc["highestModseq"]), int, doc)
        self.assertEqual(doc["highestModseq"], st["HIGHESTMODSEQ"])
        # and what the test put there
        self.assertEqual((doc["messages"], doc["unseen"], doc["uidNext"]),
                         (messages, unseen, messages + 1))
        return doc

    def test_inbox(self):
        self.check_status("INBOX", messages=4, unseen=2)

    def test_non_ascii_mailbox(self):
        self.check_status(self.NON_ASCII, messages=2, unseen=1)

    def test_empty_non_ascii_mailbox(self):
        self.check_status("\u65e5\u672c\u8a9e", messages=0, unseen=0)

    def test_counters_follow_changes(self):
        before = self.check_status("INBOX", messages=4, unseen=2)
        with dovecot.imap(self.user) as imap:
            imap.store("INBOX", "1", "+FLAGS", ["\\Seen"])
            imap.append("INBOX", harness.make_message(subject="new"))
        after = self.check_status("INBOX", messages=5, unseen=2)
        self.assertEqual(after["uidValidity"], before["uidValidity"])
        self.assertGreater(after["highestModseq"], before["highestModseq"])

    def test_missing_mailbox(self):
        r = self.cli(self.config(), "mailbox-status", "--mailbox", "Nicht da \u00fc")
        self.assertExit(r, 1)
        self.assertEqual(r.stdout, b"")
        self.assertIn("Nicht da \u00fc", r.stderr)


class TestUsageAndConfigErrors(CliTestCase):
    """Exit 64 for usage errors, 78 for configuration errors; neither
    reaches the server."""

    def test_unknown_action(self):
        r = self.cli(self.config(), "no-such-action")
        self.assertExit(r, 64)
        self.assertIn("no-such-action", r.stderr)
        self.assertNotLoggedIn()

    def test_missing_required_parameter(self):
        r = self.cli(self.config(), "mailbox-status")
        self.assertExit(r, 64)
        self.assertStderrMatches(r, r"mailbox")
        self.assertNotLoggedIn()

    def test_unknown_option(self):
        cfg = self.config()
        for args in (["mailbox-status", "--mailbox", "INBOX", "--bogus", "1"],
                     ["test-connection", "--bogus", "1"],
                     ["--bogus", "1", "test-connection"]):
            with self.subTest(args=args):
                r = self.cli(cfg, *args)
                self.assertExit(r, 64)
                self.assertIn("bogus", r.stderr)
        self.assertNotLoggedIn()

    def test_several_connections_need_connection_option(self):
        cfg = harness.Config()
        cfg.add_connection(**dovecot.connection(self.user, "not-the-password", name="bad"))
        cfg.add_connection(**dovecot.connection(self.user, self.password, name="good"))
        cfg.write()
        r = self.cli(cfg, "test-connection")
        self.assertExit(r, 64)
        self.assertNotLoggedIn()
        # the option picks the connection: the good one works, the bad one
        # fails authentication
        self.assertJsonResult(self.cli(cfg, "--connection", "good", "test-connection"))
        self.assertExit(self.cli(cfg, "--connection", "bad", "test-connection"), 77)
        self.assertJsonResult(self.cli(cfg, "test-connection", "--connection", "good"))

    def test_missing_config_file(self):
        path = harness.make_tmpdir() / "absent.conf"
        r = self.cli(path, "test-connection")
        self.assertExit(r, 78)
        self.assertIn(str(path), r.stderr)

    def test_unknown_key_names_file_and_line(self):
        cfg = harness.Config()
        group = cfg.add_connection(**dovecot.connection(self.user, self.password))
        group["colour"] = "blue"
        cfg.write()
        line = cfg.line_of("colour")
        r = self.cli(cfg, "test-connection")
        self.assertExit(r, 78)
        self.assertRegex(r.stderr, r"(?m)^%s:%d: .*colour" % (re.escape(str(cfg.path)), line))
        self.assertNotLoggedIn()

    def test_unknown_top_level_key_names_its_line(self):
        cfg = harness.Config()
        cfg.set(log_level="warn", favourite_colour="blue")
        cfg.add_connection(**dovecot.connection(self.user, self.password))
        cfg.write()
        line = cfg.line_of("favourite_colour")
        r = self.cli(cfg, "test-connection")
        self.assertExit(r, 78)
        self.assertRegex(r.stderr,
                         r"(?m)^%s:%d: .*favourite_colour" % (re.escape(str(cfg.path)), line))
