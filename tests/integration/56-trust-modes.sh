#!/usr/bin/env bash
# The trust modes one by one: tofu, ca-or-tofu, the reasons ca gives, two
# processes recording into one known file, identity allow-lists.
. "$(dirname "$0")/harness.sh"
cd "$T"
"$TG_BIN" ca init --dir ca >/dev/null
"$TG_BIN" ca init --dir other >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out k1 >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca ca --out k2 >/dev/null
KS="$T/ks"

# --- tofu (client side): first contact recorded, same key accepted, a new key refused
start_s_server t k1.crt k1.key
P=$PORT_S_t
"$TG_BIN" get "https://localhost:$P/" --trust tofu --known-servers "$KS" >/dev/null || fail "tofu first contact"
grep -q "^localhost:$P sha256:" "$KS" || fail "tofu did not record"
"$TG_BIN" get "https://localhost:$P/" --trust tofu --known-servers "$KS" >/dev/null || fail "tofu same key"
stop_pid "$PID_S_t"
openssl s_server -accept "127.0.0.1:$P" -cert k2.crt -key k2.key -www -quiet >"$T/s_server-t2.log" 2>&1 &
PIDS+=("$!"); wait_port "$P" 10 || fail "s_server k2"
pin1=$(grep "^localhost:$P " "$KS" | cut -d' ' -f2)
pin2=$("$TG_BIN" cert show k2.crt | grep -m1 pin: | awk '{print $2}')
expect_fail "tofu: a new key for a known identity" \
	"THE KEY OF localhost:$P HAS CHANGED: it presented ${pin2//+/\\+}, but $KS:1 expects ${pin1//+/\\+}.*tlsgate trust remove --store known-servers localhost:$P" \
	"$TG_BIN" get "https://localhost:$P/" --trust tofu --known-servers "$KS"
"$TG_BIN" trust remove --file "$KS" "localhost:$P" 2>/dev/null || fail "trust remove"
"$TG_BIN" get "https://localhost:$P/" --trust tofu --known-servers "$KS" >/dev/null || fail "tofu after remove"
grep -q "^localhost:$P $pin2" "$KS" || fail "the new key was not recorded"
pass "tofu: record, accept, refuse a changed key with the remove command; remove lets it in"

# --- tofu (server side): a client's new key under a known name is refused
"$TG_BIN" cert issue --client --name dev1 --ca ca --out dev1a >/dev/null
"$TG_BIN" cert issue --client --name dev1 --ca other --out dev1b >/dev/null
start_tlsgate st --mode mutual --set tls.clients.trust=tofu
curl -sS -k --cert dev1a.crt --key dev1a.key "https://localhost:$PORT_st/files/" >/dev/null || fail "server tofu first"
assert_log "$T/st.log" "recorded dev1 sha256:" "the server records a new client"
curl -sS -k --cert dev1a.crt --key dev1a.key "https://localhost:$PORT_st/files/" >/dev/null || fail "server tofu again"
curl -sS -k --cert dev1b.crt --key dev1b.key "https://localhost:$PORT_st/files/" >/dev/null 2>&1 && fail "server tofu: new key accepted"
assert_log "$T/st.log" "refused client certificate: THE KEY OF dev1 HAS CHANGED" "the server refuses a changed client key"
pass "tofu on the server side"

# --- ca-or-tofu: a CA-valid server is accepted and recorded; a self-signed one only when first
KS2="$T/ks2"
start_s_server v k1.crt k1.key
"$TG_BIN" get "https://localhost:$PORT_S_v/" --trust ca-or-tofu --ca-cert ca/ca.crt --known-servers "$KS2" >/dev/null \
	|| fail "ca-or-tofu valid"
grep -q "^localhost:$PORT_S_v " "$KS2" || fail "ca-or-tofu did not record the valid peer"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ss1.key -out ss1.crt -subj /CN=ss -days 30 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ss2.key -out ss2.crt -subj /CN=ss -days 30 2>/dev/null
start_s_server s ss1.crt ss1.key
P=$PORT_S_s
"$TG_BIN" get "https://localhost:$P/" --trust ca-or-tofu --ca-cert ca/ca.crt --known-servers "$KS2" >/dev/null \
	|| fail "ca-or-tofu: self-signed first contact"
stop_pid "$PID_S_s"
openssl s_server -accept "127.0.0.1:$P" -cert ss2.crt -key ss2.key -www -quiet >"$T/s_server-s2.log" 2>&1 &
PIDS+=("$!"); wait_port "$P" 10 || fail "s_server ss2"
expect_fail "ca-or-tofu: another self-signed key" "HAS CHANGED" \
	"$TG_BIN" get "https://localhost:$P/" --trust ca-or-tofu --ca-cert ca/ca.crt --known-servers "$KS2"
pass "ca-or-tofu"

# --- ca: each failure has its own reason
make_expired_cert ca old
make_dated_cert ca future 20990101000000Z 20991231000000Z
"$TG_BIN" cert issue --client --san dns:localhost --ca ca --out clientcert >/dev/null
"$TG_BIN" cert issue --server --san dns:localhost --ca other --out foreign >/dev/null
for c in old future clientcert foreign; do start_s_server "$c" "$c.crt" "$c.key"; done
expect_fail "ca: expired" "certificate for localhost expired on 2021-01-01" \
	"$TG_BIN" get "https://localhost:$PORT_S_old/" --ca-cert ca/ca.crt
expect_fail "ca: not yet valid" "certificate for localhost is not valid before 2099-01-01" \
	"$TG_BIN" get "https://localhost:$PORT_S_future/" --ca-cert ca/ca.crt
expect_fail "ca: wrong EKU" "certificate for localhost is not meant for this use" \
	"$TG_BIN" get "https://localhost:$PORT_S_clientcert/" --ca-cert ca/ca.crt
expect_fail "ca: unknown issuer" "not a trusted CA" \
	"$TG_BIN" get "https://localhost:$PORT_S_foreign/" --ca-cert ca/ca.crt
start_s_server n k1.crt k1.key
expect_fail "ca: wrong name" "name 127.0.0.1 is not in the certificate's names \(dns:localhost\)" \
	"$TG_BIN" get "https://127.0.0.1:$PORT_S_n/" --ca-cert ca/ca.crt
"$TG_BIN" get "https://127.0.0.1:$PORT_S_n/" --ca-cert ca/ca.crt --server-name localhost >/dev/null \
	|| fail "--server-name did not make the 127.0.0.1 case pass"
pass "ca: expired, not yet valid, wrong EKU, unknown issuer and wrong name each refused in words"

# --- two processes record 200 identities each into one file at once
KC="$T/kc"
pin=$("$TG_BIN" cert show k1.crt | grep -m1 pin: | awk '{print $2}')
( for i in $(seq 200); do "$TG_BIN" trust add --file "$KC" "p1-$i" "$pin" 2>/dev/null || exit 1; done ) &
w1=$!
( for i in $(seq 200); do "$TG_BIN" trust add --file "$KC" "p2-$i" "$pin" 2>/dev/null || exit 1; done ) &
w2=$!
wait $w1 || fail "writer 1 failed"
wait $w2 || fail "writer 2 failed"
[ "$(grep -c '^p[12]-[0-9]* sha256:' "$KC")" = 400 ] || fail "$(grep -c . "$KC") lines, want 400"
[ "$(sort -u "$KC" | wc -l)" = 400 ] || fail "duplicates in the known file"
"$TG_BIN" trust list --file "$KC" >/dev/null || fail "the file is not well-formed after concurrent writes"
pass "two processes recording 200 identities each: all 400 present, well-formed"

# --- allow-lists
"$TG_BIN" cert issue --client --name node-1 --ca ca --out n1 >/dev/null
"$TG_BIN" cert issue --client --name printer --ca ca --out pr >/dev/null
start_tlsgate al --mode mutual --set tls.clients.ca=ca/ca.crt --set "tls.clients.allow=cn:node-*,dns:dev1.lan"
curl -sS -k --cert n1.crt --key n1.key "https://localhost:$PORT_al/files/" >/dev/null || fail "allowed client refused"
curl -sS -k --cert pr.crt --key pr.key "https://localhost:$PORT_al/files/" >/dev/null 2>&1 && fail "client outside the list accepted"
assert_log "$T/al.log" "refused client certificate: printer is trusted but not allowed: it matches none of tls.clients.allow \(cn:node-\*, dns:dev1.lan\)" \
	"a CA-valid client outside the allow-list is refused, the list named"
expect_fail "bad allow pattern" "tls.clients.allow \(--set\): 'node-\*' must start with cn:, dns: or uri:" \
	"$TG_BIN" serve --mode mutual --set "tls.clients.allow=node-*" --state-dir "$T/x"
pass "allow-lists"

# --- a known file that does not parse is an error with file:line, never rewritten
printf 'good sha256:%s\nbroken line here\n' "${pin#sha256:}" >bad-known
expect_fail "malformed known file" "bad-known:2: expected IDENTITY sha256:PIN" \
	"$TG_BIN" get "https://localhost:$PORT_S_n/" --trust tofu --known-servers bad-known
expect_fail "trust add to a malformed file" "bad-known:2" "$TG_BIN" trust add --file bad-known x "$pin"
pass "malformed known files are reported, not rewritten"
# --- trust add: live, by certificate file, by pin; then whitelist accepts
KL="$T/kl"
"$TG_BIN" trust add "localhost:$PORT_S_n" --known-servers "$KL" --file "$KL" 2>/dev/null || fail "trust add live"
"$TG_BIN" get "https://localhost:$PORT_S_n/" --trust whitelist --known-servers "$KL" >/dev/null \
	|| fail "whitelist after a live add"
"$TG_BIN" trust add --store known-clients --cert n1.crt --file "$KL" 2>/dev/null || fail "trust add --cert"
grep -q "^node-1 sha256:" "$KL" || fail "add --cert did not use the certificate's identity"
"$TG_BIN" trust list --file "$KL" | grep -q "^node-1 sha256:.*# added by hand" || fail "trust list"
expect_fail "trust add with a bad pin" "is not a pin" "$TG_BIN" trust add --file "$KL" x sha256:short
expect_fail "trust remove of nothing" "no entry for nobody" "$TG_BIN" trust remove --file "$KL" nobody
pass "trust add (live, by file, by pin), list and remove"
# --- host names are matched in subjectAltName only (RFC 9525 §6.4.4): a
# CA-signed certificate that names localhost only in its subject CN is refused
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cn.key -out cn.csr \
	-subj /CN=localhost 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >cn.ext
openssl x509 -req -in cn.csr -CA ca/ca.crt -CAkey ca/ca.key -CAcreateserial -days 30 -extfile cn.ext \
	-out cn.crt 2>/dev/null || fail "cannot make a CN-only certificate"
start_s_server cn cn.crt cn.key
expect_fail "a name only in the subject CN" "localhost" \
	"$TG_BIN" get "https://localhost:$PORT_S_cn/" --trust ca --ca-cert ca/ca.crt
"$TG_BIN" get "https://localhost:$PORT_S_v/" --trust ca --ca-cert ca/ca.crt >/dev/null ||
	fail "the same CA's certificate with a SAN"
pass "no CN fallback: the CN-only certificate refused, the SAN one accepted"
echo "56-trust-modes: all passed"
