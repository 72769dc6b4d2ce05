-- wrk script of `make bench`: POSTs a typical email.new event (envelope only,
-- about 1 KiB, the Standard Webhooks headers imaphook sends) to the receiver.
--   wrk -t2 -c20 -d10s -s bench/post.lua http://127.0.0.1:PORT/wrk
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "imaphook/0.1.0"
wrk.headers["webhook-id"] = "bench-a01-Box01:1795653631:42"
wrk.headers["webhook-timestamp"] = "1795653631"
wrk.headers["webhook-signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
wrk.body = '{"type":"email.new","id":"bench-a01-Box01:1795653631:42",' ..
  '"timestamp":"2026-11-26T00:40:31Z","trigger":"bench-a01-Box01","connection":"a01",' ..
  '"mailbox":"Box01","uidValidity":1795653631,"uid":42,"flags":["\\\\Seen"],"size":5123,' ..
  '"internalDate":"2026-11-26T00:40:29Z","envelope":{"date":"2026-11-26T00:40:00Z",' ..
  '"subject":"Grüße aus Berlin: Angebot Nr. 4711 für das zweite Quartal",' ..
  '"messageId":"<bench-0042-a01-Box01@bench.example>","inReplyTo":null,' ..
  '"from":[{"name":"Bob Example","address":"bob@example.com"}],' ..
  '"sender":[{"name":"Bob Example","address":"bob@example.com"}],' ..
  '"replyTo":[{"name":"Bob Example","address":"bob@example.com"}],' ..
  '"to":[{"name":"Support","address":"support@example.org"},' ..
  '{"name":"Alice Müller","address":"alice@example.org"}],' ..
  '"cc":[{"name":"Carol","address":"carol@example.net"}],"bcc":[]}}'

-- BENCH_BODY=FILE: post that file's content instead (bench/run.py writes a
-- typical envelope-only and a typical fetch_content body).
local file = os.getenv("BENCH_BODY")
if file then
  local f = assert(io.open(file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
