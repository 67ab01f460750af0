#!/usr/bin/env python3
"""First contacts per second against a tlsgate in mutual mode, trust tofu.

Makes COUNT client certificates (one key, names PREFIX0..PREFIXn, signed by
the CA in CA_DIR) before the clock starts, then opens one TLS connection per
certificate from THREADS threads, each a fresh identity the server has never
seen: it must record the pin before the request is answered. Prints
"contacts N ok M seconds S per_second R".

Also: `pinclient.py load-etcd URL PREFIX N` puts N pins (dev0..devN-1) into
etcd as tlsgate's cluster keeps them (PREFIX pins/known-clients/devI), 128 a
transaction, for the fleet-scale benchmark.
"""
import base64
import concurrent.futures
import datetime
import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_certs(ca_dir, prefix, count, out):
    ca_cert = x509.load_pem_x509_certificate(open(os.path.join(ca_dir, "ca.crt"), "rb").read())
    ca_key = serialization.load_pem_private_key(open(os.path.join(ca_dir, "ca.key"), "rb").read(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    kpath = os.path.join(out, "client.key")
    with open(kpath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    now = datetime.datetime.now(datetime.timezone.utc)
    paths = []
    for i in range(count):
        name = f"{prefix}{i}"
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .sign(ca_key, hashes.SHA256()))
        p = os.path.join(out, f"c{i}.crt")
        with open(p, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        paths.append(p)
    return kpath, paths


def contact(port, crt, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(crt, key)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        with ctx.wrap_socket(s) as t:
            t.sendall(b"GET /files/ HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = t.recv(64)
            return data.startswith(b"HTTP/1.1 ")


def first_contacts(port, ca_dir, prefix, count, threads):
    with tempfile.TemporaryDirectory() as d:
        key, certs = make_certs(ca_dir, prefix, count, d)
        t0 = time.monotonic()
        ok = 0
        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            for r in ex.map(lambda c: _safe(port, c, key), certs):
                ok += r
        dt = time.monotonic() - t0
    print(f"contacts {count} ok {ok} seconds {dt:.2f} per_second {count / dt:.0f}")


def _safe(port, crt, key):
    try:
        return 1 if contact(port, crt, key) else 0
    except OSError:
        return 0


def load_etcd(url, prefix, n):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    pin = "sha256:" + "A" * 43 + "="
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    i = 0
    while i < n:
        ops = []
        for j in range(i, min(n, i + 128)):
            ops.append({"request_put": {"key": b64(f"{prefix}pins/known-clients/dev{j}"),
                                        "value": b64(f"dev{j} {pin} # bench\n")}})
        conn.request("POST", "/v3/kv/txn", json.dumps({"success": ops}),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"etcd: {r.status} {body[:200]!r}")
        i += 128


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "load-etcd":
        load_etcd(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) == 6:
        first_contacts(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit("usage: pinclient.py PORT CA_DIR PREFIX COUNT THREADS | load-etcd URL PREFIX N")
