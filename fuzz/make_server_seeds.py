#!/usr/bin/env python3
"""Writes fuzz/corpus/server: the requests the integration tests send
(tests/integration/30-files-http.sh, 74-proxy.sh, 98-admin.sh,
92-hostile-clients.sh), framed for fuzz_server.c: byte 0 picks the
listener and the ending, then [n][n bytes] pieces."""
import os, sys

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "server")
os.makedirs(out, exist_ok=True)

def frame(data, admin=False, hard=False, piece=255):
    b = bytes([(1 if admin else 0) | (2 if hard else 0)])
    for i in range(0, len(data), piece):
        chunk = data[i:i + piece]
        b += bytes([len(chunk)]) + chunk
    return b

H = b"Host: localhost\r\n"
mp = (b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n"
      b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.bin\"\r\n"
      b"Content-Type: application/octet-stream\r\n\r\nhello world\r\n--XX--\r\n")
mp_nofile = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XX--\r\n"
seeds = {
    "put": b"PUT /files/hello.txt HTTP/1.1\r\n" + H + b"Content-Length: 12\r\n\r\nhello world\n",
    "put-expect": b"PUT /files/e.txt HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    "put-chunked": b"PUT /files/c.bin HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: v\r\n\r\n",
    "post-multipart": b"POST /files/m.bin HTTP/1.1\r\n" + H + b"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n" % len(mp) + mp,
    "multipart-no-file": b"PUT /files/m HTTP/1.1\r\n" + H + b"Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: %d\r\n\r\n" % len(mp_nofile) + mp_nofile,
    "get-range": b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"Range: bytes=6-10\r\n\r\n",
    "get-suffix": b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"Range: bytes=-6\r\n\r\n",
    "head": b"HEAD /files/hello.txt HTTP/1.1\r\n" + H + b"\r\n",
    "listing": b"GET /files/ HTTP/1.1\r\n" + H + b"\r\n",
    "delete": b"DELETE /files/e.txt HTTP/1.1\r\n" + H + b"\r\n",
    "pipelined": (b"GET /files/hello.txt HTTP/1.1\r\n" + H + b"\r\n") * 3 + b"PUT /files/p HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc" + b"GET / HTTP/1.0\r\n\r\n",
    "traversal": b"GET /files/../../etc/passwd HTTP/1.1\r\n" + H + b"\r\n",
    "smuggle": b"POST /files/s HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "proxy-get": b"GET /up/v1/items?x=1 HTTP/1.1\r\n" + H + b"X-Forwarded-For: 10.0.0.7\r\nConnection: keep-alive\r\n\r\n",
    "proxy-put": b"PUT /up/store HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello",
    "proxy-chunked": b"POST /up/c HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "proxy-then-files": b"GET /up/a HTTP/1.1\r\n" + H + b"\r\nGET /files/hello.txt HTTP/1.1\r\n" + H + b"\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    "bad-head": b"GET /\x01 HTTP/1.1\r\n\r\n",
}
for name, data in seeds.items():
    open(os.path.join(out, name), "wb").write(frame(data))
    # the same request one byte at a time, and cut short with a hard close
    open(os.path.join(out, name + ".bytewise"), "wb").write(frame(data, piece=1))
    open(os.path.join(out, name + ".cut"), "wb").write(frame(data[: len(data) // 2], hard=True))
for name, path in (("metrics", b"/metrics"), ("status", b"/status"), ("admin-404", b"/files/x")):
    open(os.path.join(out, "admin-" + name), "wb").write(
        frame(b"GET " + path + b" HTTP/1.1\r\n" + H + b"\r\n", admin=True))
print(f"{len(os.listdir(out))} seeds in {out}")
