#!/usr/bin/env bash
# The file service over plain HTTP (tls.mode off), driven by curl: PUT raw,
# chunked and multipart, GET with Range, HEAD, DELETE, keep-alive, limits,
# and every traversal attempt stays inside files.root.
. "$(dirname "$0")/harness.sh"
cd "$T"
start_tlsgate srv --mode off --set files.max_upload=1MiB
U="http://127.0.0.1:$PORT_srv/files"
ROOT="$T/srv/files"

printf 'hello world\n' >hello.txt
code=$(curl -sS -o put.out -w '%{http_code}' -T hello.txt "$U/hello.txt")
[ "$code" = 201 ] || fail "PUT new: $code"
code=$(curl -sS -o put.out -w '%{http_code}' -T hello.txt "$U/hello.txt")
[ "$code" = 200 ] || fail "PUT replace: $code"
cmp -s hello.txt "$ROOT/hello.txt" || fail "stored bytes differ"
[ "$(curl -sS "$U/hello.txt")" = "hello world" ] || fail "GET"
[ "$(curl -sS -r 6-10 "$U/hello.txt")" = "world" ] || fail "Range 6-10"
[ "$(curl -sS -r -6 "$U/hello.txt")" = "world" ] || fail "suffix Range"
code=$(curl -sS -o /dev/null -w '%{http_code}' -r 100-200 "$U/hello.txt")
[ "$code" = 416 ] || fail "unsatisfiable Range: $code"
curl -sS -I "$U/hello.txt" >head.txt
grep -qi "^Content-Length: 12" head.txt || fail "HEAD length"
grep -qi "^Last-Modified:" head.txt || fail "HEAD Last-Modified"
grep -qi "^Accept-Ranges: bytes" head.txt || fail "HEAD Accept-Ranges"
pass "PUT, GET, Range, HEAD"

# nested paths create folders; listing of a folder
curl -sS -T hello.txt "$U/a/b/c.txt" >/dev/null
[ -f "$ROOT/a/b/c.txt" ] || fail "nested PUT"
curl -sS "$U/a/" | grep -qx "b/" || fail "listing"

# chunked upload (curl streams stdin chunked)
head -c 300000 /dev/urandom >r.bin
curl -sS -T - -H "Transfer-Encoding: chunked" "$U/chunked.bin" <r.bin >/dev/null
cmp -s r.bin "$ROOT/chunked.bin" || fail "chunked upload differs"
# multipart, as curl -F sends it
curl -sS -F "file=@r.bin" -F "note=x" "$U/multi.bin" >/dev/null
cmp -s r.bin "$ROOT/multi.bin" || fail "multipart upload differs"
curl -sS -F "note=first" -F "file=@hello.txt" "$U/multi2.txt" >/dev/null
cmp -s hello.txt "$ROOT/multi2.txt" || fail "multipart with a field first"
curl -sS -X PUT -F "file=@hello.txt" "$U/multi3.txt" >/dev/null
cmp -s hello.txt "$ROOT/multi3.txt" || fail "multipart PUT"
# Expect: 100-continue
curl -sS -H "Expect: 100-continue" -T r.bin "$U/expect.bin" >/dev/null
cmp -s r.bin "$ROOT/expect.bin" || fail "100-continue upload"
pass "chunked, multipart and 100-continue uploads"

# keep-alive: two requests on one connection
curl -sS -v "$U/hello.txt" "$U/hello.txt" -o /dev/null -o /dev/null 2>curl.err
grep -q "Re-using existing connection" curl.err || fail "keep-alive not used"
pass "keep-alive"

# DELETE
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$U/multi3.txt")
[ "$code" = 204 ] && [ ! -e "$ROOT/multi3.txt" ] || fail "DELETE: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$U/multi3.txt")
[ "$code" = 404 ] || fail "DELETE missing: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$U/nope.txt")
[ "$code" = 404 ] || fail "GET missing: $code"
pass "DELETE and 404"

# limits
head -c 2000000 /dev/zero >big.bin
code=$(curl -sS -o /dev/null -w '%{http_code}' -T big.bin "$U/big.bin")
[ "$code" = 413 ] || fail "over max_upload: $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -T - -H "Transfer-Encoding: chunked" "$U/big2.bin" <big.bin)
[ "$code" = 413 ] || fail "chunked over max_upload: $code"
[ ! -e "$ROOT/big.bin" ] && [ ! -e "$ROOT/big2.bin" ] || fail "an over-size body was stored"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)" "$U/hello.txt")
[ "$code" = 431 ] || fail "huge header: $code"
pass "413 over files.max_upload, 431 over the header limit"

# traversal: nothing outside the root is read, written or removed
echo secret >"$T/outside.txt"
mkdir -p "$T/outdir"
ln -s "$T/outdir" "$ROOT/link"
ln -s "$T/outside.txt" "$ROOT/filelink"
snap() { find "$T" -path "$ROOT" -prune -o -path "$T/home" -prune -o -type f -newer "$T/hello.txt" -print -o -type d -print | grep -vE "\.(log|txt)$|/resp.txt$" | sort | xargs -d "\n" ls -ld --time-style=+%s; }
snap >"$HOME/before.snap"
for path in "../outside.txt" "%2e%2e/outside.txt" "%2E%2E%2Foutside.txt" "a/../../outside.txt" \
	"..%2foutside.txt" "/$T/outside.txt" "%2f$T/outside.txt" "link/x.txt" "filelink" "a/%00x" \
	".%2e/outside.txt" "a//b.txt" "./hello.txt" ".tlsgate-upload-1"; do
	for m in GET PUT DELETE; do
		code=$(curl -sS --path-as-is -o "$HOME/resp.txt" -w '%{http_code}' -X $m --data-binary @hello.txt "$U/$path")
		case "$code" in 400|403|404|409) ;; *) fail "$m $path answered $code: $(cat "$HOME/resp.txt")";; esac
	done
done
snap >"$HOME/after.snap"
diff "$HOME/before.snap" "$HOME/after.snap" >&2 || fail "something outside the root changed"
[ "$(cat "$T/outside.txt")" = secret ] || fail "outside file changed"
[ -z "$(ls "$T/outdir")" ] || fail "a file was written through the symlink"
pass "traversal attempts (.., encoded, absolute, symlinks) stay inside files.root"

# malformed requests get 400 and the server keeps serving
printf 'GARBAGE\r\n\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_srv; cat >&3; cat <&3" | head -1 | grep -q " 400 " \
	|| fail "garbage request"
printf 'PUT /files/x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc' | \
	timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT_srv; cat >&3; cat <&3" | head -1 | grep -q " 400 " \
	|| fail "CL + TE accepted"
[ "$(curl -sS "$U/hello.txt")" = "hello world" ] || fail "server stopped serving"
pass "malformed requests answered 400; service continues"
assert_log "$T/srv.log" '"PUT /files/hello.txt" 201' "a log line per request"

# slow clients time out; the server keeps serving others
start_tlsgate slow --mode off --set timeouts.header=1s --set timeouts.body=1s
exec 5<>"/dev/tcp/127.0.0.1/$PORT_slow"
printf 'GET /files/ HTTP/1.1\r\nHost: a\r\n' >&5       # never finishes the head
exec 6<>"/dev/tcp/127.0.0.1/$PORT_slow"
printf 'PUT /files/slow.txt HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc' >&6   # stalls in the body
curl -sS "http://127.0.0.1:$PORT_slow/files/" >/dev/null || fail "serving others while two clients stall"
t0=$(date +%s%N)
head -1 <&5 | grep -q " 408 " || fail "slow head: no 408"
head -1 <&6 | grep -q " 408 " || fail "slow body: no 408"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 3000 ] || fail "timeouts took $ms ms"
exec 5<&- 6<&-
[ ! -e "$T/slow/files/slow.txt" ] || fail "a timed-out upload was stored"
ls -A "$T/slow/files" | grep -q tlsgate-upload && fail "a timed-out upload left a temp file"
pass "slow head and slow body get 408 within the timeout; nothing stored"
echo "30-files-http: all passed"
