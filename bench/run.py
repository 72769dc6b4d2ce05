#!/usr/bin/env python3
"""make bench: imaphook side by side with an ImapFlow poller (bench/peer) and
with the machine's limit, on one private Dovecot and one webhook receiver.

    python3 bench/run.py            (make bench builds what it needs first)

Environment:
    BENCH_QUICK=1      a short smoke run (small data, short windows, 1 run)
    BENCH_RUNS=N       repetitions of every measurement (default 3; medians)
    BENCH_ONLY=a,b     only these scenarios: limits, burst, idle, scale, latency
    BENCH_TOOLS=a,b    only these tools: imaphook, peer
    BENCH_DIR=DIR      work directory (default: a new one under /tmp, removed
                       at the end unless BENCH_KEEP=1)
    BENCH_IDLE_SECONDS, BENCH_LAT_SECONDS   measurement windows (60, 60)

What it does (see bench/README.md for the scenarios and the results):
  1. starts Dovecot with tests/fixtures/start-dovecot.sh (implicit TLS and
     plain ports; bench tuning appended to its dovecot.conf, then reloaded),
     writes every account's Maildir directly (chown nobody:nogroup) and warms
     Dovecot's indexes and caches with one untimed pass of bench/imapfetch;
  2. starts bench/recv (the webhook receiver: keep-alive, timestamps);
  3. measures the limits (bench/imapfetch = Dovecot alone answering the same
     UID FETCH; wrk + bench/post.lua = the receiver alone), then runs every
     scenario for build/imaphookd and for node bench/peer/peer.mjs,
     alternating, BENCH_RUNS times;
  4. writes bench/results/<time>/results.json (every run, raw) and
     results.md (the tables, medians), and prints results.md.

Every figure carries the machine's load during its runs: the CPU that
processes other than the benchmark's own (tool, Dovecot, receiver, load
generators, this script) used, in cores, from /proc/stat minus /proc/PID/stat.
"""

import base64
import datetime
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
BUILD = TOP / "build"
IMAPHOOKD = BUILD / "imaphookd"
RECV = BUILD / "bench" / "recv"
IMAPFETCH = BUILD / "bench" / "imapfetch"
PEER = TOP / "bench" / "peer" / "peer.mjs"
FIXTURES = TOP / "tests" / "fixtures"

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("BENCH_RUNS") or (1 if QUICK else 3))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
TOOLS = [t for t in ("imaphook", "peer")
         if not os.environ.get("BENCH_TOOLS") or t in os.environ["BENCH_TOOLS"].split(",")]
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS") or (10 if QUICK else 60))
LAT_SECONDS = float(os.environ.get("BENCH_LAT_SECONDS") or (10 if QUICK else 60))
LAT_POLL_SECONDS = LAT_SECONDS / 2
LAT_WAIT = 6.0              # after the last append, at most
WRK_SECONDS = 3 if QUICK else 5

PASSWORD = "bench-pw"
SECRET = "whsec_" + base64.b64encode(b"imaphook-bench-secret-key-32-byt").decode()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# Scenario sizes.
if QUICK:
    BURST_ACCOUNTS, BURST_MAILBOXES, BURST_PER_MAILBOX = 4, 5, 100
    IDLE_ACCOUNTS, IDLE_MAILBOXES = 100, 10
    SCALE_BIG_ACCOUNTS, SCALE_BIG_MAILBOXES = 100, 20
else:
    BURST_ACCOUNTS, BURST_MAILBOXES, BURST_PER_MAILBOX = 4, 5, 1000
    IDLE_ACCOUNTS, IDLE_MAILBOXES = 100, 10
    SCALE_BIG_ACCOUNTS, SCALE_BIG_MAILBOXES = 100, 100
BURST_TOTAL = BURST_ACCOUNTS * BURST_MAILBOXES * BURST_PER_MAILBOX
LAT_MAILBOXES = 10
LAT_PERIOD = 0.2
MAX_CONNECTIONS = 2         # imaphook's default, per account
MAX_CONTENT = 4 * 1024 * 1024


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- /proc

def proc_stat(pid):
    """(utime+stime, cutime+cstime, session) in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()
    # rest[0] = state (field 3); utime is field 14 -> rest[11]
    return ((int(rest[11]) + int(rest[12])) / CLK_TCK,
            (int(rest[13]) + int(rest[14])) / CLK_TCK, int(rest[3]))


def child_of(pid):
    """The first child process of pid, or None."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = f.read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def proc_cpu(pid):
    s = proc_stat(pid)
    return s[0] if s else None


def proc_mem(pid):
    """{'VmRSS': KiB, 'VmHWM': KiB, 'RssAnon': KiB} of a live process
    (RssAnon: its private memory, without the shared libraries' pages)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def session_cpu(sid):
    """CPU seconds of every process of session sid (Dovecot's master is a
    session leader), with the master's reaped children."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        s = proc_stat(int(name))
        if s is None or s[2] != sid:
            continue
        total += s[0]
        if int(name) == sid:
            total += s[1]
    return total


def system_busy():
    """CPU seconds the whole machine spent busy (not idle, iowait, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = v[:7]
    return (user + nice + system + irq + softirq) / CLK_TCK


class LoadMeter:
    """Measures the CPU that processes other than ours used meanwhile."""

    def __init__(self, bench):
        self.bench = bench
        self.t0 = time.monotonic()
        self.busy0 = system_busy()
        self.ours0 = bench.our_cpu()
        self.load0 = os.getloadavg()[0]

    def other_cores(self):
        dt = time.monotonic() - self.t0
        if dt <= 0:
            return None
        other = (system_busy() - self.busy0) - (self.bench.our_cpu() - self.ours0)
        return max(0.0, other / dt)


# ---------------------------------------------------------------- messages

FIRST = ["Anna", "Bob", "Carla", "Dieter", "Émilie", "Fritz", "Günther", "Hanna", "Ivan",
         "Jürgen", "Kateřina", "Lars", "Maëlle", "Nils", "Olga", "Pedro", "Quentin", "Rosa"]
LAST = ["Müller", "Smith", "García", "Dubois", "Kowalski", "Andersson", "Rossi", "Novák",
        "Yılmaz", "O'Brien", "Nakamura", "Schmidt"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "kunden.example.de"]
SUBJECTS = ["Invoice {n} for order {m}", "Re: Meeting on Thursday at {h}:00",
            "Grüße aus München – Angebot {n}", "Your ticket #{n} has been updated",
            "Fwd: quarterly report Q{q}", "会议安排 {n}", "Re: Re: delivery {m} delayed",
            "Newsletter {q}/2026: what is new", "Password reset requested",
            "Élection du comité – ordre du jour {n}"]
WORDS = ("the quick brown fox jumps over lazy dog invoice payment order delivery meeting "
         "agenda report quarter customer support ticket update please find attached regards "
         "thanks best schedule tomorrow project release review budget approval").split()
ATTACHMENT = base64.encodebytes(random.Random(7).randbytes(30 * 1024)).decode()


def rfc2047(s):
    if all(ord(c) < 128 for c in s):
        return s
    return "=?UTF-8?B?%s?=" % base64.b64encode(s.encode()).decode()


def address(rnd):
    first, last = rnd.choice(FIRST), rnd.choice(LAST)
    addr = "%s.%s@%s" % (first.encode("ascii", "ignore").decode().lower() or "x",
                         last.encode("ascii", "ignore").decode().lower().replace("'", ""),
                         rnd.choice(DOMAINS))
    return '"%s" <%s>' % (rfc2047(first + " " + last), addr) if rnd.random() < 0.9 else addr


def paragraph(rnd, words):
    return " ".join(rnd.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_message(rnd, msgid, when):
    """An RFC 5322 message (bytes, LF line ends as Maildir stores them):
    60% text/plain, 30% multipart/alternative, 10% with a 30 KiB PDF."""
    n, m = rnd.randrange(1000, 99999), rnd.randrange(100, 999)
    subject = rnd.choice(SUBJECTS).format(n=n, m=m, h=rnd.randrange(8, 18), q=rnd.randrange(1, 5))
    to = ", ".join(address(rnd) for _ in range(rnd.choice([1, 1, 2, 3])))
    date = email_date(when)
    h = ["Return-Path: <bounce-%d@example.com>" % n,
         "Received: from mx.example.com (mx.example.com [192.0.2.1])\n\tby mail.example.org "
         "(Postfix) with ESMTPS id %X\n\tfor <support@example.org>; %s" % (n * 7919, date),
         "Date: " + date, "From: " + address(rnd), "To: " + to]
    if rnd.random() < 0.3:
        h.append("Cc: " + address(rnd))
    h += ["Subject: " + rfc2047(subject), "Message-ID: " + msgid]
    if rnd.random() < 0.3:
        h.append("In-Reply-To: <prev-%d@example.com>" % n)
    h.append("MIME-Version: 1.0")
    text = "\n\n".join(paragraph(rnd, rnd.randrange(30, 60)) for _ in range(rnd.randrange(2, 5)))
    kind = rnd.random()
    if kind < 0.6:
        h += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        body = text + "\n"
    else:
        html = "<html><body>%s</body></html>" % "".join(
            "<p>%s</p>" % p for p in text.split("\n\n"))
        alt = ("--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
               "%s\n--alt\nContent-Type: text/html; charset=utf-8\n\n%s\n--alt--\n" % (text, html))
        if kind < 0.9:
            h.append('Content-Type: multipart/alternative; boundary="alt"')
            body = alt
        else:
            h.append('Content-Type: multipart/mixed; boundary="mix"')
            body = ('--mix\nContent-Type: multipart/alternative; boundary="alt"\n\n%s'
                    '--mix\nContent-Type: application/pdf; name="report-%d.pdf"\n'
                    'Content-Disposition: attachment; filename="report-%d.pdf"\n'
                    'Content-Transfer-Encoding: base64\n\n%s--mix--\n' % (alt, n, n, ATTACHMENT))
    return ("\n".join(h) + "\n\n" + body).encode()


def email_date(when):
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))


def write_maildir(home, folder, messages, t0):
    """Writes messages into Maildir folder (None = INBOX) of home, as Dovecot
    delivers them (cur/, S= and W= in the name, mtime = internal date)."""
    d = home if folder is None else home / ("." + folder)
    for sub in ("cur", "new", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    if folder is not None:
        (d / "maildirfolder").touch()
    for i, msg in enumerate(messages):
        when = t0 + i
        vsize = len(msg) + msg.count(b"\n")
        flags = "S" if i % 3 == 0 else ""
        path = d / "cur" / ("%d.M%dP%d.bench,S=%d,W=%d:2,%s" % (when, i, os.getpid(), len(msg),
                                                                   vsize, flags))
        path.write_bytes(msg)
        os.utime(path, (when, when))


# ---------------------------------------------------------------- configs

def q(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def imaphook_config(path, state_dir, api_port, dovecot, accounts, url, interval=60,
                    mode="poll", fetch_content=False, start_from="now",
                    max_connections=MAX_CONNECTIONS):
    """accounts: [(user, [mailbox, ...])]; triggers are named USER-MAILBOX."""
    out = ["state_dir = %s;" % q(state_dir), 'log_level = "info";',
           "api = { listen = %s; };" % q("127.0.0.1:%d" % api_port), "connections = ("]
    out.append(",\n".join(
        "  { name = %s; host = \"127.0.0.1\"; port = %d; secure = true; username = %s; "
        "password = %s; ca_file = %s; max_connections = %d; }"
        % (q(u), dovecot.port_tls, q(u), q(PASSWORD), q(dovecot.dir / "cert.pem"), max_connections)
        for u, _ in accounts))
    out.append(");")
    out.append("webhooks = ( { name = \"bench\"; url = %s; secret = %s; } );" % (q(url), q(SECRET)))
    out.append("triggers = (")
    out.append(",\n".join(
        "  { name = %s; connection = %s; mailbox = %s; interval = %d; mode = %s; "
        "fetch_content = %s; start_from = %s; webhooks = [ \"bench\" ]; }"
        % (q("%s-%s" % (u, m)), q(u), q(m), interval, q(mode),
           "true" if fetch_content else "false", q(start_from))
        for u, mbs in accounts for m in mbs))
    out.append(");")
    Path(path).write_text("\n".join(out) + "\n")
    os.chmod(path, 0o600)


def peer_config(path, stats_file, dovecot, accounts, url, interval=60, mode="poll",
                fetch_content=False, start_from="now"):
    Path(path).write_text(json.dumps({
        "host": "127.0.0.1", "port": dovecot.port_tls, "secure": True,
        "ca": str(dovecot.dir / "cert.pem"),
        "accounts": [{"name": u, "user": u, "pass": PASSWORD, "mailboxes": mbs}
                     for u, mbs in accounts],
        "webhook": url, "secret": SECRET, "interval": interval, "mode": mode,
        "fetchContent": fetch_content, "maxContentSize": MAX_CONTENT,
        "startFrom": start_from, "maxInflight": 32, "statsFile": str(stats_file)}))


# ---------------------------------------------------------------- services

class Dovecot:
    """The project fixture, tuned for hundreds of connections: login
    processes in high-performance mode (service_count = 0: they proxy TLS for
    many clients each) and no per-user connection cap below ours."""

    TUNING = """
# --- appended by bench/run.py (make bench) ---
service imap-login {
  service_count = 0
  process_min_avail = 2
  client_limit = 5000
}
service imap {
  process_limit = 5000
}
default_client_limit = 10000
mail_max_userip_connections = 5000
"""

    def __init__(self, directory, users):
        self.dir = directory
        self.port_tls, self.port_plain = free_port(), free_port()
        log("starting Dovecot in %s (TLS port %d)" % (directory, self.port_tls))
        out = subprocess.run([str(FIXTURES / "start-dovecot.sh"), str(directory),
                              str(self.port_tls), str(self.port_plain)] +
                             ["%s:%s" % (u, PASSWORD) for u in users],
                             check=True, capture_output=True, text=True).stdout
        self.pid = int(re.search(r"PID (\d+)", out).group(1))
        with open(directory / "dovecot.conf", "a") as f:
            f.write(self.TUNING)
        subprocess.run(["doveadm", "-c", str(directory / "dovecot.conf"), "reload"], check=True)
        time.sleep(1.0)

    def cpu(self):
        return session_cpu(self.pid)

    def stop(self):
        subprocess.run([str(FIXTURES / "stop-dovecot.sh"), str(self.dir)],
                       capture_output=True)


class Receiver:
    def __init__(self, directory):
        pf = directory / "recv.port"
        self.proc = subprocess.Popen([str(RECV), "--listen", "127.0.0.1:0", "--port-file", str(pf)])
        self.port = int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 10, "recv"))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _get(self, target):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", target)
            return c.getresponse().read().decode("utf-8", "replace")
        finally:
            c.close()

    def stats(self):
        out = {}
        for line in self._get("/stats").splitlines():
            p, n, first, last = line.rsplit(" ", 3)
            out[p] = (int(n), int(first) / 1e6, int(last) / 1e6)
        return out

    def count(self, path):
        return self.stats().get(path, (0, None, None))[0]

    def log(self, path):
        rows = []
        for line in self._get("/log?" + path).splitlines():
            t, mid = line.split(" ", 1)
            rows.append((int(t) / 1e6, mid))
        return rows

    def reset(self):
        self._get("/reset")

    def cpu(self):
        return proc_cpu(self.proc.pid) or 0.0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Tool:
    """A running imaphookd or peer, with its counters."""

    def __init__(self, bench, kind, run_dir, accounts, url, state_dir=None, wrap=(), **kw):
        self.kind = kind
        self.dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.stderr = open(run_dir / ("%s.log" % kind), "wb")
        if kind == "imaphook":
            self.api_port = free_port()
            conf = run_dir / "imaphook.conf"
            self.state_dir = Path(state_dir or run_dir / "state")
            imaphook_config(conf, self.state_dir, self.api_port, bench.dovecot, accounts, url,
                            **kw)
            argv = list(wrap) + [str(IMAPHOOKD), "-c", str(conf)]
        else:
            self.stats_file = run_dir / "peer-stats.json"
            conf = run_dir / "peer.json"
            peer_config(conf, self.stats_file, bench.dovecot, accounts, url, **kw)
            argv = ["node", str(PEER), str(conf)]
        self.t0 = time.time()
        self.proc = subprocess.Popen(argv, stdout=self.stderr, stderr=self.stderr,
                                     cwd=str(run_dir))
        self.pid = self.proc.pid
        if wrap:
            # strace/perf run the program as their child: measure and stop that
            self.pid = wait_for(lambda: child_of(self.proc.pid), 10, "the wrapped program", 0.01)
        self.wrapped = bool(wrap)
        bench.live.append(self)

    def alive(self):
        return self.proc.poll() is None

    def check_alive(self):
        if not self.alive():
            raise RuntimeError("%s exited with %s; see %s" % (self.kind, self.proc.returncode,
                                                             self.stderr.name))

    def cpu(self):
        return proc_cpu(self.pid)

    def mem(self):
        return proc_mem(self.pid)

    def _http(self, target):
        c = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)
        try:
            c.request("GET", target)
            return c.getresponse().read().decode()
        finally:
            c.close()

    def metrics(self):
        return self._http("/metrics")

    def counters(self):
        """{'polls': completed polls, 'first': triggers whose first poll
        succeeded, 'watching': triggers pushed by IDLE/NOTIFY}."""
        if self.kind == "imaphook":
            try:
                text = self.metrics()
            except OSError:         # not listening yet
                return {"polls": 0, "first": 0, "watching": 0}
            m = re.search(r"^imaphook_poll_duration_seconds_count (\d+)", text, re.M)
            first = len(re.findall(r'^imaphook_polls_total\{trigger="[^"]*",result="ok"\} [1-9]',
                                   text, re.M))
            watching = len(re.findall(r'^imaphook_trigger_push\{trigger="[^"]*",method="'
                                      r'(?:idle|notify)"\} 1', text, re.M))
            return {"polls": int(m.group(1)) if m else 0, "first": first, "watching": watching}
        try:
            st = json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {"polls": 0, "first": 0, "watching": 0}
        return {"polls": st["polls"], "first": st["firstPollsDone"], "watching": st["idleWatching"]}

    def stop(self):
        if self.alive():
            if self.wrapped:
                try:
                    os.kill(self.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


# ---------------------------------------------------------------- the benchmark

class Bench:
    def __init__(self):
        self.keep = os.environ.get("BENCH_KEEP") == "1" or bool(os.environ.get("BENCH_DIR"))
        if os.environ.get("BENCH_DIR"):
            self.dir = Path(os.environ["BENCH_DIR"]).resolve()
            self.dir.mkdir(parents=True, exist_ok=True)
            if any(self.dir.iterdir()):
                sys.exit("bench: BENCH_DIR %s is not empty" % self.dir)
        else:
            self.dir = Path(tempfile.mkdtemp(prefix="imaphook-bench-"))
        os.chmod(self.dir, 0o711)
        self.live = []
        self.helpers = []
        self.results = {"machine": machine(self.dir), "quick": QUICK, "runs": RUNS,
                        "started": datetime.datetime.now().isoformat(timespec="seconds"),
                        "scenarios": {}}
        self.dovecot = None
        self.recv = None
        self.lat_idlers = []

    # CPU of everything the benchmark runs (for the "other load" column)
    def our_cpu(self):
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = time.process_time() + ru.ru_utime + ru.ru_stime
        if self.dovecot:
            total += self.dovecot.cpu()
        if self.recv:
            total += self.recv.cpu()
        for t in self.live + self.helpers:
            if t.proc.poll() is None:
                total += proc_cpu(t.proc.pid) or 0.0
        return total

    def cleanup(self):
        for t in self.live:
            try:
                t.stop()
            except Exception:
                pass
        for h in self.helpers:
            if h.proc.poll() is None:
                h.proc.kill()
        if self.recv:
            self.recv.stop()
        if self.dovecot:
            self.dovecot.stop()
        for mnt in getattr(self, "mounted", []):
            subprocess.run(["umount", str(mnt)], capture_output=True)
        if getattr(self, "shm", None):
            shutil.rmtree(self.shm, ignore_errors=True)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log("kept %s" % self.dir)

    # ------------------------------------------------------------ set-up

    def accounts(self):
        burst = [("b%02d" % a, ["Burst%d" % m for m in range(1, BURST_MAILBOXES + 1)])
                 for a in range(1, BURST_ACCOUNTS + 1)]
        idle = [("i%03d" % a, ["Box%02d" % m for m in range(1, IDLE_MAILBOXES + 1)])
                for a in range(1, IDLE_ACCOUNTS + 1)]
        big = [("s%03d" % a, ["M%03d" % m for m in range(1, SCALE_BIG_MAILBOXES + 1)])
               for a in range(1, SCALE_BIG_ACCOUNTS + 1)]
        lat = [("l01", ["Lat%02d" % m for m in range(1, LAT_MAILBOXES + 1)])]
        one = [("one", ["F%04d" % m for m in range(1, 1001)])]
        return burst, idle, big, lat, one

    def setup(self):
        (self.burst_accts, self.idle_accts, self.big_accts, self.lat_accts,
         self.one_accts) = self.accounts()
        empty = self.big_accts + self.lat_accts + self.one_accts
        users = [u for u, _ in self.burst_accts + self.idle_accts + empty]
        self.dovecot = Dovecot(self.dir / "dovecot", users)
        mail = self.dir / "dovecot" / "mail"
        t = time.monotonic()
        rnd = random.Random(42)
        base = int(time.time()) - 86400 * 30
        for u, mbs in self.burst_accts:
            for mb in mbs:
                msgs = [make_message(rnd, "<bench-%s-%s-%d@bench.example>" % (u, mb, i),
                                     base + i * 60) for i in range(BURST_PER_MAILBOX)]
                write_maildir(mail / u, mb, msgs, base)
        for u, mbs in self.idle_accts:
            for mb in mbs:
                write_maildir(mail / u, mb, [make_message(rnd, "<idle-%s-%s-%d@bench.example>"
                                                          % (u, mb, i), base + i) for i in range(3)],
                              base)
        for u, mbs in empty:
            for mb in mbs:
                write_maildir(mail / u, mb, [], base)
        for u in users:
            write_maildir(mail / u, None, [], base)
        subprocess.run(["chown", "-R", "nobody:nogroup", str(mail)], check=True)
        log("wrote %d messages in %d mailboxes of %d accounts in %.1f s" % (
            BURST_TOTAL + len(self.idle_accts) * IDLE_MAILBOXES * 3,
            sum(len(m) for _, m in self.burst_accts + self.idle_accts + empty), len(users),
            time.monotonic() - t))
        self.recv = Receiver(self.dir)
        self.setup_filesystems()
        # Warm-up (not measured): Dovecot builds its indexes and caches, the
        # page cache gets the messages.
        t = time.monotonic()
        self.imapfetch_all(self.burst_accts, content=False)
        self.imapfetch_all(self.burst_accts, content=True)
        self.imapfetch_all(self.idle_accts + empty, content=False, parallel=4)
        log("warmed up Dovecot's indexes in %.1f s" % (time.monotonic() - t))

    def imapfetch_all(self, accounts, content, parallel=None):
        """Runs bench/imapfetch for accounts (MAX_CONNECTIONS connections
        each), all at once (or parallel at a time); returns (messages,
        seconds from the first start to the last end)."""
        results = []
        pending = list(accounts)
        running = []
        limit = parallel or len(pending)
        while pending or running:
            while pending and len(running) < limit:
                u, mbs = pending.pop(0)
                argv = [str(IMAPFETCH), "--host", "127.0.0.1", "--port", str(self.dovecot.port_tls),
                        "--user", u, "--pass", PASSWORD, "--conns", str(MAX_CONNECTIONS)]
                if content:
                    argv += ["--content", str(MAX_CONTENT)]
                running.append(subprocess.Popen(argv + mbs, stdout=subprocess.PIPE, text=True))
            p = running.pop(0)
            out, _ = p.communicate()
            if p.returncode != 0:
                raise RuntimeError("imapfetch failed (%s)" % p.returncode)
            results.append(json.loads(out))
        msgs = sum(r["messages"] for r in results)
        span = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
        return msgs, span, sum(r["bytes"] for r in results)

    # ------------------------------------------------------------ helpers

    def start(self, kind, name, accounts, path, **kw):
        run_dir = self.dir / "runs" / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        if kind == "imaphook" and "state_dir" not in kw:
            kw["state_dir"] = self.state_dir(name)
        return Tool(self, kind, run_dir, accounts, self.recv.url(path), **kw)

    # imaphook's state_dir. Every scenario puts it on "ext4-journal", a
    # journaled ext4 (the default of mkfs.ext4, as on most servers) in an
    # image file on this machine's disk, mounted through a loop device. The
    # burst also runs with it on "ext4-nojournal" (ext4 without a journal,
    # mounted with discard: what this machine's own root file system is),
    # reformatted before each run, and on "tmpfs" (no disk at all: file-system
    # and fsync costs removed; a diagnostic, not a way to run imaphook).
    # Without loop devices, "ext4-journal" is replaced by "disk", BENCH_DIR's
    # own file system.
    FS_IMAGES = {"ext4-journal": ([], []), "ext4-nojournal": (["-O", "^has_journal"], ["discard"])}

    def setup_filesystems(self):
        self.shm = Path(tempfile.mkdtemp(prefix="imaphook-bench-", dir="/dev/shm"))
        self.mounted = []
        self.fs = {}
        for name in self.FS_IMAGES:
            try:
                self.fs[name] = self.format_image(name)
            except (OSError, subprocess.CalledProcessError) as e:
                log("no %s variant (cannot mount a loop image: %s)" % (name, e))
                break
        if "ext4-journal" not in self.fs:
            self.fs = {"disk": self.dir / "state-disk"}
        self.fs["tmpfs"] = self.shm
        self.main_fs = "ext4-journal" if "ext4-journal" in self.fs else "disk"
        for name, path in self.fs.items():
            self.results["machine"]["fs-" + name] = subprocess.run(
                ["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(path)],
                capture_output=True, text=True).stdout.strip().split("\n")[0]

    def format_image(self, name):
        """(Re)creates the file system of image name; returns its mount point."""
        mkfs_opts, mount_opts = self.FS_IMAGES[name]
        img, mnt = self.dir / ("%s.img" % name), self.dir / name
        if mnt in self.mounted:
            subprocess.run(["umount", str(mnt)], check=True, capture_output=True)
            self.mounted.remove(mnt)
        with open(img, "wb") as f:
            f.truncate(2 << 30)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"] +
                       mkfs_opts + [str(img)], check=True, capture_output=True)
        mnt.mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", ",".join(["loop"] + mount_opts), str(img), str(mnt)],
                       check=True, capture_output=True)
        self.mounted.append(mnt)
        return mnt

    def state_dir(self, name, fs=None):
        """A fresh state_dir for run name, on file system fs (default: the
        main one)."""
        fs = fs or self.main_fs
        if fs in self.FS_IMAGES and fs != self.main_fs:
            self.format_image(fs)
        path = self.fs[fs] / "state" / name
        if path.exists():
            shutil.rmtree(path)
        return path

    def finish(self, tool):
        tool.stop()
        self.live.remove(tool)

    def record(self, scenario, key, run):
        self.results["scenarios"].setdefault(scenario, {}).setdefault(key, []).append(run)
        self.save()

    def save(self):
        out = TOP / "bench" / "results" / self.results["started"].replace(":", "")
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(self.results, indent=1))
        self.out = out

    # ------------------------------------------------------------ limits

    def scenario_limits(self):
        for rep in range(RUNS):
            for content in (False, True):
                meter = LoadMeter(self)
                dc0 = self.dovecot.cpu()
                msgs, span, nbytes = self.imapfetch_all(self.burst_accts, content)
                dc = self.dovecot.cpu() - dc0
                run = {"messages": msgs, "seconds": span, "per_s": msgs / span, "bytes": nbytes,
                       "dovecot_cpu_s": dc, "other_cores": meter.other_cores(),
                       "load1": meter.load0}
                log("limit: Dovecot alone, %s: %d messages in %.2f s = %.0f/s (Dovecot %.2f CPU s)"
                    % ("content" if content else "envelope", msgs, span, msgs / span, dc))
                self.record("limits", "dovecot-content" if content else "dovecot-envelope", run)
            for body in ("envelope", "content"):
                run = self.wrk(body)
                self.record("limits", "receiver-" + body, run)

    def wrk(self, body):
        path = "/wrk-%s" % body
        body_file = self.dir / ("body-%s.json" % body)
        body_file.write_text(json.dumps(sample_event(body == "content"), ensure_ascii=False))
        meter = LoadMeter(self)
        r0 = self.recv.cpu()
        p = subprocess.Popen(["wrk", "-t2", "-c32", "-d%ds" % WRK_SECONDS, "-s",
                              str(TOP / "bench" / "post.lua"), self.recv.url(path)],
                             stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, BENCH_BODY=str(body_file)))
        self.helpers.append(type("H", (), {"proc": p})())
        out, _ = p.communicate()
        self.helpers.pop()
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        run = {"per_s": rps, "recv_cpu_s": self.recv.cpu() - r0, "seconds": WRK_SECONDS,
               "body_bytes": body_file.stat().st_size, "other_cores": meter.other_cores(),
               "load1": meter.load0}
        log("limit: receiver alone (wrk, %s body of %d bytes): %.0f POST/s, receiver CPU %.0f%%"
            % (body, run["body_bytes"], rps, 100 * run["recv_cpu_s"] / WRK_SECONDS))
        self.recv.reset()
        return run

    # ------------------------------------------------------------ burst

    def scenario_burst(self):
        variants = [("imaphook", None), ("peer", None)] + \
            [("imaphook", fs) for fs in self.fs if fs != self.main_fs]
        variants = [v for v in variants if v[0] in TOOLS]
        for content in (False, True):
            body = "content" if content else "envelope"
            for rep in range(RUNS):
                for kind, root in variants:
                    key = "%s-%s" % (kind, body) if root is None else \
                        "%s@%s-%s" % (kind, root, body)
                    self.record("burst", key, self.burst_run(kind, content, rep, root))
            if "imaphook" in TOOLS:
                self.record("burst-diag", "fsync-" + body, self.burst_fsync(content))
                if os.environ.get("BENCH_PERF") == "1":
                    self.burst_perf(content)

    def burst_run(self, kind, content, rep, root=None, wrap=(), quiet=False):
        body = "content" if content else "envelope"
        name = "%s%s-%s-%d" % (kind, "@" + root if root else "", body, rep)
        path = "/burst/%s" % name
        self.recv.reset()
        meter = LoadMeter(self)
        dc0 = self.dovecot.cpu()
        kw = {}
        if kind == "imaphook":
            kw["state_dir"] = self.state_dir(name, root)
        tool = self.start(kind, "burst-" + name, self.burst_accts, path, wrap=wrap,
                          fetch_content=content, start_from="all", interval=3600, **kw)
        limit = 1800 if content else 900
        deadline = time.monotonic() + limit
        hwm = 0
        samples = []            # (events received, CPU s) once 10% are in
        while True:
            tool.check_alive()
            hwm = max(hwm, tool.mem().get("VmHWM", 0))
            n = self.recv.count(path)
            if n >= BURST_TOTAL // 10 and not samples:
                samples.append((n, tool.cpu()))
            if n >= BURST_TOTAL:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("%s burst: only %d of %d events after %d s" % (
                    kind, n, BURST_TOTAL, limit))
            time.sleep(0.1)
        cpu = tool.cpu()
        steady = 1000 * (cpu - samples[0][1]) / (BURST_TOTAL - samples[0][0]) \
            if samples and cpu and samples[0][0] < BURST_TOTAL else None
        time.sleep(0.3)         # late duplicates, if any
        mem = tool.mem()
        dc = self.dovecot.cpu() - dc0
        other = meter.other_cores()
        n, first, last = self.recv.stats()[path]
        ids = {mid for _, mid in self.recv.log(path)}
        self.finish(tool)
        if kind == "imaphook":
            shutil.rmtree(kw["state_dir"], ignore_errors=True)
        span = last - tool.t0
        run = {"events": n, "distinct": len(ids), "seconds": span, "per_s": BURST_TOTAL / span,
               "first_event_s": first - tool.t0, "cpu_s": cpu,
               "cpu_s_per_1000": cpu / (BURST_TOTAL / 1000), "cpu_s_per_1000_steady": steady,
               "events_per_cpu_s": BURST_TOTAL / cpu if cpu else None,
               "hwm_kib": max(hwm, mem.get("VmHWM", 0)), "dovecot_cpu_s": dc,
               "other_cores": other, "load1": meter.load0, "tool": tool}
        if not quiet:
            log("burst %s #%d: %d events (%d distinct) in %.2f s = %.0f/s, CPU %.2f s "
                "(%.1f ms/1000), peak RSS %.1f MiB, Dovecot %.2f CPU s, other load %.2f" % (
                    name, rep + 1, n, len(ids), span, run["per_s"], cpu,
                    1000 * run["cpu_s_per_1000"], run["hwm_kib"] / 1024, dc, other))
        del run["tool"]
        return run

    def burst_fsync(self, content):
        """One more imaphook run (state_dir as in the main rows, not counted)
        under strace, which stops on fsync/fdatasync/syncfs only: the time
        imaphook waits for the disk to make its outbox and state durable."""
        trace = self.dir / ("fsync-%s.strace" % ("content" if content else "envelope"))
        run = self.burst_run("imaphook", content, 99, None, quiet=True,
                             wrap=("strace", "-f", "--seccomp-bpf", "-qq", "-T", "-e",
                                   "trace=fsync,fdatasync,syncfs", "-o", str(trace)))
        calls = {}
        total = {}
        for line in trace.read_text().splitlines():
            m = re.match(r"\d+\s+(\w+)\(.*<([\d.]+)>$", line)
            if m:
                calls[m.group(1)] = calls.get(m.group(1), 0) + 1
                total[m.group(1)] = total.get(m.group(1), 0.0) + float(m.group(2))
        out = {"calls": calls, "seconds": total, "wall_s": run["seconds"],
               "ms_per_1000": 1000 * sum(total.values()) / (BURST_TOTAL / 1000),
               "share_of_wall": sum(total.values()) / run["seconds"]}
        log("burst fsync cost (%s): %s; %.1f ms per 1,000 events, %.0f%% of the wall time" % (
            "content" if content else "envelope",
            ", ".join("%d %s %.0f ms" % (calls[k], k, 1000 * total[k]) for k in sorted(calls)),
            out["ms_per_1000"], 100 * out["share_of_wall"]))
        return out

    def burst_perf(self, content):
        """BENCH_PERF=1: one more imaphook run under perf record (call
        graphs); the inclusive profile goes to the results directory."""
        body = "content" if content else "envelope"
        data = self.dir / ("perf-%s.data" % body)
        self.burst_run("imaphook", content, 98, None, quiet=True,
                       wrap=("perf", "record", "-q", "-g", "--call-graph", "dwarf,16384", "-F",
                             "999", "-o", str(data), "--"))
        self.save()
        for sort, name in (("symbol", "children"), ("dso,symbol", "self")):
            rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "-g", "none",
                                  "--percent-limit", "0.5", "--sort", sort] +
                                 (["--children"] if name == "children" else ["--no-children"]),
                                 capture_output=True, text=True).stdout
            (self.out / ("perf-%s-%s.txt" % (body, name))).write_text(rep)
        log("burst perf profile (%s) in %s" % (body, self.out))

    # ------------------------------------------------------------ idle polling

    def scenario_idle(self):
        n = len(self.idle_accts) * IDLE_MAILBOXES
        for rep in range(RUNS):
            for kind in TOOLS:
                path = "/%s/idle/%d" % (kind, rep)
                tool = self.start(kind, "idle-%s-%d" % (kind, rep), self.idle_accts, path,
                                  interval=1)
                wait_for(lambda: (tool.check_alive(), tool.counters()["first"] >= n)[1], 120,
                         "%s: first polls" % kind, 0.25)
                time.sleep(3)           # connections settle
                meter = LoadMeter(self)
                c0, p0, d0, t0 = tool.cpu(), tool.counters()["polls"], self.dovecot.cpu(), \
                    time.monotonic()
                time.sleep(IDLE_SECONDS)
                p1 = tool.counters()["polls"]
                c1, d1, t1 = tool.cpu(), self.dovecot.cpu(), time.monotonic()
                mem = tool.mem()
                other = meter.other_cores()
                events = self.recv.count(path)
                self.finish(tool)
                polls = p1 - p0
                run = {"triggers": n, "seconds": t1 - t0, "polls": polls, "polls_per_s":
                       polls / (t1 - t0), "cpu_s": c1 - c0, "cpu_us_per_poll": 1e6 * (c1 - c0) / polls,
                       "cpu_share": (c1 - c0) / (t1 - t0),
                       "dovecot_cpu_s": d1 - d0, "dovecot_us_per_poll": 1e6 * (d1 - d0) / polls,
                       "rss_kib": mem.get("VmRSS"), "hwm_kib": mem.get("VmHWM"),
                       "anon_kib": mem.get("RssAnon"), "events": events, "other_cores": other, "load1": meter.load0}
                log("idle %s #%d: %d polls in %.0f s (%.0f/s): %.1f µs CPU per poll (%.1f%% of a "
                    "core), Dovecot %.1f µs per poll, RSS %.1f MiB, other load %.2f" % (
                        kind, rep + 1, polls, t1 - t0, run["polls_per_s"], run["cpu_us_per_poll"],
                        100 * run["cpu_share"], run["dovecot_us_per_poll"],
                        (run["rss_kib"] or 0) / 1024, other))
                self.record("idle", kind, run)

    # ------------------------------------------------------------ scale

    def scenario_scale(self):
        # 100 accounts x 10 and x 100 mailboxes: memory per trigger at a
        # fixed number of connections; 1 account x 1,000 mailboxes: what the
        # 99 other accounts (connections) cost.
        sizes = [("100x%d" % IDLE_MAILBOXES, self.idle_accts),
                 ("100x%d" % SCALE_BIG_MAILBOXES, self.big_accts),
                 ("1x1000", self.one_accts)]
        for rep in range(RUNS):
            for label, accts in sizes:
                n = sum(len(m) for _, m in accts)
                for kind in TOOLS:
                    run = self.scale_run(kind, label, accts, n, rep)
                    self.record("scale", "%s-%s" % (kind, label), run)

    def scale_run(self, kind, label, accts, n, rep):
        path = "/%s/scale-%s/%d" % (kind, label, rep)
        meter = LoadMeter(self)
        tool = self.start(kind, "scale-%s-%s-%d" % (label, kind, rep), accts, path, interval=60)
        ready = wait_for(lambda: (tool.check_alive(), tool.counters()["first"] >= n and
                                  time.time())[1], 300, "%s: %d first polls" % (kind, n), 0.2)
        startup = ready - tool.t0
        time.sleep(3)
        mem = tool.mem()
        cpu = tool.cpu()
        run = {"triggers": n, "startup_s": startup, "rss_kib": mem.get("VmRSS"),
               "hwm_kib": mem.get("VmHWM"), "anon_kib": mem.get("RssAnon"), "cpu_s": cpu, "other_cores": meter.other_cores(),
               "load1": meter.load0}
        if kind == "imaphook":
            # a warm start: the same state directory again (nothing to save)
            self.finish(tool)
            run_dir = tool.dir
            tool2 = Tool(self, kind, run_dir, accts, self.recv.url(path), interval=60,
                         state_dir=tool.state_dir)
            ready2 = wait_for(lambda: (tool2.check_alive(), tool2.counters()["first"] >= n and
                                       time.time())[1], 300, "imaphook warm start", 0.2)
            run["warm_startup_s"] = ready2 - tool2.t0
            t = time.monotonic()
            tool2._http("/healthz")
            run["healthz_s"] = time.monotonic() - t
            tool = tool2
        self.finish(tool)
        log("scale %s %s (%d triggers) #%d: start-up %.2f s%s, RSS %.1f MiB (%.0f bytes per "
            "trigger in all), CPU %.2f s, other load %.2f" % (
                kind, label, n, rep + 1, startup, (", warm %.2f s" % run["warm_startup_s"])
                if "warm_startup_s" in run else "", run["rss_kib"] / 1024,
                run["rss_kib"] * 1024 / n, cpu, run["other_cores"]))
        return run

    # ------------------------------------------------------------ latency

    def scenario_latency(self):
        for rep in range(RUNS):
            self.latency_run(rep, "poll", LAT_POLL_SECONDS)
            self.latency_run(rep, "idle", LAT_SECONDS)

    def latency_run(self, rep, mode, seconds):
        """One window: imaphook and the peer in mode at once (poll: interval
        1 s; idle: push, interval 60 s as the safety re-check), plus, in idle
        mode, bare IDLE and NOTIFY clients that show Dovecot's own delays."""
        acct = self.lat_accts
        user, mailboxes = acct[0]
        tools = {}
        for kind in TOOLS:
            path = "/%s/latency-%s/%d" % (kind, mode, rep)
            tools[kind] = (path, self.start(kind, "latency-%s-%s-%d" % (kind, mode, rep), acct,
                                            path, interval=1 if mode == "poll" else 60, mode=mode))
        if mode == "idle" and "imaphook" in TOOLS:
            # with a connection per mailbox to spare and one more, imaphook
            # idles on each (IDLE), NOTIFY beside them, instead of one NOTIFY
            # connection for all
            path = "/imaphook-conns/latency-idle/%d" % rep
            tools["imaphook-conns"] = (path, self.start(
                "imaphook", "latency-imaphook-conns-%d" % rep, acct, path, interval=60,
                mode=mode, max_connections=LAT_MAILBOXES + 2))
        for kind, (path, tool) in tools.items():
            want_watch = LAT_MAILBOXES if mode == "idle" else 0
            wait_for(lambda: (tool.check_alive(), tool.counters()["first"] >= LAT_MAILBOXES and
                              tool.counters()["watching"] >= want_watch)[1], 60,
                     "%s %s ready" % (kind, mode), 0.2)
        bare = []
        if mode == "idle":
            bare = [RawIdle(self.dovecot.port_tls, user, mailboxes),
                    RawNotify(self.dovecot.port_tls, user, mailboxes)]
        time.sleep(2)
        meter = LoadMeter(self)
        appended = append_stream(self.dovecot.port_tls, user, mailboxes, rep, seconds)
        deadline = time.monotonic() + LAT_WAIT
        while time.monotonic() < deadline:
            st = self.recv.stats()
            if all(st.get(p, (0,))[0] >= len(appended) for p, _ in tools.values()):
                break
            time.sleep(0.2)
        other = meter.other_cores()
        per_mb = {}
        for msgid, (mb, seq_in_mb, t_sent, t_ok) in appended.items():
            per_mb.setdefault(mb, {})[seq_in_mb] = t_ok
        runs = {}
        for client in bare:
            client.stop()
            runs["dovecot-%s" % client.kind] = lat_summary(client.latencies(per_mb), len(appended),
                                                           other, meter.load0)
        for kind, (path, tool) in tools.items():
            lats = []
            for t, mid in self.recv.log(path):
                a = appended.get(mid)
                if a is not None:
                    lats.append(t - a[3])
            runs["%s-%s" % (kind, mode)] = lat_summary(lats, len(appended), other, meter.load0)
            runs["%s-%s" % (kind, mode)]["cpu_s"] = tool.cpu()
            self.finish(tool)
        for key, run in runs.items():
            log("latency %s #%d: p50 %s, p99 %s, max %s, %d of %d delivered within %.0f s after "
                "the last append" % (
                    key, rep + 1, ms(run["p50_s"]), ms(run["p99_s"]), ms(run["max_s"]),
                    run["received"], run["appended"], LAT_WAIT))
            self.record("latency", key, run)


def ms(v):
    return "late" if v is None or v == float("inf") else "%.0f ms" % (1000 * v)


def lat_summary(lats, appended, other, load1):
    """Percentiles over every appended message: one not delivered in time
    counts as infinitely late (so a loss cannot improve p99)."""
    got = sorted(lats)
    lats = got + [float("inf")] * max(0, appended - len(got))

    def pct(p):
        if not lats:
            return None
        return lats[min(len(lats) - 1, int(round(p / 100 * (len(lats) - 1))))]
    return {"appended": appended, "received": len(got), "p50_s": pct(50), "p99_s": pct(99),
            "max_s": lats[-1] if lats else None, "min_s": got[0] if got else None,
            "mean_s": statistics.fmean(got) if got else None, "raw_s": [round(x, 4) for x in got],
            "other_cores": other, "load1": load1}


# ---------------------------------------------------------------- IMAP helpers

def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RawClient:
    """A bare IMAP client that only listens: the floor of any push latency on
    this Dovecot. latencies() maps what it heard to the appends."""

    def __init__(self, port, user):
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls_context().wrap_socket(raw, server_hostname="localhost")
        self.f = self.sock.makefile("rb")
        self.f.readline()
        self.cmd(b'a LOGIN %s "%s"' % (user.encode(), PASSWORD.encode()))
        self.heard = []         # (mailbox, messages now there since we started, time)

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        tag = line.split(b" ", 1)[0]
        out = b""
        while True:
            resp = self.f.readline()
            if not resp:
                raise RuntimeError("connection closed")
            out += resp
            if resp.startswith(tag + b" "):
                return out

    def listen(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                line = self.f.readline()
                if not line:
                    return
                self.on_line(line, time.time())
        except (OSError, ValueError):
            return

    def stop(self):
        try:
            self.sock.sendall(b"DONE\r\nz LOGOUT\r\n")
            self.thread.join(3)
            self.sock.close()
        except OSError:
            pass

    def latencies(self, per_mb):
        """per_mb[mailbox][k] = when the k-th append to it (1-based) was
        acknowledged. A notification covers every append up to its count."""
        done, out = {}, []
        for mb, n, t in self.heard:
            for k in range(done.get(mb, 0) + 1, n + 1):
                t_ok = per_mb.get(mb, {}).get(k)
                if t_ok is not None:
                    out.append(t - t_ok)
            done[mb] = max(done.get(mb, 0), n)
        return out


class RawIdle:
    """One bare IDLE connection per mailbox (EXAMINE + IDLE)."""
    kind = "idle"

    def __init__(self, port, user, mailboxes):
        self.conns = []
        for mb in mailboxes:
            c = RawClient(port, user)
            out = c.cmd(b'b EXAMINE "%s"' % mb.encode())
            initial = int(re.search(rb"\* (\d+) EXISTS", out).group(1))
            c.sock.sendall(b"c IDLE\r\n")
            c.f.readline()      # + idling

            def on_line(line, t, c=c, mb=mb, initial=initial):
                m = re.match(rb"\* (\d+) EXISTS", line)
                if m:
                    c.heard.append((mb, int(m.group(1)) - initial, t))
            c.on_line = on_line
            c.listen()
            self.conns.append(c)

    def stop(self):
        for c in self.conns:
            c.stop()

    def latencies(self, per_mb):
        return [x for c in self.conns for x in c.latencies(per_mb)]


class RawNotify(RawClient):
    """One bare connection with NOTIFY SET (personal (MessageNew
    MessageExpunge)), as imaphook's mode = "idle" uses on Dovecot: new mail
    in any mailbox comes as "* STATUS mailbox (... UIDNEXT n ...)"."""
    kind = "notify"

    def __init__(self, port, user, mailboxes):
        super().__init__(port, user)
        self.initial = {}
        for mb in mailboxes:
            out = self.cmd(b'b STATUS "%s" (UIDNEXT)' % mb.encode())
            self.initial[mb] = int(re.search(rb"UIDNEXT (\d+)", out).group(1))
        self.cmd(b"c NOTIFY SET (personal (MessageNew MessageExpunge))")
        self.listen()

    def on_line(self, line, t):
        m = re.match(rb'\* STATUS "?([^" ]+)"? \((.*)\)', line)
        if m:
            u = re.search(rb"UIDNEXT (\d+)", m.group(2))
            mb = m.group(1).decode()
            if u and mb in self.initial:
                self.heard.append((mb, int(u.group(1)) - self.initial[mb], t))

    def stop(self):
        try:
            self.sock.sendall(b"z LOGOUT\r\n")
            self.thread.join(3)
            self.sock.close()
        except OSError:
            pass


def append_stream(port, user, mailboxes, rep, seconds):
    """APPENDs one message every LAT_PERIOD s, round robin over mailboxes,
    for seconds. Returns {message_id: (mailbox, n-th in mailbox (1-based),
    t_sent, t_ok)}."""
    import imaplib
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls_context())
    m.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    m.login(user, PASSWORD)
    out = {}
    count = int(seconds / LAT_PERIOD)
    per_mb = {}
    rnd = random.Random(rep)
    start = time.monotonic() + 0.1
    for k in range(count):
        mb = mailboxes[k % len(mailboxes)]
        mid = "<lat-%d-%d-%d@bench.example>" % (rep, k, int(time.time()))
        msg = make_message(rnd, mid, time.time()).replace(b"\n", b"\r\n")
        delay = start + k * LAT_PERIOD - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t_sent = time.time()
        typ, _ = m.append(mb, None, None, msg)
        t_ok = time.time()
        if typ != "OK":
            raise RuntimeError("APPEND to %s failed" % mb)
        per_mb[mb] = per_mb.get(mb, 0) + 1
        out[mid] = (mb, per_mb[mb], t_sent, t_ok)
    m.logout()
    return out


# ---------------------------------------------------------------- samples

def sample_event(content):
    """A typical event body (for wrk): what imaphook posts for an average
    message of the burst data."""
    ev = {"type": "email.new", "id": "b01-Burst1:1795653631:42", "timestamp": "2026-11-26T00:40:31Z",
          "trigger": "b01-Burst1", "connection": "b01", "mailbox": "Burst1",
          "uidValidity": 1795653631, "uid": 42, "flags": ["\\Seen"], "size": 5123,
          "internalDate": "2026-11-26T00:40:29Z",
          "envelope": {"date": "2026-11-26T00:40:00Z",
                       "subject": "Grüße aus München – Angebot 4711",
                       "messageId": "<bench-b01-Burst1-42@bench.example>", "inReplyTo": None,
                       "from": [{"name": "Jürgen Müller", "address": "jurgen.muller@example.com"}],
                       "sender": [], "replyTo": [],
                       "to": [{"name": "Anna Smith", "address": "anna.smith@example.org"},
                              {"name": "Lars Rossi", "address": "lars.rossi@example.net"}],
                       "cc": [], "bcc": []}}
    if content:
        rnd = random.Random(3)
        text = "\n\n".join(paragraph(rnd, 45) for _ in range(3))
        ev["content"] = {
            "headers": [{"name": n, "value": "x" * 60} for n in
                        ("Return-Path", "Received", "Date", "From", "To", "Subject", "Message-ID",
                         "MIME-Version", "Content-Type")],
            "text": text + "\n",
            "html": "<html><body>%s</body></html>" % "".join(
                "<p>%s</p>" % p for p in text.split("\n\n")),
            "attachments": []}
    return ev


def machine(directory):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except Exception:
            return ""
    model = sh("lscpu | sed -n 's/^Model name: *//p'")
    return {
        "cpu": "%s, %s cores" % (model, os.cpu_count()),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": os.uname().release,
        "os": "Debian " + sh("cat /etc/debian_version"),
        "filesystem": sh("findmnt -n -o SOURCE,FSTYPE,OPTIONS -T %s" % directory),
        "virtualization": sh("systemd-detect-virt") or sh("lscpu | sed -n 's/^Hypervisor vendor: *//p'"),
        "dovecot": sh("dovecot --version"),
        "node": sh("node --version"),
        "imapflow": json.loads((TOP / "bench/peer/node_modules/imapflow/package.json")
                               .read_text())["version"]
        if (TOP / "bench/peer/node_modules/imapflow/package.json").exists() else None,
        "openssl": sh("openssl version"),
        "libcurl": sh("curl-config --version"),
        "libevent": sh("pkg-config --modversion libevent"),
        "imaphookd": sh("%s --version" % IMAPHOOKD),
    }


# ---------------------------------------------------------------- report

def fmt(v, spec="%.0f"):
    return "–" if v is None else spec % v


def thousands(v):
    return "–" if v is None else "{:,.0f}".format(v)


def burst_labels(res):
    main = "journaled ext4 (loop image on the disk)" if res["machine"].get("fs-ext4-journal") \
        else "the disk (BENCH_DIR's file system)"
    return {
        "imaphook": "imaphook, state_dir on " + main,
        "imaphook@ext4-nojournal": "imaphook, state_dir on ext4 without journal, discard "
                                   "(like this machine's root fs; fresh per run)",
        "imaphook@tmpfs": "imaphook, state_dir on tmpfs (no disk; diagnostic)",
        "peer": "peer (ImapFlow; state in memory)",
    }


def report(res):
    sc = res["scenarios"]
    m = res["machine"]
    L = []

    def med(group, key, field):
        return median([r.get(field) for r in sc.get(group, {}).get(key, [])])

    def runs(group, key, field, spec="%.0f"):
        vals = [r.get(field) for r in sc.get(group, {}).get(key, [])]
        return ", ".join(fmt(v, spec) for v in vals)

    L.append("Machine: %s, %s GiB, %s, kernel %s (%s); BENCH_DIR (Dovecot's mail) on %s." % (
        m["cpu"], m["memory_gib"], m["os"], m["kernel"], m["virtualization"], m["filesystem"]))
    L.append("")
    L.append("imaphook's state_dir: %s." % "; ".join(
        "%s = `%s`" % (k[3:], v) for k, v in m.items() if k.startswith("fs-")))
    L.append("")
    L.append("Versions: %s; Dovecot %s; Node %s, imapflow %s; %s; libcurl %s; libevent %s." % (
        m["imaphookd"], m["dovecot"], m["node"], m["imapflow"], m["openssl"],
        m["libcurl"], m["libevent"]))
    L.append("")
    L.append("%d run%s per figure, median shown%s. \"other\" = cores busy with processes outside "
             "the benchmark during those runs (median; 2 cores in all)." % (
                 res["runs"], "" if res["runs"] == 1 else "s", " (BENCH_QUICK)" if res["quick"] else ""))
    L.append("")
    tight = {}
    if "limits" in sc:
        L.append("### Limits (the machine, without imaphook)")
        L.append("")
        L.append("| what | per second | notes | other |")
        L.append("|---|---:|---|---:|")
        for body in ("envelope", "content"):
            d = med("limits", "dovecot-" + body, "per_s")
            r = med("limits", "receiver-" + body, "per_s")
            have = [x for x in (d, r) if x is not None]
            tight[body] = min(have) if have else None
            dmsgs = med("limits", "dovecot-" + body, "messages") or 1
            L.append("| Dovecot alone answering imaphook's STATUS/EXAMINE/UID FETCH, %s "
                     "(bench/imapfetch, %d accounts × %d TLS connections) | %s messages "
                     "| Dovecot CPU %s ms per 1,000 | %s |" % (
                         body, BURST_ACCOUNTS, MAX_CONNECTIONS, thousands(d),
                         fmt(1e6 * (med("limits", "dovecot-" + body, "dovecot_cpu_s") or 0) / dmsgs),
                         fmt(med("limits", "dovecot-" + body, "other_cores"), "%.2f")))
            L.append("| Receiver alone: wrk, 2 threads, 32 keep-alive connections, %s event body "
                     "(%s bytes) | %s POSTs | receiver CPU %s%% of a core | %s |" % (
                         body, fmt(med("limits", "receiver-" + body, "body_bytes")), thousands(r),
                         fmt(100 * (med("limits", "receiver-" + body, "recv_cpu_s") or 0) /
                             max(1e-9, med("limits", "receiver-" + body, "seconds") or 1)),
                         fmt(med("limits", "receiver-" + body, "other_cores"), "%.2f")))
        L.append("")
    if "burst" in sc:
        L.append("### 1. Burst: %s messages in %d mailboxes (%d accounts × %d), start_from = \"all\", "
                 "one webhook" % ("{:,}".format(BURST_TOTAL), BURST_ACCOUNTS * BURST_MAILBOXES,
                                  BURST_ACCOUNTS, BURST_MAILBOXES))
        L.append("")
        L.append("| tool | body | events/s (runs) | of the limit | CPU s per 1,000 events "
                 "| events per CPU s | peak RSS MiB | Dovecot CPU s | other |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for body in ("envelope", "content"):
            labels = burst_labels(res)
            for base in labels:
                key = "%s-%s" % (base, body)
                if key not in sc["burst"]:
                    continue
                rate = med("burst", key, "per_s")
                L.append("| %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s |" % (
                    labels[base], body, thousands(rate), runs("burst", key, "per_s"),
                    fmt(100 * rate / tight[body], "%.1f%%") if tight.get(body) and rate else "–",
                    fmt(med("burst", key, "cpu_s_per_1000"), "%.3f"),
                    thousands(med("burst", key, "events_per_cpu_s")),
                    fmt((med("burst", key, "hwm_kib") or 0) / 1024, "%.1f"),
                    fmt(med("burst", key, "dovecot_cpu_s"), "%.1f"),
                    fmt(med("burst", key, "other_cores"), "%.2f")))
        diag = sc.get("burst-diag", {})
        if diag:
            L.append("")
            for body in ("envelope", "content"):
                d = (diag.get("fsync-" + body) or [None])[0]
                if d:
                    L.append("fsync cost (%s; one extra imaphook run, state_dir as in the first "
                             "row, under `strace -e "
                             "trace=fsync,fdatasync,syncfs -T`): %s; %.1f ms per 1,000 events, "
                             "%.0f%% of that run's %.1f s." % (
                                 body, ", ".join("%d × %s = %.0f ms" % (
                                     d["calls"][k], k, 1000 * d["seconds"][k])
                                     for k in sorted(d["calls"])),
                                 d["ms_per_1000"], 100 * d["share_of_wall"], d["wall_s"]))
        L.append("")
    if "idle" in sc:
        L.append("### 2. Idle polling: %s triggers (%d accounts × %d mailboxes), interval 1 s, "
                 "nothing new, %.0f s window" % ("{:,}".format(IDLE_ACCOUNTS * IDLE_MAILBOXES),
                                                 IDLE_ACCOUNTS, IDLE_MAILBOXES, IDLE_SECONDS))
        L.append("")
        L.append("| tool | polls/s | CPU µs per poll (runs) | CPU % of a core | Dovecot CPU µs per "
                 "poll | RSS MiB (private) | other |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for kind in TOOLS:
            if kind not in sc["idle"]:
                continue
            L.append("| %s | %s | %s (%s) | %s | %s | %s | %s |" % (
                kind, thousands(med("idle", kind, "polls_per_s")),
                fmt(med("idle", kind, "cpu_us_per_poll"), "%.1f"),
                runs("idle", kind, "cpu_us_per_poll", "%.1f"),
                fmt(100 * (med("idle", kind, "cpu_share") or 0), "%.1f"),
                fmt(med("idle", kind, "dovecot_us_per_poll"), "%.0f"),
                "%s (%s)" % (fmt((med("idle", kind, "rss_kib") or 0) / 1024, "%.1f"),
                             fmt((med("idle", kind, "anon_kib") or 0) / 1024, "%.1f")),
                fmt(med("idle", kind, "other_cores"), "%.2f")))
        L.append("")
    if "scale" in sc:
        L.append("### 3. Scale: start-up (process start → every trigger's first poll done) and "
                 "memory, interval 60 s, nothing new")
        L.append("")
        L.append("| tool | accounts × mailboxes | triggers | start-up s, cold (runs) | start-up s, "
                 "warm | start-up CPU s | RSS MiB (private) | RSS per trigger | other |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        labels = []
        for k in sc["scale"]:
            lab = k.split("-", 1)[1]
            if lab not in labels:
                labels.append(lab)
        for kind in TOOLS:
            for lab in labels:
                key = "%s-%s" % (kind, lab)
                if key not in sc["scale"]:
                    continue
                n = sc["scale"][key][0]["triggers"]
                L.append("| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s |" % (
                    kind, lab.replace("x", " × "), "{:,}".format(n),
                    fmt(med("scale", key, "startup_s"), "%.2f"), runs("scale", key, "startup_s", "%.2f"),
                    fmt(med("scale", key, "warm_startup_s"), "%.2f"),
                    fmt(med("scale", key, "cpu_s"), "%.2f"),
                    "%s (%s)" % (fmt((med("scale", key, "rss_kib") or 0) / 1024, "%.1f"),
                                 fmt((med("scale", key, "anon_kib") or 0) / 1024, "%.1f")),
                    fmt((med("scale", key, "rss_kib") or 0) * 1024 / n, "%.0f B"),
                    fmt(med("scale", key, "other_cores"), "%.2f")))
        L.append("")
        for kind in TOOLS:
            per_trigger = scale_marginal(sc, kind)
            per_account = scale_per_account(sc, kind)
            if per_trigger is not None or per_account is not None:
                L.append("%s: %s per extra trigger (100 accounts, %d → %d mailboxes each); %s per "
                         "extra account with its connections (100 × %d vs 1 × 1,000)." % (
                             kind, fmt(per_trigger, "%.0f B"), IDLE_MAILBOXES, SCALE_BIG_MAILBOXES,
                             fmt(per_account / 1024 if per_account is not None else None, "%.0f KiB"),
                             IDLE_MAILBOXES))
        L.append("")
    if "latency" in sc:
        L.append("### 4. Latency: APPEND (tagged OK) → POST arrival; 1 message every %.0f ms, round "
                 "robin over %d mailboxes of 1 account; poll window %.0f s, idle window %.0f s; "
                 "imaphook and the peer at once in each window" % (
                     1000 * LAT_PERIOD, LAT_MAILBOXES, LAT_POLL_SECONDS, LAT_SECONDS))
        L.append("")
        L.append("| who | mode | p50 ms | p99 ms | max ms | delivered (within %.0f s of the last "
                 "append) | other |" % LAT_WAIT)
        L.append("|---|---|---:|---:|---:|---:|---:|")
        rows = [("imaphook-poll", "imaphook", "poll, interval 1 s"),
                ("peer-poll", "peer", "poll, interval 1 s"),
                ("dovecot-idle", "Dovecot alone: bare IDLE client per mailbox (→ `* n EXISTS`)",
                 "IDLE"),
                ("peer-idle", "peer", "ImapFlow IDLE, a client per mailbox"),
                ("dovecot-notify", "Dovecot alone: one bare NOTIFY client (→ `* STATUS`)",
                 "NOTIFY"),
                ("imaphook-idle", "imaphook", "mode = \"idle\", max_connections = %d: NOTIFY "
                 "on Dovecot (one connection for all)" % MAX_CONNECTIONS),
                ("imaphook-conns-idle", "imaphook", "mode = \"idle\", max_connections = %d: "
                 "IDLE per mailbox, NOTIFY beside" % (LAT_MAILBOXES + 2))]
        for key, who, mode in rows:
            if key not in sc["latency"]:
                continue

            def lat(field):
                v = med("latency", key, field)
                return "not in time" if v == float("inf") else fmt(None if v is None else 1000 * v)
            L.append("| %s | %s | %s | %s | %s | %s/%s (%s) | %s |" % (
                who, mode, lat("p50_s"), lat("p99_s"), lat("max_s"),
                fmt(med("latency", key, "received")), fmt(med("latency", key, "appended")),
                runs("latency", key, "received"), fmt(med("latency", key, "other_cores"), "%.2f")))
        L.append("")
    L += targets(res, tight)
    return "\n".join(L)


def scale_marginal(sc, kind):
    a = median([r["rss_kib"] for r in sc.get("scale", {}).get("%s-100x%d" % (kind, IDLE_MAILBOXES), [])])
    b = median([r["rss_kib"] for r in sc.get("scale", {}).get("%s-100x%d" % (kind, SCALE_BIG_MAILBOXES), [])])
    if a is None or b is None:
        return None
    return (b - a) * 1024 / (IDLE_ACCOUNTS * (SCALE_BIG_MAILBOXES - IDLE_MAILBOXES))


def scale_per_account(sc, kind):
    a = median([r["rss_kib"] for r in sc.get("scale", {}).get("%s-100x%d" % (kind, IDLE_MAILBOXES), [])])
    b = median([r["rss_kib"] for r in sc.get("scale", {}).get("%s-1x1000" % kind, [])])
    if a is None or b is None or IDLE_ACCOUNTS * IDLE_MAILBOXES != 1000:
        return None
    return (a - b) * 1024 / (IDLE_ACCOUNTS - 1)


def targets(res, tight):
    sc = res["scenarios"]
    L = ["### Targets", "", "| target | where it stands | |", "|---|---|---|"]

    def med(group, key, field):
        return median([r.get(field) for r in sc.get(group, {}).get(key, [])])

    def row(what, value, ok):
        L.append("| %s | %s | %s |" % (what, value, "met" if ok else "**missed**"))
    for body in ("envelope", "content"):
        rate = med("burst", "imaphook-" + body, "per_s")
        if rate and tight.get(body):
            row("burst (%s) events/s ≥ 80%% of the tighter limit" % body,
                "%s/s = %.1f%% of %s/s" % (thousands(rate), 100 * rate / tight[body],
                                           thousands(tight[body])), rate >= 0.8 * tight[body])
        a = med("burst", "imaphook-" + body, "events_per_cpu_s")
        b = med("burst", "peer-" + body, "events_per_cpu_s")
        if a and b:
            row("burst (%s) events per CPU s ≥ 5× the peer's" % body,
                "%s vs %s = %.2f×" % (thousands(a), thousands(b), a / b), a >= 5 * b)
        a = med("burst", "imaphook-" + body, "hwm_kib")
        b = med("burst", "peer-" + body, "hwm_kib")
        if a and b:
            row("burst (%s) peak RSS ≤ 1/10 of the peer's" % body,
                "%.1f MiB vs %.1f MiB = 1/%.1f" % (a / 1024, b / 1024, b / a), a * 10 <= b)
    a, b = med("idle", "imaphook", "rss_kib"), med("idle", "peer", "rss_kib")
    if a and b:
        pa, pb = med("idle", "imaphook", "anon_kib"), med("idle", "peer", "anon_kib")
        row("idle polling (1,000 triggers, 100 accounts) RSS ≤ 1/10 of the peer's",
            "%.1f MiB vs %.1f MiB = 1/%.1f (private memory: %.1f vs %.1f MiB = 1/%.1f)" % (
                a / 1024, b / 1024, b / a, (pa or 0) / 1024, (pb or 0) / 1024,
                (pb or 0) / max(1, pa or 1)), a * 10 <= b)
    per = scale_marginal(sc, "imaphook")
    if per is not None:
        row("≤ 4 KiB per idle trigger", "%.0f B per extra trigger; %.0f B per trigger in all at "
            "%s triggers" % (per, 1024 * med("scale", "imaphook-100x%d" % SCALE_BIG_MAILBOXES,
                                              "rss_kib") / (IDLE_ACCOUNTS * SCALE_BIG_MAILBOXES),
                             "{:,}".format(IDLE_ACCOUNTS * SCALE_BIG_MAILBOXES)),
            per <= 4096)
    us = med("idle", "imaphook", "cpu_us_per_poll")
    if us is not None:
        row("idle poll ≤ 100 µs of daemon CPU", "%.1f µs" % us, us <= 100)
    L.append("")
    return L


def main():
    for p in (IMAPHOOKD, RECV, IMAPFETCH):
        if not os.access(p, os.X_OK):
            sys.exit("bench: %s is missing: run make bench" % p)
    if not (TOP / "bench/peer/node_modules/imapflow").exists():
        sys.exit("bench: bench/peer/node_modules is missing: run make bench-deps")
    if os.geteuid() != 0:
        sys.exit("bench: run as root (Dovecot's fixture needs it)")
    bench = Bench()

    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    t0 = time.monotonic()
    try:
        bench.setup()
        scenarios = ["limits", "burst", "idle", "scale", "latency"]
        for s in scenarios:
            if ONLY and s not in ONLY:
                continue
            log("=== %s" % s)
            getattr(bench, "scenario_" + s)()
        bench.results["seconds"] = time.monotonic() - t0
        bench.save()
        md = report(bench.results)
        (bench.out / "results.md").write_text(md + "\n")
        print(md)
        log("results in %s (%.1f min)" % (bench.out, (time.monotonic() - t0) / 60))
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
