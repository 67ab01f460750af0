#!/usr/bin/env bash
# `make install` puts the binary, libtlsgate (shared and static) with its
# header and pkg-config file, a man page per command and the systemd unit in
# place; both libraries export exactly the functions the header declares and
# nothing that writes to stderr or ends the process; a program builds
# against libtlsgate with pkg-config alone, and each of examples/ builds and
# does what it says (the client one against a tlsgate server, judged by the
# ca and tofu trust modes).
. "$(dirname "$0")/harness.sh"
build=$(dirname "$TG_BIN")
[ -f "$build/CMakeCache.txt" ] || fail "no build folder beside $TG_BIN"
DESTDIR="$T/root" cmake --install "$build" --prefix /usr/local >"$T/install.log" 2>&1 || fail "cmake --install"
R="$T/root/usr/local"
for f in bin/tlsgate lib/libtlsgate.a lib/libtlsgate.so include/tlsgate/tlsgate.h lib/pkgconfig/tlsgate.pc \
	share/man/man1/tlsgate.1 share/man/man1/tlsgate-serve.1 share/man/man1/tlsgate-cert.1 \
	share/man/man1/tlsgate-trust.1 share/man/man1/tlsgate-config.1 share/man/man1/tlsgate-get.1 \
	share/man/man1/tlsgate-ca.1 share/man/man1/tlsgate-status.1 share/man/man1/tlsgate-acme.1; do
	[ -e "$R/$f" ] || fail "make install did not install $f"
done
[ -f "$T/root/usr/local/lib/systemd/system/tlsgate.service" ] || fail "no systemd unit"
grep -q "^ExecStart=/usr/local/bin/tlsgate serve" "$T/root/usr/local/lib/systemd/system/tlsgate.service" || fail "unit ExecStart"
grep -q "^AmbientCapabilities=CAP_NET_BIND_SERVICE" "$T/root/usr/local/lib/systemd/system/tlsgate.service" || fail "unit capability"
for m in "$R"/share/man/man1/*.1; do
	out=$(groff -man -Tutf8 -ww -z "$m" 2>&1) || fail "groff failed on $m"
	[ -z "$out" ] || fail "groff warns on $m: $out"
done
pass "binary, library, header, pkg-config file, man pages and unit installed"

cat >"$T/use.c" <<'C'
#include <stdio.h>
#include <tlsgate/tlsgate.h>
int main(void) {
	struct tg_err err;
	struct tg_config *cfg = tg_config_new();
	int bad = tg_config_set(cfg, "tls.mode", "sometimes", "example", &err);
	printf("libtlsgate %s: mode=%s; %s\n", tg_version(), tg_config_get(cfg, "tls.mode"), bad ? err.msg : "?");
	tg_config_free(cfg);
	return bad ? 0 : 1;
}
C
export PKG_CONFIG_SYSROOT_DIR="$T/root" PKG_CONFIG_PATH="$R/lib/pkgconfig"
export LD_LIBRARY_PATH="$R/lib"   # installed to a staging root, not in ld.so's path
san=""; [ "${TG_SANITIZE:-OFF}" = ON ] && san="-fsanitize=address,undefined"   # the library was built so
cc $san "$T/use.c" -o "$T/use" $(pkg-config --cflags tlsgate) $(pkg-config --static --libs tlsgate) \
	|| fail "a program does not build against libtlsgate"
"$T/use" | grep -q "mode=server; tls.mode (example): 'sometimes' is not one of off|server|mutual" \
	|| fail "the linked program: $("$T/use")"
pass "a program links libtlsgate through pkg-config and gets its errors in words"

# ---- the exported symbols: the header's TG_API functions, no more -----------
hdr="$R/include/tlsgate/tlsgate.h"
sed -n '/^TG_API/,/;/p' "$hdr" | tr '\n' ' ' | grep -oE '[a-z_0-9]+\(' | tr -d '(' |
	grep -E '^tg_' | sort -u >"$T/declared"
[ "$(wc -l <"$T/declared")" -ge 30 ] || fail "too few TG_API declarations read from the header: $(cat "$T/declared")"
so=$(readlink -f "$R/lib/libtlsgate.so")
nm -D --defined-only "$so" | awk '$2 ~ /^[TDRBVW]$/ {print $3}' | sort -u >"$T/so.syms"
nm -g --defined-only "$R/lib/libtlsgate.a" | awk 'NF == 3 {print $3}' | sort -u >"$T/a.syms"
for lib in so a; do
	diff "$T/declared" "$T/$lib.syms" >"$T/$lib.diff" ||
		fail "libtlsgate.$lib exports other symbols than tlsgate.h declares (< header, > library): $(head -20 "$T/$lib.diff")"
done
pass "libtlsgate.so and libtlsgate.a export the $(wc -l <"$T/declared") functions tlsgate.h declares, and nothing else"
for lib in "$so" "$R/lib/libtlsgate.a"; do
	bad=$(nm -u "$lib" 2>/dev/null | awk '{print $NF}' | grep -E '^(_IO_)?(f?printf|__fprintf_chk|__printf_chk|puts|fputs|perror|abort|exit|_exit|stderr|stdout)(@|$)' | sort -u || true)
	[ -z "$bad" ] || fail "$(basename "$lib") calls $bad: the library must not write to stderr or end the process"
done
pass "the library neither prints nor aborts nor exits (nm -u)"

# ---- examples/: one program per public area --------------------------------
ex=$(cd "$(dirname "$0")/../../examples" && pwd)
for e in config store pki client; do
	cc $san -Wall -Wextra -Werror -std=c17 "$ex/$e.c" -o "$T/ex-$e" $(pkg-config --cflags --libs tlsgate) \
		|| fail "examples/$e.c does not build against the installed libtlsgate"
done
cc $san -std=c17 "$ex/pki.c" -o "$T/ex-pki-static" $(pkg-config --cflags tlsgate) "$R/lib/libtlsgate.a" \
	$(pkg-config --static --libs tlsgate | sed 's/-ltlsgate//') || fail "examples/pki.c does not link the static library"
pass "examples/{config,store,pki,client}.c build with pkg-config (shared), pki.c also static"

"$T/ex-config" >"$T/ex-config.out" 2>&1 || fail "examples/config: $(cat "$T/ex-config.out")"
grep -q "^listen = 127.0.0.1:8443 (from example)" "$T/ex-config.out" || fail "config: $(cat "$T/ex-config.out")"
grep -q "^refused: tls.min_version (example): '1.0' is not one of .* \[TG_E_CONFIG_VALUE\]" "$T/ex-config.out" ||
	fail "config: the refused value: $(cat "$T/ex-config.out")"
pass "examples/config: a value and its origin, a refused value in words with its code"

"$T/ex-store" "$T/exstore" >"$T/ex-store.out" 2>&1 || fail "examples/store: $(cat "$T/ex-store.out")"
grep -q "read back 14 bytes: the same" "$T/ex-store.out" && grep -q "^missing: TG_E_NOT_FOUND" "$T/ex-store.out" &&
	grep -q "^keys/example.key" "$T/ex-store.out" || fail "store: $(cat "$T/ex-store.out")"
[ "$(stat -c %a "$T/exstore/keys/example.key")" = 600 ] || fail "store: the secret is not 0600"
pass "examples/store: a secret put (0600), read back, wiped; a missing name is TG_E_NOT_FOUND; names listed"

"$T/ex-pki-static" "$T/expki" >"$T/ex-pki.out" 2>&1 || fail "examples/pki: $(cat "$T/ex-pki.out")"
grep -q "^again: TG_E_EXISTS" "$T/ex-pki.out" || fail "pki: a second CA: $(cat "$T/ex-pki.out")"
openssl verify -CAfile "$T/expki/ca/ca.crt" "$T/expki/server.crt" >/dev/null || fail "pki: the certificate does not verify"
[ "$(stat -c %a "$T/expki/server.key")" = 600 ] || fail "pki: the key is not 0600"
pass "examples/pki (static): a CA and a certificate that openssl verifies; a second CA refused"

start_tlsgate exsrv --set tls.cert="$T/expki/server.crt" --set tls.key="$T/expki/server.key"
port=$PORT_exsrv
"$T/ex-client" localhost "$port" ca "$T/expki/ca/ca.crt" >"$T/ex-client.out" 2>&1 ||
	fail "examples/client with the right CA: $(cat "$T/ex-client.out")"
grep -q "^TLSv1.3 " "$T/ex-client.out" && grep -q "(trusted: 1)" "$T/ex-client.out" &&
	grep -q "^HTTP/1.1 200 OK" "$T/ex-client.out" || fail "client: $(cat "$T/ex-client.out")"
pass "examples/client, trust ca: TLS 1.3, trusted, HTTP 200"
"$T/ex-pki" "$T/other" >/dev/null 2>&1 || fail "a second CA for the refusal case"
if "$T/ex-client" localhost "$port" ca "$T/other/ca/ca.crt" >"$T/ex-client2.out" 2>&1; then
	fail "examples/client trusted a server its CA did not sign: $(cat "$T/ex-client2.out")"
fi
grep -q "\[TG_E_\(TLS\|TRUST\)\]" "$T/ex-client2.out" || fail "client, wrong CA: $(cat "$T/ex-client2.out")"
pass "examples/client, trust ca with another CA: refused in words ($(grep -o 'TG_E_[A-Z]*' "$T/ex-client2.out"))"
"$T/ex-client" localhost "$port" tofu "$T/known-servers" >"$T/ex-client3.out" 2>&1 ||
	fail "examples/client tofu, first contact: $(cat "$T/ex-client3.out")"
grep -q "localhost:$port" "$T/known-servers" || fail "tofu: no pin recorded: $(cat "$T/known-servers")"
"$T/ex-client" localhost "$port" tofu "$T/known-servers" >"$T/ex-client4.out" 2>&1 ||
	fail "examples/client tofu, second contact: $(cat "$T/ex-client4.out")"
sed -i "s/sha256:[A-Za-z0-9+\/=_-]*/sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=/" "$T/known-servers"
if "$T/ex-client" localhost "$port" tofu "$T/known-servers" >"$T/ex-client5.out" 2>&1; then
	fail "examples/client tofu accepted a server whose pin differs: $(cat "$T/ex-client5.out")"
fi
grep -q "\[TG_E_TRUST\]" "$T/ex-client5.out" || fail "client, changed pin: $(cat "$T/ex-client5.out")"
pass "examples/client, trust tofu: pinned on first contact, trusted after, refused when the pin differs"
echo "99-install: all passed"
