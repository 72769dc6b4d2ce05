"""TLS settings of a connection against a Dovecot that accepts old protocol
versions and a small finite-field DH group: min/max_tls_version (TLSv1 and
TLSv1.1 must really work when asked for) and min_dh_size."""

import os
import re
import signal
import subprocess
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
