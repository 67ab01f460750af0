#!/usr/bin/env bash
# The etcd backend of the store (issue 14, first part) against a real
# 3-member etcd cluster (Debian's etcd-server) on loopback, with TLS and
# client-certificate auth, certificates from tlsgate's own CA: check, copy
# a node's state in and out byte for byte, refuse to overwrite, locks that
# exclude, free themselves when a holder dies, and fence a holder that
# stalled past its lease; quorum lost and back, in words.
. "$(dirname "$0")/harness.sh"
cd "$T"
LOCKT=${TG_STORELOCK:?TG_STORELOCK must name tests/tools/storelock}

start_etcd_cluster
"$TG_BIN" ca init --dir rogue --name "Rogue CA" >/dev/null
"$TG_BIN" cert issue --client --name intruder --ca rogue --out rogue-node >/dev/null
"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" >check.out 2>check.err || fail "store check: $(cat check.err)"
grep -q "reachable, writable, lockable" check.out || fail "store check: $(cat check.out)"
pass "store check against a 3-member etcd cluster with client-certificate auth"

# a client certificate from another CA is refused by etcd, in words
expect_fail "a foreign client certificate" "etcd at https://127.0.0.1:${C[1]}: .*(etcd refused|may have refused) the client certificate" \
	"$TG_BIN" store check --from "etcd://127.0.0.1:${C[1]}" --set store.ca="$T/eca/ca.crt" \
	--set store.cert="$T/rogue-node.crt" --set store.key="$T/rogue-node.key" --set store.timeout=2s

# ---- a node's state into the cluster and out again, byte for byte ----
"$TG_BIN" ca init --dir st/ca >/dev/null
mkdir -p st/certs
"$TG_BIN" cert issue --server --san dns:node1.lan --ca st/ca --out st/certs/server >/dev/null
mkdir -p st/acme/ca-1234/certs st/files
printf '{"status":"valid"}\n' >st/acme/ca-1234/account.json
head -c 3000 /dev/urandom >st/acme/ca-1234/certs/bin.crt   # any bytes survive
pin=$("$TG_BIN" cert show node.crt | grep -m1 pin: | awk '{print $2}')
"$TG_BIN" trust add --file st/known-clients dev1 "$pin" >/dev/null || fail "trust add"
echo "an uploaded file, not state" >st/files/user.txt
"$TG_BIN" store copy --from folder:st --to "etcd://$EPS" "${S[@]}" >copy.out || fail "copy into etcd: $(cat copy.out)"
grep -q "^copied 7 names" copy.out || fail "copy into etcd: $(cat copy.out)"
"$TG_BIN" store list --from "etcd://$EPS" "${S[@]}" >list.out
grep -qx "ca/ca.key" list.out && grep -qx "known-clients" list.out || fail "store list: $(cat list.out)"
! grep -q "user.txt" list.out || fail "the file service's files were copied as state"
"$TG_BIN" store copy --from "etcd://$EPS" --to folder:back "${S[@]}" >copy2.out || fail "copy out of etcd"
for f in ca/ca.crt ca/ca.key certs/server.crt certs/server.key known-clients acme/ca-1234/account.json \
	acme/ca-1234/certs/bin.crt; do
	cmp -s "st/$f" "back/$f" || fail "$f is not byte-identical after folder -> etcd -> folder"
done
[ "$(stat -c %a back/ca/ca.key)" = 600 ] || fail "a key came back with mode $(stat -c %a back/ca/ca.key)"
pass "folder -> etcd -> folder: 7 names byte-identical, keys 0600, uploads left out"

# ---- overwrite refused unless told ----
"$TG_BIN" store copy --from folder:st --to "etcd://$EPS" "${S[@]}" >copy3.out || fail "an identical copy again"
grep -q "copied 0 names .* (7 already there, identical)" copy3.out || fail "identical copy: $(cat copy3.out)"
"$TG_BIN" trust add --file st/known-clients dev2 "$pin" >/dev/null
expect_fail "copy over other bytes" "known-clients exists on the target with other bytes.*--force" \
	"$TG_BIN" store copy --from folder:st --to "etcd://$EPS" "${S[@]}"
"$TG_BIN" store copy --from folder:st --to "etcd://$EPS" --force "${S[@]}" >/dev/null || fail "--force"
"$TG_BIN" store copy --from "etcd://$EPS" --to folder:back --force "${S[@]}" >/dev/null
cmp -s st/known-clients back/known-clients || fail "--force did not replace"
pass "copy refuses to replace other bytes, --force replaces"

# ---- locks: exclusion, a dead holder, a stalled holder fenced ----
# (an array, not a function: "$!" must be storelock itself, for kill -9 and -STOP)
LK=("$LOCKT" "$HEPS" /tlsgate/ "$T/eca/ca.crt" "$T/node.crt" "$T/node.key")
"${LK[@]}" acme 1500 >a.out & a=$!
sleep 0.5
"${LK[@]}" acme 0 >b.out || fail "second locker: $(cat b.out)"
wait "$a"
ta=$(awk '/^unlocking/ {print $2}' a.out); tb=$(awk '/^locked/ {print $2}' b.out)
[ -n "$ta" ] && [ -n "$tb" ] && [ "$tb" -ge "$ta" ] || fail "both held the lock: A released at $ta, B took it at $tb"
pass "a lock excludes: the second node waited until the first let go"

"${LK[@]}" acme 60000 >a.out & a=$!
for _ in $(seq 50); do grep -q locked a.out && break; sleep 0.1; done
kill -9 "$a"; wait "$a" 2>/dev/null || true
t0=$(date +%s%N)
"${LK[@]}" acme 0 >b.out || fail "the lock of a dead holder never came free: $(cat b.out)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 13000 ] || fail "the dead holder's lock came free after $ms ms"
pass "a holder killed with -9: its lock free after $ms ms (lease 10 s)"

# fencing: A takes the lock and stalls past its lease; B takes it and
# writes; A wakes and tries to write: refused, B's value stays
"${LK[@]}" order-x 1000 result "from-A" >a.out & a=$!
for _ in $(seq 50); do grep -q locked a.out && break; sleep 0.1; done
kill -STOP "$a"
"${LK[@]}" order-x 0 result "from-B" >b.out || fail "B could not take the lock after A's lease ran out: $(cat b.out)"
kill -CONT "$a"
wait "$a" && fail "the stalled holder wrote after losing its lock: $(cat a.out)"
grep -q "refused: result: not written: the lock 'order-x' was lost" a.out || fail "A: $(cat a.out)"
"$TG_BIN" store copy --from "etcd://$EPS" --to folder:final "${S[@]}" >/dev/null
[ "$(cat final/result)" = "from-B" ] || fail "the store holds '$(cat final/result)', want from-B"
pass "a holder stalled past its lease is fenced: its write refused, the newer one stays"

# ---- one member down: nothing fails; two down: refused in words; back ----
kill "$PID_ETCD1"; wait "$PID_ETCD1" 2>/dev/null || true
"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" >/dev/null || fail "one member down failed a check"
kill "$PID_ETCD2"; wait "$PID_ETCD2" 2>/dev/null || true
out=$("$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" 2>&1) && fail "a check passed without quorum"
printf '%s\n' "$out" | grep -qE "the store is unreachable or has lost its quorum" || fail "no quorum: $out"
pass "two of three members down: refused in words ($out)"
start_member 1; start_member 2
ok=0
for _ in $(seq 100); do
	"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" >/dev/null 2>&1 && { ok=1; break; }
	sleep 0.1
done
[ "$ok" = 1 ] || fail "the store did not come back with its members"
pass "quorum back: the store works again without a restart of anything"

# ---- the cluster's CA revokes for every node (issue 17) ----
# n1's CA folder revoked dave before the cluster: the first CRL the cluster
# signs brings that list and number in (nothing revoked comes back)
CS=("${NODE_STORE[@]}" --set store.prefix=/crl/)
"$TG_BIN" ca init --dir n1/ca >/dev/null
for u in alice bob carol dave; do "$TG_BIN" cert issue --client --name $u --ca n1/ca --out $u >/dev/null; done
"$TG_BIN" cert revoke dave.crt --ca n1/ca --reason superseded >/dev/null || fail "revoke dave in the folder"
sn() { openssl x509 -in "$1.crt" -noout -serial | cut -d= -f2; }
BOB=$(sn bob); CAROL=$(sn carol); DAVE=$(sn dave)
CM=$(free_port)
CRLN=(--mode mutual --set tls.auto=local-ca --set tls.clients.trust=ca "${CS[@]}")
start_tlsgate n1 "${CRLN[@]}" --set tls.clients.crl="$T/n1/ca/crl.pem" --set admin.listen=off
wait_log "$T/n1.log" "ca: the CRL of .*/n1/ca signed again" 10 "node 1 signs the cluster's first CRL"
start_tlsgate n2 "${CRLN[@]}" --set tls.clients.crl="$T/n2/ca/crl.pem" --set "admin.listen=127.0.0.1:$CM"
cmp -s n1/ca/ca.crt n2/ca/ca.crt && cmp -s n1/ca/crl.pem n2/ca/crl.pem ||
	fail "node 2 did not take the cluster's CA and CRL"
in_as() {   # NODE USER: the HTTP code of one request as USER
	local p; p=$(eval echo "\$PORT_$1")
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert n1/ca/ca.crt --cert "$2.crt" \
		--key "$2.key" "https://localhost:$p/files/" 2>/dev/null || true
}
crl_no() { openssl crl -in "$1" -noout -text | grep -A1 "X509v3 CRL Number" | tail -1 | tr -d ' '; }
[ "$(crl_no n2/ca/crl.pem)" = 2 ] || fail "the cluster's first CRL is number $(crl_no n2/ca/crl.pem), want 2"
[ "$(in_as n2 dave)" = 000 ] || fail "node 2 let dave in, revoked before the cluster"
wait_log "$T/n2.log" "certificate for dave \(serial $DAVE\) was revoked on .*reason: superseded" 5 \
	"a revocation made before the cluster holds on every node (CRL number 2 after 1)"
for n in n1 n2; do for u in alice bob carol; do
	[ "$(in_as $n $u)" = 200 ] || fail "$u refused by $n before her or his revocation"
done; done
# revoked on node 1's folder: node 2 refuses bob, and serves the same CRL
t0=$(date +%s%N)
"$TG_BIN" cert revoke bob.crt --state-dir n1 "${CS[@]}" --reason keyCompromise >rev.out 2>&1 ||
	fail "cert revoke through the store: $(cat rev.out)"
t1=$(date +%s%N)
wait_log "$T/n2.log" "tls.clients.crl changed on disk: new handshakes are checked against it" 10 \
	"node 2 takes in the CRL node 1's revocation wrote to the store"
echo "measured: cert revoke took $(( (t1 - t0) / 1000000 )) ms; node 2 checks against the new CRL $(( ($(date +%s%N) - t1) / 1000000 )) ms after it returned (polled every 0.1 s)"
[ "$(in_as n2 bob)" = 000 ] || fail "node 2 let revoked bob in"
wait_log "$T/n2.log" "certificate for bob \(serial $BOB\) was revoked on .*reason: key compromise" 5 \
	"node 2 refuses bob, revoked through node 1's folder, in words"
[ "$(in_as n2 alice)" = 200 ] || fail "node 2 refused alice after bob's revocation"
# revoked through node 2: one list, one number sequence (2, bob 3, carol 4)
mk=$(log_mark "$T/n1.log" "tls.clients.crl changed on disk")
mk2=$(log_mark "$T/n2.log" "tls.clients.crl changed on disk")
"$TG_BIN" cert revoke carol.crt --state-dir n2 "${CS[@]}" --reason superseded >rev.out 2>&1 ||
	fail "cert revoke on node 2: $(cat rev.out)"
for _ in $(seq 50); do cmp -s n1/ca/crl.pem n2/ca/crl.pem && break; sleep 0.1; done
cmp -s n1/ca/crl.pem n2/ca/crl.pem || fail "the nodes hold different CRLs"
txt=$(openssl crl -in n1/ca/crl.pem -noout -text)
for x in "$BOB" "$CAROL" "$DAVE"; do grep -q "Serial Number: $x" <<<"$txt" || fail "$x lost: $txt"; done
[ "$(crl_no n1/ca/crl.pem)" = 4 ] || fail "CRL number $(crl_no n1/ca/crl.pem), want 4"
openssl crl -in n1/ca/crl.pem -CAfile n1/ca/ca.crt -noout -verify 2>&1 | grep -q "verify OK" ||
	fail "openssl crl -verify on the cluster's CRL"
curl -s "http://127.0.0.1:$CM/crl" | openssl crl -inform DER -noout -text | grep -q "Serial Number: $CAROL" ||
	fail "node 2's admin listener serves an old CRL"
wait_new_log "$T/n1.log" "tls.clients.crl changed on disk" "$mk" 10 "node 1 takes in node 2's revocation"
wait_new_log "$T/n2.log" "tls.clients.crl changed on disk" "$mk2" 10 "node 2 takes in its own"
for n in n1 n2; do
	[ "$(in_as $n carol)" = 000 ] || fail "$n let carol in after her revocation on node 2"
	wait_log "$T/$n.log" "certificate for carol \(serial $CAROL\) was revoked on .*reason: superseded" 5 \
		"$n refuses carol in words"
	[ "$(in_as $n alice)" = 200 ] || fail "$n refused alice after carol's revocation"
done
pass "the cluster's CA: revoked through either node, both refuse, one CRL (number 4: dave, bob, carol; verify OK)"
# the store out of reach: refused in words, nothing changed
cp n1/ca/crl.pem crl.before
expect_fail "revoke with the store out of reach" "the CA's lock in the cluster's store: etcd at https://127.0.0.1:1: .*; nothing was changed" \
	"$TG_BIN" cert revoke alice.crt --state-dir n1 "${NODE_STORE[@]}" --set store.prefix=/crl/ \
	--set store.endpoints=https://127.0.0.1:1
cmp -s n1/ca/crl.pem crl.before || fail "the CRL changed although the store was out of reach"
stop_pid "$PID_n1"; stop_pid "$PID_n2"

# ---- etcd RBAC: the node's user may use its prefix, and nothing else ----
# etcd's JSON gateway does not hand a client certificate's CN to RBAC, so
# the node logs in as an etcd user (store.user, store.password_file) on
# top of its client certificate.
ECTL=(etcdctl --endpoints="$HEPS" --cacert=eca/ca.crt --cert=node.crt --key=node.key)
{
	"${ECTL[@]}" user add root --new-user-password=rootpw --interactive=false &&
	"${ECTL[@]}" role add tlsgate &&
	"${ECTL[@]}" role grant-permission tlsgate --prefix=true readwrite /rbac/ &&
	"${ECTL[@]}" user add tlsgate-node --new-user-password=nodepw --interactive=false &&
	"${ECTL[@]}" user grant-role tlsgate-node tlsgate &&
	"${ECTL[@]}" user add stranger --new-user-password=strangerpw --interactive=false &&
	"${ECTL[@]}" auth enable
} >rbac.out 2>&1 || fail "etcd RBAC setup: $(cat rbac.out)"
# with auth on, etcd's JSON gateway refuses a client certificate that has a
# CN (it would not be used): the node's certificate names it by SAN alone
"$TG_BIN" cert issue --client --no-cn --san dns:tlsgate-node --ca eca --out nocn >/dev/null
openssl x509 -in nocn.crt -noout -subject | grep -q "CN" && fail "--no-cn left a CN: $(openssl x509 -in nocn.crt -noout -subject)"
S=(--set store.ca="$T/eca/ca.crt" --set store.cert="$T/nocn.crt" --set store.key="$T/nocn.key" --set store.timeout=3s)
printf 'nodepw\n' >node.pw; chmod 600 node.pw
printf 'wrong\n' >wrong.pw; chmod 600 wrong.pw
printf 'strangerpw\n' >stranger.pw; chmod 600 stranger.pw
R=(--set store.prefix=/rbac/ --set store.user=tlsgate-node --set store.password_file="$T/node.pw")
"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" "${R[@]}" >check.out 2>check.err ||
	fail "store check with a role on /rbac/: $(cat check.err)"
grep -q "reachable, writable, lockable" check.out || fail "store check under RBAC: $(cat check.out)"
"$TG_BIN" store copy --from folder:st --to "etcd://$EPS" "${S[@]}" "${R[@]}" >/dev/null ||
	fail "store copy into the node's prefix under RBAC"
RS=(--state-dir "$T/rbac-cli" --set store.backend=etcd --set "store.endpoints=$HEPS" "${S[@]}" "${R[@]}")
"$TG_BIN" trust add --store known-clients "${RS[@]}" dev9 "$pin" 2>/dev/null ||
	fail "trust add (a pin key, a transaction) under RBAC"
"$TG_BIN" trust list --store known-clients "${RS[@]}" | grep -q "^dev9 " || fail "trust list under RBAC"
start_tlsgate rb --mode mutual --set tls.clients.trust=tofu --set store.backend=etcd \
	--set "store.endpoints=$HEPS" "${S[@]}" "${R[@]}" --set admin.listen=off
grep -q "^dev9 " rb/known-clients.pins || fail "the node did not copy the pins under RBAC: $(ls rb)"
# the watch works under RBAC too: a pin added now reaches the node
"$TG_BIN" trust add --store known-clients "${RS[@]}" dev10 "$pin" 2>/dev/null || fail "trust add dev10"
for _ in $(seq 50); do grep -q "^dev10 " rb/known-clients.pins && break; sleep 0.1; done
grep -q "^dev10 " rb/known-clients.pins || fail "the node's watch did not bring dev10 under RBAC"
# and the node records a first contact (a transaction, from the sandbox)
code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 --cert rogue-node.crt --key rogue-node.key \
	"https://127.0.0.1:$PORT_rb/files/")
[ "$code" = 200 ] || fail "a first contact on the node under RBAC: $code ($(tail -2 rb.log))"
"$TG_BIN" trust list --store known-clients "${RS[@]}" | grep -q "^intruder " ||
	fail "the first contact is not in the store under RBAC"
pass "etcd RBAC: a node logged in as a user with readwrite on its prefix checks, copies, pins, serves, watches and records first contacts"
stop_pid "$PID_rb"
expect_fail "a certificate with a CN once auth is on" "refused the client certificate: etcd auth is on, and its JSON gateway takes no certificate with a CN.*--no-cn" \
	"$TG_BIN" store check --from "etcd://$EPS" --set store.ca="$T/eca/ca.crt" --set store.cert="$T/node.crt" \
	--set store.key="$T/node.key" "${R[@]}"
expect_fail "a prefix the user's role does not cover" "refused: .*permission denied.*no role with readwrite on store.prefix" \
	"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" "${R[@]}" --set store.prefix=/elsewhere/
expect_fail "a user with no role" "refused: .*permission denied" \
	"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" --set store.prefix=/rbac/ \
	--set store.user=stranger --set store.password_file="$T/stranger.pw"
expect_fail "a wrong password" "etcd refused the user 'tlsgate-node' \(store.user\): authentication failed" \
	"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" "${R[@]}" --set store.password_file="$T/wrong.pw"
chmod 644 node.pw
expect_fail "a password file others can read" "node.pw: open to others \(mode 644\): chmod 600 it" \
	"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" "${R[@]}"
chmod 600 node.pw
expect_fail "auth on, no user given" "user name is empty \(etcd auth is on: set store.user and store.password_file" \
	"$TG_BIN" store check --from "etcd://$EPS" "${S[@]}" --set store.prefix=/rbac/
