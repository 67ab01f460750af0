#!/usr/bin/env bash
# Writes one man page per tlsgate command from its --help text:
#   scripts/man.sh path/to/tlsgate OUTDIR
set -euo pipefail
bin=$1 out=$2
mkdir -p "$out"
ver=$("$bin" --version | awk '{print $2}')
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/" -e 's/-/\\-/g'; }
page() {   # NAME TITLE-WORDS CMD...
	local name=$1 what=$2; shift 2
	{
		echo ".TH ${name^^} 1 \"\" \"tlsgate $ver\" \"tlsgate manual\""
		echo ".SH NAME"
		echo "$name \\- $what"
		echo ".SH SYNOPSIS AND OPTIONS"
		echo ".nf"
		"$bin" "$@" --help 2>&1 | esc
		echo ".fi"
		echo ".SH FILES"
		echo "Configuration: \\fI/etc/tlsgate/tlsgate.yaml\\fR (root) or \\fI~/.config/tlsgate/tlsgate.yaml\\fR;"
		echo "state: \\fI/var/lib/tlsgate\\fR (root) or \\fI~/.local/state/tlsgate\\fR."
		echo ".SH SEE ALSO"
		echo "\\fBtlsgate\\fR(1), \\fBtlsgate-serve\\fR(1), \\fBtlsgate-cert\\fR(1), \\fBtlsgate-trust\\fR(1), \\fBtlsgate-acme\\fR(1)"
	} >"$out/$name.1"
}
page tlsgate "TLS for any service: certificates, trust, HTTPS file service"
page tlsgate-serve "run the TLS gateway and file transfer service" serve
page tlsgate-ca "create the local certificate authority" ca
page tlsgate-cert "issue, request, sign, show and check certificates" cert
page tlsgate-trust "manage known-clients and known-servers" trust
page tlsgate-config "read and edit the configuration" config
page tlsgate-get "download and upload with tlsgate's trust rules" get
page tlsgate-status "ask a running server for its status" status
page tlsgate-doctor "check a configuration before it is used" doctor
page tlsgate-acme "get certificates from an ACME CA such as Let's Encrypt" acme
