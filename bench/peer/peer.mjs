// The yardstick of `make bench`: what a competent Node.js developer writes to
// turn new IMAP mail into webhooks with ImapFlow. Same job and semantics as
// imaphook's "New Emails" trigger, state in memory:
//
// - one ImapFlow client per account, shared by that account's mailboxes
//   (mailbox locks serialise them); per mailbox a STATUS (UIDNEXT UIDVALIDITY
//   MESSAGES) every `interval` seconds (+-5%, first polls spread over 0.2 ms
//   per mailbox, at most 2 s, as imaphook does), and when UIDNEXT moved, EXAMINE + UID FETCH of the new UIDs in
//   windows of 500 (envelope, flags, size, internal date; with fetchContent
//   also BODY.PEEK[]<0.maxContentSize> parsed by mailparser);
// - start_from "all" or "now", UIDVALIDITY change = one mailbox.reset event;
// - one JSON POST per message (the same body as imaphook's, Standard
//   Webhooks headers and HMAC signature) over undici's keep-alive pool, in
//   UID order per mailbox (one request in flight per mailbox, like
//   imaphook's per-trigger queue), at most `maxInflight` in all; 408, 429,
//   5xx and network errors are retried with back-off, other 4xx dropped;
//   a mailbox fetches its next window while the previous one is being
//   posted, with at most two windows (1,000 events) waiting;
// - mode "idle": one extra ImapFlow client per mailbox keeps it open
//   read-only with ImapFlow's IDLE; an EXISTS notification polls that
//   mailbox at once (the timer stays as the safety re-check).
//
// usage: node peer.mjs CONFIG.json      (see bench/run.py for the keys)
// It writes its counters to config.statsFile twice a second, and exits 0 on
// SIGTERM/SIGINT after logging out.

import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import libmime from 'libmime';
import { Agent, request } from 'undici';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const BATCH = 500;
const HIGH_WATER = 2 * BATCH;
const maxContentSize = cfg.maxContentSize || 4 * 1024 * 1024;
const ca = cfg.ca ? readFileSync(cfg.ca) : undefined;

const stats = {
    pid: process.pid, triggers: 0, firstPollsDone: 0, polls: 0, pollErrors: 0,
    queued: 0, posted: 0, postErrors: 0, dropped: 0, idleWatching: 0
};

// ---------------------------------------------------------------- webhook

const url = new URL(cfg.webhook);
const dispatcher = new Agent({
    keepAliveTimeout: 60_000,
    connections: cfg.maxInflight || 32,
    pipelining: 1
});
const secret = cfg.secret
    ? (cfg.secret.startsWith('whsec_') ? Buffer.from(cfg.secret.slice(6), 'base64') : Buffer.from(cfg.secret))
    : null;

let inflight = 0;
const slotWaiters = [];
async function slot() {
    if (inflight < (cfg.maxInflight || 32)) {
        inflight++;
        return;
    }
    await new Promise(resolve => slotWaiters.push(resolve));
}
function unslot() {
    const next = slotWaiters.shift();
    if (next) next(); else inflight--;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function post(event) {
    const body = JSON.stringify(event);
    for (let attempt = 1; !stopping; attempt++) {
        const ts = Math.floor(Date.now() / 1000).toString();
        const headers = {
            'content-type': 'application/json',
            'user-agent': 'bench-peer/1.0',
            'webhook-id': event.id,
            'webhook-timestamp': ts
        };
        if (secret) {
            headers['webhook-signature'] = 'v1,' +
                createHmac('sha256', secret).update(`${event.id}.${ts}.${body}`).digest('base64');
        }
        let status = 0;
        await slot();
        try {
            const res = await request(url, { method: 'POST', headers, body, dispatcher });
            status = res.statusCode;
            await res.body.dump();
        } catch {
            status = 0;
        } finally {
            unslot();
        }
        if (status >= 200 && status <= 299) {
            stats.posted++;
            return;
        }
        if (status !== 0 && status !== 408 && status !== 429 && status < 500) {
            stats.dropped++;        // permanent: no dead-letter store in memory
            return;
        }
        stats.postErrors++;
        await sleep(Math.min(300_000, 1000 * 2 ** (attempt - 1)) * (1 + Math.random() / 4));
    }
}

// ---------------------------------------------------------------- events

const iso = d => (d instanceof Date && !isNaN(d) ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : null);
const addrs = list => (list || []).map(a => ({ name: a.name || null, address: a.address || null }));

function baseEvent(t, type, id) {
    return {
        type, id, timestamp: iso(new Date()), trigger: t.name,
        connection: t.account.name, mailbox: t.mailbox
    };
}

async function contentOf(source, size) {
    const mail = await simpleParser(source, {
        skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true
    });
    const content = {
        headers: (mail.headerLines || []).map(h => {
            const colon = h.line.indexOf(':');
            const value = h.line.slice(colon + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
            let decoded = value;
            try { decoded = libmime.decodeWords(value); } catch { /* keep it raw */ }
            return { name: h.line.slice(0, colon), value: decoded };
        }),
        text: mail.text ?? null,
        html: typeof mail.html === 'string' ? mail.html : null,
        attachments: mail.attachments.map(a => ({
            partId: a.partId || null, filename: a.filename || null, contentType: a.contentType,
            size: a.size, disposition: a.contentDisposition || null, contentId: a.contentId || null
        })),
        truncated: size > source.length
    };
    return content;
}

async function messageEvent(t, uidValidity, msg) {
    const env = msg.envelope || {};
    const ev = baseEvent(t, 'email.new', `${t.name}:${uidValidity}:${msg.uid}`);
    ev.uidValidity = uidValidity;
    ev.uid = msg.uid;
    ev.flags = [...(msg.flags || [])].filter(f => f.toLowerCase() !== '\\recent');
    ev.size = msg.size ?? null;
    ev.internalDate = iso(msg.internalDate instanceof Date ? msg.internalDate : new Date(msg.internalDate));
    ev.envelope = {
        date: iso(env.date), subject: env.subject ?? null, messageId: env.messageId ?? null,
        inReplyTo: env.inReplyTo ?? null, from: addrs(env.from), sender: addrs(env.sender),
        replyTo: addrs(env.replyTo), to: addrs(env.to), cc: addrs(env.cc), bcc: addrs(env.bcc)
    };
    if (t.fetchContent) ev.content = await contentOf(msg.source || Buffer.alloc(0), msg.size || 0);
    return ev;
}

// ---------------------------------------------------------------- triggers

let stopping = false;

class Trigger {
    constructor(account, mailbox) {
        this.account = account;
        this.mailbox = mailbox;
        this.name = `${account.name}-${mailbox}`.replace(/[^A-Za-z0-9_.-]/g, '_');
        this.fetchContent = !!cfg.fetchContent;
        this.state = null;          // { uidValidity, lastUid } once baselined
        this.queue = [];            // events waiting to be posted, in UID order
        this.sending = false;
        this.spaceWaiters = [];
        this.polling = false;
        this.again = false;
        this.timer = null;
        this.firstDone = false;
        stats.triggers++;
    }

    schedule(ms) {
        clearTimeout(this.timer);
        if (!stopping) this.timer = setTimeout(() => this.poll(), ms);
    }

    start() {
        // imaphook's rule: 0.2 ms per trigger starting, at most 2 s
        this.schedule(Math.random() * Math.min(cfg.interval * 1000, 2000, triggers.length / 5));
    }

    enqueue(ev) {
        this.queue.push(ev);
        stats.queued++;
        if (!this.sending) this.sendLoop();
    }

    async sendLoop() {
        this.sending = true;
        while (this.queue.length && !stopping) {
            await post(this.queue[0]);
            this.queue.shift();
            if (this.queue.length < HIGH_WATER) this.spaceWaiters.splice(0).forEach(r => r());
        }
        this.sending = false;
    }

    async space() {
        while (this.queue.length >= HIGH_WATER && !stopping) {
            await new Promise(resolve => this.spaceWaiters.push(resolve));
        }
    }

    // Called by the timer and by IDLE notifications.
    async poll() {
        if (this.polling) {
            this.again = true;
            return;
        }
        this.polling = true;
        clearTimeout(this.timer);
        let ok = false;
        try {
            await this.pollOnce();
            ok = true;
        } catch (err) {
            stats.pollErrors++;
            if (!stopping) console.error(`peer: ${this.name}: poll failed: ${err.message}`);
        }
        this.polling = false;
        stats.polls++;
        if (!this.firstDone) {
            this.firstDone = true;
            stats.firstPollsDone++;
        }
        if (this.again && ok) {
            this.again = false;
            this.schedule(0);
        } else {
            this.schedule(ok ? cfg.interval * 1000 * (0.95 + Math.random() * 0.1) : 5000);
        }
    }

    async pollOnce() {
        const client = await this.account.ready();
        const st = await client.status(this.mailbox, { uidNext: true, uidValidity: true, messages: true });
        if (!st) throw new Error(`STATUS ${this.mailbox} refused`);
        const uidValidity = Number(st.uidValidity);
        if (this.state === null) {
            this.state = { uidValidity, lastUid: cfg.startFrom === 'all' ? 0 : st.uidNext - 1 };
        } else if (this.state.uidValidity !== uidValidity) {
            const ev = baseEvent(this, 'mailbox.reset', `${this.name}:${uidValidity}:reset`);
            ev.uidValidity = uidValidity;
            ev.previousUidValidity = this.state.uidValidity;
            this.enqueue(ev);
            this.state = { uidValidity, lastUid: cfg.startFrom === 'all' ? 0 : st.uidNext - 1 };
        }
        if (st.uidNext - 1 <= this.state.lastUid) return;       // nothing new: one round trip
        await this.fetchNew(client, st.uidNext, uidValidity);
    }

    async fetchNew(client, uidNext, uidValidity) {
        const query = { uid: true, flags: true, size: true, internalDate: true, envelope: true };
        if (this.fetchContent) query.source = { maxLength: maxContentSize };
        for (;;) {
            const lo = this.state.lastUid + 1;
            if (lo >= uidNext) break;
            const range = uidNext - lo > BATCH ? `${lo}:${lo + BATCH - 1}` : `${lo}:*`;
            await this.space();
            const msgs = [];
            const lock = await client.getMailboxLock(this.mailbox, { readOnly: true });
            try {
                if (client.mailbox.uidValidity !== undefined && Number(client.mailbox.uidValidity) !== uidValidity) {
                    throw new Error(`UIDVALIDITY of ${this.mailbox} changed during the poll`);
                }
                for await (const msg of client.fetch(range, query, { uid: true })) {
                    if (msg.uid > this.state.lastUid && msg.uid >= lo) msgs.push(msg);
                }
            } finally {
                lock.release();
            }
            msgs.sort((a, b) => a.uid - b.uid);
            let last = this.state.lastUid;
            for (const msg of msgs) {
                this.enqueue(await messageEvent(this, uidValidity, msg));
                last = msg.uid;
            }
            // a window with nothing in it (expunged UIDs) still moves on
            this.state.lastUid = range.endsWith('*') ? Math.max(last, this.state.lastUid)
                : Math.max(last, lo + BATCH - 1);
            if (range.endsWith('*')) break;
        }
    }
}

// ---------------------------------------------------------------- accounts

function newClient(account) {
    const client = new ImapFlow({
        host: cfg.host, port: cfg.port, secure: cfg.secure !== false,
        auth: { user: account.user, pass: account.pass },
        tls: { ca, servername: 'localhost' },
        logger: false,
        disableAutoIdle: true,          // pollers: no IDLE between polls
        socketTimeout: 5 * 60_000
    });
    client.on('error', err => {
        if (!stopping) console.error(`peer: ${account.name}: ${err.message}`);
    });
    return client;
}

class Account {
    constructor(spec) {
        this.name = spec.name;
        this.user = spec.user;
        this.pass = spec.pass;
        this.client = null;
        this.connecting = null;
        this.failures = 0;
        this.triggers = spec.mailboxes.map(m => new Trigger(this, m));
    }

    // The account's connected client, (re)connecting with back-off.
    async ready() {
        if (this.client && this.client.usable) return this.client;
        if (!this.connecting) {
            this.connecting = (async () => {
                for (;;) {
                    const client = newClient(this);
                    try {
                        await client.connect();
                        this.failures = 0;
                        client.on('close', () => { if (this.client === client) this.client = null; });
                        this.client = client;
                        return client;
                    } catch (err) {
                        if (stopping) throw err;
                        this.failures++;
                        console.error(`peer: ${this.name}: cannot connect: ${err.message}`);
                        await sleep(Math.min(60_000, 1000 * 2 ** (this.failures - 1)));
                    }
                }
            })().finally(() => { this.connecting = null; });
        }
        return this.connecting;
    }
}

// mode "idle": a client per mailbox, mailbox open read-only, ImapFlow's IDLE
async function watch(trigger) {
    for (let failures = 0; !stopping;) {
        const client = new ImapFlow({
            host: cfg.host, port: cfg.port, secure: cfg.secure !== false,
            auth: { user: trigger.account.user, pass: trigger.account.pass },
            tls: { ca, servername: 'localhost' },
            logger: false
        });
        client.on('error', () => {});
        try {
            await client.connect();
            await client.mailboxOpen(trigger.mailbox, { readOnly: true });
            client.on('exists', () => trigger.poll());
            stats.idleWatching++;
            failures = 0;
            trigger.poll();         // anything that came while we were away
            while (!stopping && client.usable) {
                await client.idle();
            }
            stats.idleWatching--;
        } catch (err) {
            if (stopping) break;
            console.error(`peer: ${trigger.name}: IDLE watcher: ${err.message}`);
        }
        client.close();
        failures++;
        if (!stopping) await sleep(Math.min(60_000, 1000 * 2 ** (failures - 1)));
    }
}

// ---------------------------------------------------------------- main

const accounts = cfg.accounts.map(a => new Account(a));
const triggers = accounts.flatMap(a => a.triggers);

function writeStats() {
    const mem = process.memoryUsage();
    const tmp = cfg.statsFile + '.tmp';
    writeFileSync(tmp, JSON.stringify({ ...stats, rss: mem.rss, heapUsed: mem.heapUsed, t: Date.now() / 1000 }));
    renameSync(tmp, cfg.statsFile);
}
const statsTimer = cfg.statsFile ? setInterval(writeStats, 500) : null;

for (const t of triggers) t.start();
if (cfg.mode === 'idle') for (const t of triggers) watch(t);

async function shutdown() {
    if (stopping) return;
    stopping = true;
    for (const t of triggers) clearTimeout(t.timer);
    if (statsTimer) {
        clearInterval(statsTimer);
        writeStats();
    }
    const all = accounts.map(a => a.client).filter(Boolean);
    await Promise.race([
        Promise.allSettled(all.map(c => c.logout())),
        sleep(3000)
    ]);
    process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
