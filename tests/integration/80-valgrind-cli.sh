#!/usr/bin/env bash
# The CLI paths under valgrind: no leak, no invalid access. (Skipped in the
# sanitizer build, where ASan/LSan already watch every run.)
. "$(dirname "$0")/harness.sh"
if [ "${TG_SANITIZE:-OFF}" = ON ]; then echo "skipped under ASan: LSan covers it"; exit 0; fi
command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/deps.sh --test installs it)"
cd "$T"
vg() {
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 --log-file="$T/vg.%p.log" "$TG_BIN" "$@" >/dev/null 2>&1
	local rc=$?
	[ "$rc" != 99 ] || { cat "$T"/vg.*.log >&2; fail "valgrind found errors in: tlsgate $*"; }
	return $rc
}
vg ca init --dir ca || fail "ca init"
vg cert issue --server --san dns:localhost,ip:127.0.0.1 --ca ca --out srv || fail "issue"
vg cert issue --client --name c1 --ca ca --key rsa-2048 --out cli || fail "issue rsa"
vg cert csr --new-key ec-p384 --name child --out child.csr || fail "csr"
vg cert sign --client --csr child.csr --ca ca --out child.crt || fail "sign"
vg cert show srv.crt --ca-cert ca/ca.crt || fail "show"
vg cert check srv.crt || fail "check"
vg cert check srv.crt --days 1000 && fail "check --days 1000"
printf 'tls:\n  mode: server # c\n' >c.yaml
vg config set tls.clients.ca /x --config c.yaml || fail "config set"
vg config list --config c.yaml || fail "config list"
vg config get tls.mode --config c.yaml || fail "config get"
vg serve --set tls.mode=bad && fail "bad serve"
mkdir -p st && cp -r ca st/ca
vg store copy --from folder:st --to folder:st2 || fail "store copy"
vg store copy --from folder:st --to folder:st2 || fail "store copy again"
vg store list --from folder:st2 || fail "store list"
vg store check --from folder:st2 || fail "store check"
vg store copy --from etcd://127.0.0.1:1 --to folder:st3 --set store.timeout=300ms && fail "store copy from nothing"
vg cert sign --client --csr c.yaml --ca ca --out x.crt && fail "bad csr"
start_tlsgate s --cert srv.crt --key srv.key
echo hi >hi.txt
vg put "https://localhost:$PORT_s/files/hi.txt" hi.txt --ca-cert ca/ca.crt || fail "put"
vg get "https://localhost:$PORT_s/files/hi.txt" --ca-cert ca/ca.crt -o got.txt || fail "get"
vg get "https://localhost:$PORT_s/files/none" --ca-cert ca/ca.crt && fail "get 404"
vg get "https://127.0.0.1:$PORT_s/files/hi.txt" --ca-cert ca/ca.crt --server-name other.lan && fail "get bad name"
vg cert show "127.0.0.1:$PORT_s" --ca-cert ca/ca.crt --server-name localhost || fail "show live"
pin=$(grep -m1 pin: <("$TG_BIN" cert show srv.crt) | awk '{print $2}')
vg trust add --file ks node1 "$pin" || fail "trust add"
vg trust list --file ks || fail "trust list"
vg get "https://localhost:$PORT_s/files/hi.txt" --trust tofu --known-servers ks2 || fail "get tofu"
vg get "https://localhost:$PORT_s/files/hi.txt" --trust whitelist --known-servers ks3 && fail "get whitelist"
vg trust remove --file ks node1 || fail "trust remove"
start_pebble
A=(--directory "$ACME_DIR" --ca-cert "$ACME_CA" --state-dir "$T/acme" --agree-terms)
vg acme issue --name v.example.com --out v "${A[@]}" --listen "127.0.0.1:$ACME_HTTP_PORT" || fail "acme issue"
vg acme issue --name w.example.com --challenge tls-alpn-01 --out w "${A[@]}" \
	--listen "127.0.0.1:$ACME_TLS_PORT" || fail "acme issue tls-alpn-01"
vg acme renew --name v.example.com --out v "${A[@]}" --listen "127.0.0.1:$ACME_HTTP_PORT" || fail "acme renew"
vg acme issue --name blocked.example.com --out b "${A[@]}" --listen "127.0.0.1:$ACME_HTTP_PORT" && fail "acme refused"
vg acme show --state-dir "$T/acme" || fail "acme show"
vg doctor --set tls.auto=acme --set tls.acme.names=v.example.com --set tls.acme.challenge=dns-01 \
	--set tls.acme.dns_hook=/bin/true --set "tls.acme.directory=$ACME_DIR" \
	--set "tls.acme.ca_cert=$ACME_CA" --set tls.acme.agree_terms=true --set admin.listen=off || fail "doctor acme"
pass "no leaks or memory errors in ca, cert, config, trust, get, put, acme, doctor"
echo "80-valgrind-cli: all passed"
