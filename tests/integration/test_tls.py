"""TLS settings of a connection against a Dovecot that accepts old protocol
versions and a small finite-field DH group: min/max_tls_version (TLSv1 and
TLSv1.1 must really work when asked for) and min_dh_size."""

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import unittest

from . import harness

legacy = None


def setUpModule():
    global legacy
    legacy = harness.Dovecot.start_new()
    dh = legacy.dir / "dh1024.pem"
    subprocess.run(["openssl", "dhparam", "-out", str(dh), "1024"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conf = legacy.dir / "dovecot.conf"
    text = conf.read_text()
    text = re.sub(r"(?m)^ssl_min_protocol = .*$", "ssl_min_protocol = TLSv1", text)
    # OpenSSL 3 needs security level 0 for TLS 1.0/1.1 on the server too;
    # finite-field DHE first, so that a TLS 1.2 client gets the DH group
    text += ("ssl_cipher_list = DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-SHA:"
             "DEFAULT:@SECLEVEL=0\n"
             "ssl_prefer_server_ciphers = yes\n"
             "ssl_dh = <%s\n" % dh)
    conf.write_text(text)
    os.kill(legacy.pid, signal.SIGHUP)
    user, _ = legacy.add_user()
    harness.wait_until(lambda: _tls10_works(user), timeout=15,
                       what="Dovecot to accept TLSv1 after the reload")


def _tls10_works(user):
    r = _cli(user, min_tls_version="TLSv1", max_tls_version="TLSv1")
    return r.rc == 0


def tearDownModule():
    if legacy is not None:
        legacy.stop()


def _cli(user, **keys):
    cfg = harness.Config(harness.make_tmpdir("tls"))
    cfg.add_connection(**legacy.connection(user, **keys))
    return harness.run_cli(cfg.write(), "-v", "test-connection")


class TlsVersionTest(unittest.TestCase):

    def setUp(self):
        self.user, _ = legacy.add_user()

    def negotiated(self, r):
        m = re.search(r"ready \((TLSv[0-9.]+)\)", r.stderr)
        self.assertIsNotNone(m, r.describe())
        return m.group(1)

    def test_tls10_really_works_when_asked(self):
        r = _cli(self.user, min_tls_version="TLSv1", max_tls_version="TLSv1")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(self.negotiated(r), "TLSv1")

    def test_tls11_really_works_when_asked(self):
        r = _cli(self.user, min_tls_version="TLSv1.1", max_tls_version="TLSv1.1")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(self.negotiated(r), "TLSv1.1")

    def test_default_range_negotiates_the_newest(self):
        r = _cli(self.user)
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(self.negotiated(r), "TLSv1.3")

    def test_starttls_with_tls12_only(self):
        r = _cli(self.user, mode="starttls", min_tls_version="TLSv1.2",
                 max_tls_version="TLSv1.2")
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(self.negotiated(r), "TLSv1.2")


class MinDhSizeTest(unittest.TestCase):
    """The fixture's DH group has 1024 bits; TLS 1.2 with DHE uses it."""

    def setUp(self):
        self.user, _ = legacy.add_user()

    def test_small_dh_group_refused(self):
        r = _cli(self.user, max_tls_version="TLSv1.2", min_dh_size=2048)
        self.assertEqual(r.rc, 69, r.describe())
        self.assertIn("DH key exchange is 1024 bits, below min_dh_size 2048", r.stderr)
        # refused before logging in
        self.assertEqual(legacy.logins(self.user), [])

    def test_small_dh_group_accepted_at_its_size(self):
        r = _cli(self.user, max_tls_version="TLSv1.2", min_dh_size=1024)
        self.assertEqual(r.rc, 0, r.describe())

    def test_ecdhe_is_not_limited_by_min_dh_size(self):
        # TLS 1.3 key exchange uses an elliptic curve here: min_dh_size
        # applies to finite-field DH only
        r = _cli(self.user, min_dh_size=4096)
        self.assertEqual(r.rc, 0, r.describe())


class SniServer:
    """A TLS listener on 127.0.0.1 that records the server name each client
    sends (SNI), greets as IMAP and answers every command NO."""

    def __init__(self, directory):
        cert, key = directory / "sni-cert.pem", directory / "sni-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.names = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.ctx.sni_callback = lambda sock, name, ctx: self.names.append(name)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(raw,), daemon=True).start()

    def session(self, raw):
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as c:
                c.settimeout(10)
                c.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
                f = c.makefile("rb")
                for line in f:
                    tag = line.split(b" ", 1)[0]
                    c.sendall(tag + b" NO not here\r\n")
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.sock.close()


class SniTest(unittest.TestCase):
    """SNI is sent with a host name (so virtual hosts pick the right
    certificate), never with an IP address (RFC 6066 3)."""

    def setUp(self):
        self.dir = harness.make_tmpdir("sni")
        self.srv = SniServer(self.dir)
        self.addCleanup(self.srv.close)

    def connect(self, host):
        cfg = harness.Config(self.dir)
        cfg.add_connection(name="main", host=host, port=self.srv.port, secure=True,
                           username="u", password="p", tls_verify=False)
        r = harness.run_cli(cfg.write(), "test-connection")
        self.assertNotEqual(r.rc, 0, r.describe())      # the server says NO to all
        return r

    def test_sni_carries_the_host_name(self):
        self.connect("localhost")
        harness.wait_until(lambda: self.srv.names, timeout=5, what="a TLS handshake")
        self.assertEqual(self.srv.names[0], "localhost")

    def test_no_sni_for_an_ip_address(self):
        self.connect("127.0.0.1")
        self.assertEqual(self.srv.names, [None])
