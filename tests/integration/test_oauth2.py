"""auth = "xoauth2": OAuth2 sign-in (XOAUTH2, OAUTHBEARER) against a real
Dovecot whose oauth2 passdb asks a token-introspection endpoint run by the
test. Token commands are small scripts that count their runs."""

import http.server
import json
import os
import re
import shlex
import subprocess
import threading
import time
import unittest
import urllib.parse

from . import harness

dovecot = None
introspect = None


class Introspection:
    """RFC 7662-style endpoint for Dovecot's oauth2 passdb: POST token=...
    answers {"active": true, "username": ...} for the tokens it knows."""

    def __init__(self):
        self.valid = {}
        self.seen = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                q = urllib.parse.parse_qs(self.rfile.read(n).decode())
                token = q.get("token", [""])[0]
                outer.seen.append(token)
                user = outer.valid.get(token)
                body = json.dumps({"active": True, "username": user} if user
                                  else {"active": False}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def configure_oauth2(mechanisms):
    """Adds the oauth2 passdb for mechanisms (e.g. "xoauth2 oauthbearer")
    to the running fixture and reloads it."""
    ext = dovecot.dir / "oauth2.conf.ext"
    harness.write_file(ext, "introspection_mode = post\n"
                       "introspection_url = http://127.0.0.1:%d/introspect\n"
                       "username_attribute = username\n"
                       "active_attribute = active\n"
                       "active_value = true\n"
                       "force_introspection = yes\n" % introspect.port, mode=0o644)
    conf = dovecot.dir / "dovecot.conf"
    text = conf.read_text()
    if "driver = oauth2" in text:
        raise AssertionError("configure_oauth2 twice")
    text = re.sub(r"auth_mechanisms = [^\n]*\n",
                  "auth_mechanisms = plain login %s\n" % mechanisms, text, count=1)
    passdb = ("passdb {\n  driver = oauth2\n  mechanisms = %s\n  args = %s\n}\n"
              % (mechanisms, ext))
    head, sep, rest = text.partition("passdb {")
    conf.write_text(head + passdb + sep + rest)
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    subprocess.run(["doveadm", "-c", str(conf), "reload"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the auth process restarts: wait until a PLAIN login works again
    user, pw = dovecot.add_user()
    harness.wait_until(lambda: _plain_login_ok(user, pw), timeout=10,
                       what="Dovecot back after reload")


def _plain_login_ok(user, pw):
    try:
        with dovecot.imap(user, pw):
            return True
    except Exception:
        return False


def setUpModule():
    global dovecot, introspect
    introspect = Introspection()
    dovecot = harness.Dovecot.start_new()
    configure_oauth2("xoauth2 oauthbearer")


def tearDownModule():
    dovecot.stop()
    introspect.close()


class TokenCommand:
    """A script printing tokens from a list, one per run (the last one
    again once the list is used up), counting its runs."""

    def __init__(self, directory, outputs, exit_code=0, stderr="", sleep=0):
        self.dir = directory
        self.count_file = directory / "runs"
        self.path = directory / "token-command"
        lines = ["#!/bin/sh",
                 "n=$(cat %s 2>/dev/null || echo 0)" % self.count_file,
                 "echo $((n + 1)) > %s" % self.count_file]
        if sleep:
            lines.append("sleep %d" % sleep)
        if stderr:
            lines.append("echo %s >&2" % shlex.quote(stderr))
        for i, out in enumerate(outputs):
            cond = "[ $n -ge %d ]" % i if i == len(outputs) - 1 else "[ $n -eq %d ]" % i
            lines.append("if %s; then cat <<'EOF'\n%s\nEOF\nexit %d; fi" % (cond, out, exit_code))
        lines.append("exit %d" % exit_code)
        harness.write_file(self.path, "\n".join(lines) + "\n", mode=0o755)

    @property
    def runs(self):
        try:
            return int(self.count_file.read_text().strip())
        except FileNotFoundError:
            return 0


class OAuth2Test(unittest.TestCase):

    def setUp(self):
        self.dir = harness.make_tmpdir("oauth2")
        self.user, _ = dovecot.add_user()

    def config(self, command, **conn):
        cfg = harness.Config(self.dir)
        keys = dovecot.connection(self.user, password=None, auth="xoauth2",
                                  oauth2_token_command=[str(command.path)], **conn)
        keys.pop("password", None)
        cfg.add_connection(**keys)
        return cfg.write()

    def token(self, name):
        tok = "%s-%s-%d" % (name, self.user, time.monotonic_ns())
        introspect.valid[tok] = self.user
        return tok

    def logins(self, method):
        return [line for line in dovecot.log_lines(self.user)
                if "Login: " in line and "method=%s" % method in line]

    def test_bare_token(self):
        tok = self.token("bare")
        cmd = TokenCommand(self.dir, [tok])
        r = harness.run_cli(self.config(cmd), "test-connection")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertTrue(r.json["ok"])
        self.assertEqual(cmd.runs, 1)
        self.assertEqual(len(self.logins("XOAUTH2")), 1)
        self.assertNotIn(tok, r.stderr)

    def test_json_token_with_expiry(self):
        tok = self.token("json")
        cmd = TokenCommand(self.dir, [json.dumps({"access_token": tok, "expires_in": 3599,
                                                  "token_type": "Bearer"})])
        r = harness.run_cli(self.config(cmd), "mailbox-status", "--mailbox", "INBOX")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(r.json["path"], "INBOX")
        self.assertEqual(cmd.runs, 1)

    def test_token_living_less_than_the_margin_is_used(self):
        # expires_in below the 60 s margin (a helper printing what is left
        # of a cached token): used for the log-in all the same, not fetched
        # again and again
        tok = self.token("brief")
        cmd = TokenCommand(self.dir, [json.dumps({"access_token": tok, "expires_in": 30})])
        r = harness.run_cli(self.config(cmd), "test-connection", timeout=20)
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(cmd.runs, 1)

    def test_expired_token_is_fetched_again(self):
        old = "expired-%s" % self.user          # unknown to the endpoint
        new = self.token("fresh")
        cmd = TokenCommand(self.dir, [old, new])
        r = harness.run_cli(self.config(cmd), "test-connection")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(cmd.runs, 2)
        self.assertIn(old, introspect.seen)
        self.assertIn(new, introspect.seen)

    def test_invalid_token_is_77(self):
        cmd = TokenCommand(self.dir, ["invalid-%s" % self.user])
        r = harness.run_cli(self.config(cmd), "test-connection")
        self.assertEqual(r.rc, 77, r.describe())
        self.assertEqual(r.stdout, b"")
        # fetched again once after the first refusal, then given up
        self.assertEqual(cmd.runs, 2)
        self.assertNotIn("invalid-%s" % self.user, r.stderr)

    def test_failing_command_is_77(self):
        cmd = TokenCommand(self.dir, ["never-printed"], exit_code=3,
                           stderr="refresh token revoked")
        r = harness.run_cli(self.config(cmd), "test-connection")
        self.assertEqual(r.rc, 77, r.describe())
        self.assertIn("exit status 3", r.stderr)
        self.assertIn("refresh token revoked", r.stderr)     # its stderr is logged
        self.assertNotIn("never-printed", r.stderr)          # its stdout never

    def test_stderr_of_a_success_is_not_logged(self):
        # a helper run with "set -x" or "curl -v" writes the token to its
        # stderr: that is logged only when the command fails
        tok = self.token("chatty")
        cmd = TokenCommand(self.dir, [tok], stderr="+ printf %s " + tok)
        r = harness.run_cli(self.config(cmd), "test-connection")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertNotIn(tok, r.stderr)
        self.assertNotIn("printf", r.stderr)

    def test_silent_command_is_77(self):
        cmd = TokenCommand(self.dir, [""])
        r = harness.run_cli(self.config(cmd), "test-connection")
        self.assertEqual(r.rc, 77, r.describe())
        self.assertIn("no token", r.stderr)

    def test_command_time_out_is_77(self):
        cmd = TokenCommand(self.dir, [self.token("late")], sleep=30)
        r = harness.run_cli(self.config(cmd, timeout=2), "test-connection", timeout=20)
        self.assertEqual(r.rc, 77, r.describe())
        self.assertIn("within 2 s", r.stderr)

    def test_missing_program_is_77(self):
        cfg = harness.Config(self.dir)
        keys = dovecot.connection(self.user, auth="xoauth2",
                                  oauth2_token_command=[str(self.dir / "no-such-program")])
        keys.pop("password", None)
        cfg.add_connection(**keys)
        r = harness.run_cli(cfg.write(), "test-connection")
        self.assertEqual(r.rc, 77, r.describe())
        self.assertIn("no-such-program", r.stderr)

    def test_daemon_reuses_the_token(self):
        tok = self.token("daemon")
        cmd = TokenCommand(self.dir, [json.dumps({"access_token": tok, "expires_in": 3600})])
        recv = harness.Receiver().start()
        self.addCleanup(recv.stop)
        cfg = harness.Config(self.dir)
        keys = dovecot.connection(self.user, auth="xoauth2",
                                  oauth2_token_command=[str(cmd.path)], max_connections=1)
        keys.pop("password", None)
        cfg.add_connection(**keys)
        cfg.add_webhook("w", recv.url())
        cfg.add_trigger("t", "main", "INBOX", ["w"], interval=1)
        cfg.set(poll_backoff_max=1)
        daemon = harness.Daemon(cfg.write())
        self.addCleanup(daemon.stop)
        daemon.start()
        harness.wait_until(lambda: (cfg.state_dir / "triggers" / "t.json").exists(),
                           timeout=15, what="first poll")
        with dovecot.imap(self.user) as imap:
            imap.append("INBOX", harness.message_bytes(subject="via xoauth2"))
        recv.wait_for(1, timeout=15)
        self.assertEqual(recv.requests[0].json["envelope"]["subject"], "via xoauth2")
        # kill the session on the server side: the pool logs in again
        # with the cached token
        subprocess.run(["doveadm", "-c", str(dovecot.dir / "dovecot.conf"), "kick",
                        self.user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin"))
        harness.wait_until(lambda: len(self.logins("XOAUTH2")) >= 2, timeout=15,
                           what="a second login")
        self.assertEqual(cmd.runs, 1)


    def start_daemon(self, cmd):
        recv = harness.Receiver().start()
        self.addCleanup(recv.stop)
        cfg = harness.Config(self.dir)
        keys = dovecot.connection(self.user, auth="xoauth2",
                                  oauth2_token_command=[str(cmd.path)], max_connections=1)
        keys.pop("password", None)
        cfg.add_connection(**keys)
        cfg.add_webhook("w", recv.url())
        cfg.add_trigger("t", "main", "INBOX", ["w"], interval=1)
        cfg.set(poll_backoff_max=1)
        daemon = harness.Daemon(cfg.write())
        self.addCleanup(daemon.stop)
        daemon.start()
        return cfg, daemon

    def kick(self):
        subprocess.run(["doveadm", "-c", str(dovecot.dir / "dovecot.conf"), "kick",
                        self.user], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin"))

    def test_daemon_fetches_a_token_about_to_expire_again(self):
        # expires_in 61 s: within a minute of its end (the margin) a second
        # later, so the next log-in runs the command again
        first, second = self.token("short"), self.token("long")
        cmd = TokenCommand(self.dir, [json.dumps({"access_token": first, "expires_in": 61}),
                                      json.dumps({"access_token": second, "expires_in": 3600})])
        cfg, daemon = self.start_daemon(cmd)
        harness.wait_until(lambda: (cfg.state_dir / "triggers" / "t.json").exists(),
                           timeout=15, what="first poll")
        self.assertEqual(cmd.runs, 1)
        time.sleep(1.5)
        self.kick()
        harness.wait_until(lambda: len(self.logins("XOAUTH2")) >= 2, timeout=15,
                           what="a second login")
        self.assertEqual(cmd.runs, 2)
        self.assertIn(second, introspect.seen)
        self.assertNotIn(first, daemon.log)
        self.assertNotIn(second, daemon.log)

    def test_daemon_with_a_refused_token(self):
        # refused: fetched again once at once, refused again: the poll
        # fails and the log says why, never with the token; the account
        # backs off (1 s doubling up to 15 min) and the daemon goes on
        bad = "refused-%s" % self.user
        cmd = TokenCommand(self.dir, [bad])
        cfg, daemon = self.start_daemon(cmd)
        daemon.wait_for_log(r"trigger t: poll failed: .*authentication failed", timeout=20)
        self.assertRegex(daemon.log, r"main: the server refused the OAuth2 token; fetching "
                                     r"a new one")
        self.assertGreaterEqual(cmd.runs, 2)
        self.assertNotIn(bad, daemon.log)
        self.assertTrue(daemon.running)


class OAuthBearerTest(unittest.TestCase):
    """A server offering OAUTHBEARER and not XOAUTH2 (runs last: it
    reconfigures the shared fixture)."""

    def test_oauthbearer(self):
        configure_oauth2_only_bearer()
        d = harness.make_tmpdir("oauthbearer")
        user, _ = dovecot.add_user()
        tok = "bearer-%s" % user
        introspect.valid[tok] = user
        cmd = TokenCommand(d, [tok])
        cfg = harness.Config(d)
        keys = dovecot.connection(user, auth="xoauth2", oauth2_token_command=[str(cmd.path)])
        keys.pop("password", None)
        cfg.add_connection(**keys)
        r = harness.run_cli(cfg.write(), "test-connection")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertNotIn("AUTH=XOAUTH2", [c.upper() for c in r.json["capabilities"]])
        logins = [line for line in dovecot.log_lines(user) if "Login: " in line]
        self.assertTrue(any("method=OAUTHBEARER" in line for line in logins), logins)


def configure_oauth2_only_bearer():
    conf = dovecot.dir / "dovecot.conf"
    text = conf.read_text()
    text = text.replace("auth_mechanisms = plain login xoauth2 oauthbearer",
                        "auth_mechanisms = plain login oauthbearer")
    text = text.replace("mechanisms = xoauth2 oauthbearer", "mechanisms = oauthbearer")
    conf.write_text(text)
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    subprocess.run(["doveadm", "-c", str(conf), "reload"], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    user, pw = dovecot.add_user()
    harness.wait_until(lambda: _plain_login_ok(user, pw), timeout=10,
                       what="Dovecot back after reload")
