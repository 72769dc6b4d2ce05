"""Packaging: `make install` / `make uninstall`, the systemd unit, the man pages.

- `make install DESTDIR=<tmp> PREFIX=/usr` produces exactly the expected tree
  (programs 0755, man pages, unit, sysusers.d file, example configuration
  0644) and the installed programs run (`--version`, `--help`).
- The unit's ExecStartPre/ExecStart/ExecReload name the installed imaphookd
  (for PREFIX=/usr and for another PREFIX), with the compiled-in default
  configuration path, and run as the user the sysusers.d file creates.
- `systemd-analyze verify` of the installed unit is clean and
  `systemd-analyze security --offline=yes` rates it 2.0 or better (skipped
  without systemd-analyze; systemd >= 250 for the rating).
- The man pages lint clean: `mandoc -T lint -W warning`, `groff -ww` and
  `man --warnings -l` (each skipped when the tool is missing; `make deps`
  installs mandoc), are plain ASCII, and document every action and action
  option of `imaphook --help`, every option of `imaphookd --help` and every
  configuration key the loader accepts (common/config.c).
- An existing imaphook.conf survives `make install`; `make uninstall` removes
  what install put and nothing else.

The release build (`make all`, a dependency of install) is made in build/ if
it is not up to date. The container image is not built here (too slow); see
README.md, "Deployment".
"""

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from . import harness

TOP = harness.TOP

# Variables of the install rule a caller's environment must not change here.
_SCRUB = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "BINDIR", "SBINDIR",
          "MANDIR", "SYSCONFDIR", "UNITDIR", "SYSUSERSDIR", "INSTALL", "DESTDIR", "PREFIX")


def make(*args, timeout=1200):
    """Runs make in the repository (no sanitizer check: make is not ours)."""
    env = {k: None for k in _SCRUB}
    return harness.run_program(["make", "--no-print-directory", "-C", TOP] + list(args),
                               timeout=timeout, env=env, check_sanitizers_=False)


def pkg_config_var(var, default):
    """The variable of pkg-config's systemd module, or default (what the
    Makefile does for PREFIX=/usr)."""
    if shutil.which("pkg-config"):
        p = subprocess.run(["pkg-config", "--variable=" + var, "systemd"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
    return default


def tree(root):
    """{relative path: mode} of every file and directory below root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = os.lstat(path).st_mode
    return out


def unit_settings(path):
    """[(key, value)] of the unit file's assignments, in order."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and line[0] not in "#;[" and "=" in line:
            key, value = line.split("=", 1)
            out.append((key.strip(), value.strip()))
    return out


def exec_program(value):
    """The program of an Exec*= value, without its special prefixes."""
    return value.split()[0].lstrip("-@:+!")


class PackagingTestCase(harness.IntegrationTestCase):
    destdir = None
    install_result = None

    @classmethod
    def setUpClass(cls):
        cls.destdir = harness.make_tmpdir("install")
        cls.install_result = make("install", "DESTDIR=%s" % cls.destdir, "PREFIX=/usr")
        cls.unitdir = pkg_config_var("systemdsystemunitdir", "/lib/systemd/system")
        cls.sysusersdir = pkg_config_var("sysusersdir", "/usr/lib/sysusers.d")

    def setUp(self):
        self.assertExit(self.install_result, 0, "make install")

    def path(self, installed):
        """The DESTDIR path of an installed absolute path."""
        return Path(str(self.destdir) + installed)

    def expected_files(self):
        return {
            "/usr/sbin/imaphookd": 0o755,
            "/usr/bin/imaphook": 0o755,
            "/usr/share/man/man1/imaphook.1": 0o644,
            "/usr/share/man/man5/imaphook.conf.5": 0o644,
            "/usr/share/man/man8/imaphookd.8": 0o644,
            self.unitdir + "/imaphookd.service": 0o644,
            self.sysusersdir + "/imaphook.conf": 0o644,
            "/etc/imaphook/imaphook.conf.example": 0o644,
        }

    def installed_unit(self):
        return self.path(self.unitdir + "/imaphookd.service")

    def man_pages(self):
        return [self.path("/usr/share/man/man1/imaphook.1"),
                self.path("/usr/share/man/man5/imaphook.conf.5"),
                self.path("/usr/share/man/man8/imaphookd.8")]

    def run_installed(self, name, *args):
        return harness.run_program([self.path(name)] + list(args), check_sanitizers_=False)


class TestInstallTree(PackagingTestCase):
    def test_exact_tree(self):
        expected = {p.lstrip("/"): m for p, m in self.expected_files().items()}
        dirs = set()
        for p in expected:
            parent = Path(p).parent
            while str(parent) != ".":
                dirs.add(str(parent))
                parent = parent.parent
        got = tree(self.destdir)
        got_files = {p: m for p, m in got.items() if stat.S_ISREG(m)}
        got_dirs = {p for p, m in got.items() if stat.S_ISDIR(m)}
        others = {p for p, m in got.items() if not stat.S_ISREG(m) and not stat.S_ISDIR(m)}
        self.assertEqual(sorted(got_files), sorted(expected), "installed files")
        self.assertEqual(sorted(got_dirs), sorted(dirs), "installed directories")
        self.assertEqual(others, set(), "neither files nor directories")
        for p, mode in expected.items():
            self.assertEqual(stat.S_IMODE(got_files[p]), mode, "mode of %s" % p)

    def test_programs_run_from_destdir(self):
        versions = {}
        for name in ("/usr/sbin/imaphookd", "/usr/bin/imaphook"):
            r = self.run_installed(name, "--version")
            self.assertExit(r, 0)
            m = re.fullmatch(r"(imaphookd?) (\d+\.\d+\.\d+\S*)\n", r.text)
            self.assertTrue(m, "%s --version printed %r" % (name, r.text))
            self.assertEqual(m.group(1), os.path.basename(name))
            versions[name] = m.group(2)
            self.assertExit(self.run_installed(name, "--help"), 0)
        self.assertEqual(len(set(versions.values())), 1, versions)

    def test_example_config_is_the_repository_one(self):
        self.assertEqual(self.path("/etc/imaphook/imaphook.conf.example").read_bytes(),
                         (TOP / "config" / "imaphook.conf.example").read_bytes())


class TestUnit(PackagingTestCase):
    def test_exec_lines_name_the_installed_daemon(self):
        settings = unit_settings(self.installed_unit())
        execs = [(k, v) for k, v in settings if k.startswith("Exec")]
        daemon_lines = [(k, v) for k, v in execs if "imaphookd" in exec_program(v)]
        self.assertIn("ExecStart", [k for k, v in daemon_lines])
        self.assertIn("ExecStartPre", [k for k, v in daemon_lines])
        for key, value in daemon_lines:
            self.assertEqual(exec_program(value), "/usr/sbin/imaphookd", "%s=%s" % (key, value))
            self.assertIn("-c /etc/imaphook/imaphook.conf", value, "%s=%s" % (key, value))
        self.assertTrue(os.access(self.path("/usr/sbin/imaphookd"), os.X_OK))
        pre = [v for k, v in daemon_lines if k == "ExecStartPre"]
        self.assertTrue(all("--check-config" in v for v in pre), pre)
        reload_ = [v for k, v in execs if k == "ExecReload"]
        self.assertIn("/bin/kill -HUP $MAINPID", reload_)
        # the path the unit passes is the one the daemon uses by default
        r = self.run_installed("/usr/sbin/imaphookd", "--help")
        self.assertIn("/etc/imaphook/imaphook.conf", r.text)

    def test_unit_settings(self):
        s = dict(unit_settings(self.installed_unit()))
        self.assertEqual(s.get("Type"), "notify")
        self.assertTrue(s.get("WatchdogSec"), "WatchdogSec")
        self.assertEqual(s.get("Restart"), "on-failure")
        self.assertEqual(s.get("StateDirectory"), "imaphook")
        self.assertEqual(s.get("ConfigurationDirectory"), "imaphook")
        self.assertEqual(s.get("CapabilityBoundingSet"), "")
        # StateDirectory=imaphook is the configuration's default state_dir
        example = self.path("/etc/imaphook/imaphook.conf.example").read_text()
        self.assertRegex(example, r'(?m)^state_dir = "/var/lib/imaphook";')
        # the unit's user is the one sysusers.d creates
        sysusers = self.path(self.sysusersdir + "/imaphook.conf").read_text()
        users = [l.split()[1] for l in sysusers.splitlines() if l.startswith("u ")]
        self.assertEqual(users, [s.get("User")])

    def test_other_prefix(self):
        d = harness.make_tmpdir("install-prefix")
        self.assertExit(make("install", "DESTDIR=%s" % d, "PREFIX=/opt/imaphook"), 0)
        unit = Path(str(d) + "/opt/imaphook/lib/systemd/system/imaphookd.service")
        progs = {exec_program(v) for k, v in unit_settings(unit)
                 if k.startswith("Exec") and "imaphookd" in exec_program(v)}
        self.assertEqual(progs, {"/opt/imaphook/sbin/imaphookd"})
        for p in ("/opt/imaphook/sbin/imaphookd", "/opt/imaphook/bin/imaphook",
                  "/opt/imaphook/share/man/man8/imaphookd.8",
                  "/opt/imaphook/lib/sysusers.d/imaphook.conf",
                  "/etc/imaphook/imaphook.conf.example"):
            self.assertTrue(os.path.isfile(str(d) + p), p)

    def verifiable_copy(self):
        """The installed unit with its imaphookd paths pointing into DESTDIR
        (systemd-analyze checks that the programs exist)."""
        d = harness.make_tmpdir("unit")
        text = self.installed_unit().read_text().replace(
            "/usr/sbin/imaphookd", str(self.path("/usr/sbin/imaphookd")))
        copy = d / "imaphookd.service"
        copy.write_text(text)
        return copy

    def test_systemd_analyze_verify(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        unit = self.verifiable_copy()
        args = ["systemd-analyze", "verify"]
        if not shutil.which("man"):
            args.append("--man=no")
        r = harness.run_program(args + [unit], check_sanitizers_=False,
                                env={"MANPATH": self.path("/usr/share/man"),
                                     "SYSTEMD_LOG_LEVEL": None})
        ours = [l for l in r.stderr.splitlines() + r.text.splitlines() if "imaphook" in l]
        self.assertEqual(ours, [], r.describe())
        self.assertExit(r, 0)

    def test_security_exposure(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        v = subprocess.run(["systemd-analyze", "--version"], stdout=subprocess.PIPE, text=True)
        m = re.search(r"systemd (\d+)", v.stdout)
        if not m or int(m.group(1)) < 250:
            self.skipTest("systemd-analyze security --offline needs systemd 250")
        r = harness.run_program(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                                 self.verifiable_copy()], check_sanitizers_=False)
        m = re.search(r"Overall exposure level for imaphookd\.service: (\d+\.\d+) (\w+)",
                      r.text + r.stderr)
        self.assertTrue(m, r.describe())
        self.assertLessEqual(float(m.group(1)), 2.0, r.describe())
        self.assertIn(m.group(2), ("OK", "SAFE", "PERFECT"))

    def test_sysusers_file(self):
        if not shutil.which("systemd-sysusers") or os.geteuid() != 0:
            self.skipTest("needs systemd-sysusers and root")
        root = harness.make_tmpdir("sysroot")
        r = harness.run_program(["systemd-sysusers", "--dry-run", "--root=%s" % root,
                                 self.path(self.sysusersdir + "/imaphook.conf")],
                                check_sanitizers_=False)
        self.assertExit(r, 0)
        self.assertRegex(r.stderr + r.text, r"Creating user '?imaphook'?")


class TestManPages(PackagingTestCase):
    def test_mdoc_and_ascii(self):
        for page in self.man_pages():
            text = page.read_text(encoding="ascii")        # non-ASCII: use \(:u etc.
            name, section = page.name.rsplit(".", 1)
            self.assertRegex(text, r"(?m)^\.Dd \S")
            self.assertRegex(text, r"(?m)^\.Dt %s %s$" % (re.escape(name.upper()), section))
            self.assertRegex(text, r"(?m)^\.Os")
            for sh in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
                self.assertRegex(text, r"(?m)^\.Sh %s$" % sh, page.name)

    def test_mandoc_lint(self):
        if not shutil.which("mandoc"):
            self.skipTest("mandoc is not installed (make deps installs it)")
        for page in self.man_pages():
            r = harness.run_program(["mandoc", "-T", "lint", "-W", "warning", page],
                                    check_sanitizers_=False)
            self.assertEqual((r.rc, r.text + r.stderr), (0, ""), r.describe())

    def test_groff_and_man(self):
        ran = False
        for page in self.man_pages():
            if shutil.which("groff"):
                ran = True
                r = harness.run_program(["groff", "-t", "-mandoc", "-ww", "-z", "-Tutf8", page],
                                        check_sanitizers_=False)
                self.assertEqual((r.rc, r.stderr), (0, ""), r.describe())
            if shutil.which("man"):
                ran = True
                r = harness.run_program(["man", "--warnings", "-l", page], check_sanitizers_=False,
                                        env={"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
                self.assertEqual((r.rc, r.stderr), (0, ""), r.describe())
                self.assertIn(b"SYNOPSIS", r.stdout)
        if not ran:
            self.skipTest("neither groff nor man is installed")

    def test_imaphook_1_documents_every_action_and_option(self):
        page = self.path("/usr/share/man/man1/imaphook.1").read_text()
        documented_ss = set()
        for line in re.findall(r"(?m)^\.Ss (.+)$", page):
            documented_ss.update(w for w in re.split(r"[\s,]+", line) if w)
        flags = set(re.findall(r"\bFl (-[A-Za-z][-A-Za-z]*)", page))
        r = self.run_installed("/usr/bin/imaphook", "--help")
        actions = re.findall(r"(?m)^  ([a-z][a-z-]+)  ", r.text)
        self.assertGreaterEqual(len(actions), 15, r.describe())
        for action in actions:
            self.assertIn(action, documented_ss, "imaphook(1) has no section for " + action)
            h = self.run_installed("/usr/bin/imaphook", action, "--help")
            self.assertExit(h, 0)
            options = re.findall(r"(?m)^  --([a-z][a-z-]*)", h.text)
            options += re.findall(r"\[--(output) FILE\]", h.text)
            for opt in options:
                self.assertIn("-" + opt, flags,
                              "imaphook(1) does not document %s --%s" % (action, opt))
        for opt in ("-connection", "-seq", "-output", "-version", "-help", "c"):
            self.assertIn(opt, flags | set(re.findall(r"\bFl ([a-z])\b", page)), opt)

    def test_imaphookd_8_documents_every_option(self):
        page = self.path("/usr/share/man/man8/imaphookd.8").read_text()
        r = self.run_installed("/usr/sbin/imaphookd", "--help")
        options = re.findall(r"(?m)^  (-{1,2}[a-z][-a-z]*)", r.text)
        self.assertIn("--check-config", options, r.describe())
        for opt in options:
            self.assertRegex(page, r"\bFl %s\b" % re.escape(opt[1:]), "imaphookd(8): " + opt)
        for word in ("SIGHUP", "SIGTERM", "READY=1", "STOPPING=1", "WATCHDOG=1", "EXIT STATUS"):
            self.assertIn(word, page)

    def test_imaphook_conf_5_documents_every_key(self):
        page = self.path("/usr/share/man/man5/imaphook.conf.5").read_text()
        documented = set(re.findall(r"(?m)^\.It Cm ([a-z0-9_]+)(?= |$)", page))
        source = (TOP / "common" / "config.c").read_text()
        keys = set()
        for body in re.findall(r"static const char \*const \w+_keys\[\] = \{(.*?)\};", source, re.S):
            keys.update(re.findall(r'"([a-z0-9_]+)"', body))
        self.assertGreaterEqual(len(keys), 30, "no key tables found in common/config.c")
        self.assertEqual(sorted(keys - documented), [], "keys imaphook.conf(5) does not document")


class TestInstallUninstall(harness.IntegrationTestCase):
    def test_existing_config_kept_and_uninstall(self):
        d = harness.make_tmpdir("install-existing")
        conf = d / "etc" / "imaphook" / "imaphook.conf"
        conf.parent.mkdir(parents=True)
        harness.write_file(conf, "# mine\n", mode=0o600)
        self.assertExit(make("install", "DESTDIR=%s" % d, "PREFIX=/usr"), 0)
        self.assertEqual(conf.read_text(), "# mine\n")
        self.assertEqual(stat.S_IMODE(conf.stat().st_mode), 0o600)
        self.assertTrue((d / "etc" / "imaphook" / "imaphook.conf.example").is_file())
        self.assertExit(make("install", "DESTDIR=%s" % d, "PREFIX=/usr"), 0)   # again
        self.assertEqual(conf.read_text(), "# mine\n")
        self.assertExit(make("uninstall", "DESTDIR=%s" % d, "PREFIX=/usr"), 0)
        left = sorted(p for p, m in tree(d).items() if not stat.S_ISDIR(m))
        self.assertEqual(left, ["etc/imaphook/imaphook.conf"])
