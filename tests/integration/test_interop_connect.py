"""Interop: the imaphook CLI connecting to Dovecot 2.3, Cyrus IMAP 3.6 and
Courier-IMAP 5.0 (servers.py), listing mailboxes and reading their status.

- the fixtures themselves: the personal namespace and the capabilities each
  server advertises are the ones the other interop tests expect;
- test-connection over implicit TLS, STARTTLS (nothing of the login in
  clear text) and plain text, the capability list after login, wrong
  passwords, TLS 1.2 and 1.3 forced;
- list-mailboxes with non-ASCII names, nested below the server's namespace
  prefix with the server's delimiter, subscriptions and special use;
- mailbox-status, with highestModseq null on a server without CONDSTORE;
- what a server without [NONEXISTENT]/[ALREADYEXISTS] response codes
  (Cyrus, Courier) makes of missing and existing mailboxes: exit 1 on the
  CLI, 404 and 409 through the HTTP API.

Run with `make check-interop` (IMAPHOOK_INTEROP_SERVERS picks servers).
"""

import http.client
import json

from . import harness
from . import servers


class InteropFixture(servers.InteropCase):
    """What the other interop tests take for granted about the servers."""

    def test_namespace_delimiter_and_capabilities(self):
        self.assertEqual(self.imap.namespace(), (self.srv.prefix, self.srv.delimiter))
        [inbox] = self.imap.list("INBOX")
        self.assertEqual(inbox.delimiter, self.srv.delimiter)
        caps = self.imap.caps
        got = {cap: cap in caps for cap in self.srv.CAPS}
        self.assertEqual(got, self.srv.CAPS, "capabilities after login: %s" % sorted(caps))

    def test_special_use_mailboxes(self):
        listed = {m.name: m.flags for m in self.imap.list()}
        for path, use in self.srv.special_use.items():
            self.assertIn(path, listed)
        self.assertEqual({p for p in listed if p != "INBOX"}, set(self.srv.special_use))


class InteropConnect(servers.InteropCase):

    def assertConnected(self, result, mode="tls"):
        doc = self.assertJsonResult(result)
        self.assertEqual(set(doc), {"ok", "capabilities"}, doc)
        self.assertIs(doc["ok"], True)
        self.assertIn("IMAP4rev1", doc["capabilities"])
        # the list after login (SPECIAL-USE, MOVE... are what imaphook
        # uses). Cyrus's CAPABILITY command still lists AUTH= after login,
        # its LOGIN answer's [CAPABILITY] (which imaphook keeps) does not.
        with self.srv.imap(self.user, mode=mode) as imap:
            expected = {c for c in imap.capabilities() if not c.startswith("AUTH=")}
        self.assertEqual({c.upper() for c in doc["capabilities"]
                          if not c.upper().startswith("AUTH=")}, expected)
        return doc

    def test_implicit_tls(self):
        n = len(self.srv.logins(self.user))
        self.assertConnected(self.cli(self.config("tls"), "test-connection"))
        last = self.srv.wait_logins(self.user, n + 1)[-1]
        # the login came through the implicit-TLS port
        if self.srv.name == "cyrus":
            self.assertTrue(last.startswith("imaps-"), last)
        elif self.srv.name == "courier":
            tls_log = (self.srv.dir / "log" / "imapd-ssl.log").read_text(errors="replace")
            self.assertIn(last, tls_log.splitlines())
        else:
            self.assertIn(", TLS,", last)

    def test_starttls_hides_the_login(self):
        rec = servers.Recorder(self.srv).start()
        self.addCleanup(rec.stop)
        cfg = self.config("starttls", port=rec.port)
        self.assertConnected(self.cli(cfg, "test-connection"), mode="starttls")
        # before the handshake: the client asked for STARTTLS and nothing else
        # that matters; the LOGIN and the password went through TLS
        self.assertIn(b"STARTTLS\r\n", rec.raw)
        self.assertNotIn(self.password.encode(), rec.raw)
        self.assertNotIn(b"LOGIN", rec.raw)
        self.assertNotIn(b"AUTHENTICATE", rec.raw)

    def test_starttls_verifies_the_certificate(self):
        r = self.cli(self.config("starttls", ca_file=None), "test-connection")
        self.assertExit(r, 69)
        self.assertStderrMatches(r, r"certificate verify")

    def test_plain_text(self):
        r, rec = self.recorded("test-connection")
        self.assertConnected(r, mode="plain")
        self.assertNotIn(b"STARTTLS", rec.raw)

    def test_wrong_password(self):
        wrong = "Wr0ng-" + self.password
        r = self.cli(self.config("tls", password=wrong), "test-connection")
        self.assertExit(r, 77)
        self.assertEqual(r.stdout, b"")
        self.assertNotIn(wrong, r.stderr, "the password was printed")

    def test_tls_versions(self):
        for version in ("TLSv1.2", "TLSv1.3"):
            for mode in ("tls", "starttls"):
                with self.subTest(version=version, mode=mode):
                    cfg = self.config(mode, min_tls_version=version, max_tls_version=version)
                    self.assertConnected(self.cli(cfg, "test-connection"), mode=mode)

    def test_password_with_quotes_spaces_and_non_ascii(self):
        user, password = self.srv.add_user(password='p a"s\\s w\u00f6rd \u65e5')
        cfg = harness.Config()
        cfg.add_connection(**self.srv.connection(user, password))
        self.assertJsonResult(self.cli(cfg, "test-connection"))


class InteropListMailboxes(servers.InteropCase):
    """Non-ASCII names and a nested one, below the server's personal
    namespace, with its delimiter."""

    def setUp(self):
        super().setUp()
        p = self.path
        self.created = {            # path: subscribed
            p("Entw\u00fcrfe"): True,
            p("\u65e5\u672c\u8a9e"): False,
            p("Archive"): False,
            p("Archive", "2026"): True,
            p("a&b"): False,
        }
        for name, subscribe in self.created.items():
            self.imap.create(name, subscribe=subscribe)
        self.server_mailboxes = self.imap.mailboxes()
        self.server_subscribed = self.imap.subscribed()

    def listed(self):
        doc = self.assertJsonResult(self.cli(self.cfg, "list-mailboxes"))
        self.assertEqual(set(doc), {"mailboxes"})
        by_path = {}
        for e in doc["mailboxes"]:
            self.assertEqual(set(e), {"path", "delimiter", "flags", "specialUse", "subscribed"}, e)
            self.assertNotIn(e["path"], by_path, "listed twice: %r" % e)
            by_path[e["path"]] = e
        return by_path

    def test_list_mailboxes(self):
        by_path = self.listed()
        # exactly the server's mailboxes, as it names them, in UTF-8
        self.assertEqual(set(by_path), set(self.server_mailboxes))
        self.assertLessEqual(set(self.created), set(by_path))
        for path, e in by_path.items():
            with self.subTest(path=path):
                self.assertEqual(e["delimiter"], self.srv.delimiter)
                self.assertEqual(e["delimiter"], self.server_mailboxes[path].delimiter)
                self.assertEqual(e["specialUse"], self.srv.special_use.get(path))
                self.assertTrue(all(isinstance(f, str) for f in e["flags"]), e)
                if e["specialUse"]:
                    self.assertIn(e["specialUse"], e["flags"])

    def test_subscriptions(self):
        """subscribed: exactly the subscriptions, not their parents"""
        by_path = self.listed()
        for path, subscribed in self.created.items():
            self.assertIs(by_path[path]["subscribed"], subscribed, path)
        for path, e in by_path.items():
            self.assertIs(e["subscribed"], path in self.server_subscribed, path)

    def test_special_use_where_the_server_has_it(self):
        if not self.has("CREATE-SPECIAL-USE"):
            # nothing to create: list-mailboxes reports what the fixture has
            doc = self.assertJsonResult(self.cli(self.cfg, "list-mailboxes"))
            self.assertEqual({e["path"]: e["specialUse"] for e in doc["mailboxes"]
                              if e["specialUse"]}, self.srv.special_use)
            return
        # Cyrus: CREATE ... (USE (\Sent)) (RFC 6154)
        name = self.path("Gesendet \u00fc")
        self.imap.command("CREATE", harness.imap_mailbox(name), "(USE (\\Sent))")
        doc = self.assertJsonResult(self.cli(self.cfg, "list-mailboxes"))
        uses = {e["path"]: e["specialUse"] for e in doc["mailboxes"] if e["specialUse"]}
        self.assertEqual(uses, dict(self.srv.special_use, **{name: "\\Sent"}))

    def test_subscription_changes_are_seen(self):
        self.imap.unsubscribe(self.path("Entw\u00fcrfe"))
        self.imap.subscribe(self.path("a&b"))
        doc = self.assertJsonResult(self.cli(self.cfg, "list-mailboxes"))
        by_path = {e["path"]: e for e in doc["mailboxes"]}
        self.assertIs(by_path[self.path("Entw\u00fcrfe")]["subscribed"], False)
        self.assertIs(by_path[self.path("a&b")]["subscribed"], True)


class InteropMailboxStatus(servers.InteropCase):

    KEYS = {"path", "messages", "unseen", "uidNext", "uidValidity", "highestModseq"}

    def setUp(self):
        super().setUp()
        self.box = self.path("Entw\u00fcrfe")
        self.empty = self.path("\u65e5\u672c\u8a9e")
        self.imap.create(self.box)
        self.imap.create(self.empty)
        for i, flags in enumerate([[], ["\\Seen"], [], ["\\Seen", "\\Flagged"]]):
            self.imap.append("INBOX", harness.make_message(subject="Nachricht %d \u00fc" % i),
                             flags=flags)
        for i, flags in enumerate([["\\Seen"], []]):
            self.imap.append(self.box, harness.make_message(subject="Entwurf %d" % i),
                             flags=flags)

    def check_status(self, mailbox, messages, unseen):
        doc = self.assertJsonResult(self.cli(self.cfg, "mailbox-status", "--mailbox", mailbox))
        st = self.imap.status(mailbox)
        self.assertEqual(set(doc), self.KEYS, doc)
        self.assertEqual(doc["path"], mailbox)
        self.assertEqual((doc["messages"], doc["unseen"], doc["uidNext"], doc["uidValidity"]),
                         (st["MESSAGES"], st["UNSEEN"], st["UIDNEXT"], st["UIDVALIDITY"]))
        self.assertEqual((doc["messages"], doc["unseen"], doc["uidNext"]),
                         (messages, unseen, messages + 1))
        if self.has("CONDSTORE"):
            self.assertEqual(doc["highestModseq"], st["HIGHESTMODSEQ"])
        else:
            self.assertIsNone(doc["highestModseq"])
        return doc

    def test_inbox_and_non_ascii_mailboxes(self):
        self.check_status("INBOX", messages=4, unseen=2)
        self.check_status(self.box, messages=2, unseen=1)
        self.check_status(self.empty, messages=0, unseen=0)

    def test_counters_follow_changes(self):
        before = self.check_status("INBOX", messages=4, unseen=2)
        self.imap.store("INBOX", "1", "+FLAGS", ["\\Seen"])
        self.imap.append("INBOX", harness.make_message(subject="new"))
        after = self.check_status("INBOX", messages=5, unseen=2)
        self.assertEqual(after["uidValidity"], before["uidValidity"])
        if self.has("CONDSTORE"):
            self.assertGreater(after["highestModseq"], before["highestModseq"])

    def test_missing_mailbox(self):
        missing = self.path("Nicht da \u00fc")
        r = self.cli(self.cfg, "mailbox-status", "--mailbox", missing)
        self.assertExit(r, 1)
        self.assertEqual(r.stdout, b"")
        self.assertIn(missing, r.stderr)


class InteropHttpStatuses(servers.InteropCase):
    """A refusal without a response code (Cyrus, Courier) still becomes 404
    for a missing mailbox and 409 for an existing one: imaphook asks LIST."""

    def setUp(self):
        super().setUp()
        self.cfg.connection("main")["max_connections"] = 1
        self.port = harness.free_port()
        self.cfg.api = {"listen": "127.0.0.1:%d" % self.port}
        self.cfg.write()
        self.daemon = self.start_daemon(self.cfg, wait_for=r"api: listening")

    def post(self, action, params, status):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/v1/actions/" + action, body=json.dumps(params).encode(),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        self.assertEqual(resp.status, status, "%s %r -> %s %s" % (action, params, resp.status,
                                                                  body[:500]))
        return json.loads(body)

    def test_missing_and_existing_mailboxes(self):
        there, missing = self.path("Da"), self.path("Fehlt \u00fc")
        self.imap.create(there)
        uid = self.imap.append(there, harness.message_bytes())
        self.post("create-mailbox", {"path": there}, 409)
        self.post("search", {"mailbox": missing}, 404)
        self.post("mailbox-status", {"mailbox": missing}, 404)
        self.post("copy", {"mailbox": there, "range": str(uid), "to": missing}, 404)
        self.post("append", {"mailbox": missing, "message": "Subject: x\r\n\r\nx\r\n"}, 404)
        self.post("delete-mailbox", {"path": missing}, 404)
        self.post("download", {"mailbox": there, "uid": uid + 1}, 404)
        # and the connection is still good for what exists
        doc = self.post("search", {"mailbox": there}, 200)
        self.assertEqual([m["uid"] for m in doc["messages"]], [uid])
        self.assertEqual(self.imap.uids(there), [uid])

    def test_rename_missing_mailbox(self):
        missing, new = self.path("Fehlt \u00fc"), self.path("Neu")
        self.post("rename-mailbox", {"path": missing, "newPath": new}, 404)
        self.assertNotIn(new, self.imap.mailboxes())


servers.parametrize(globals(), InteropFixture, InteropConnect, InteropListMailboxes,
                    InteropMailboxStatus, InteropHttpStatuses)
