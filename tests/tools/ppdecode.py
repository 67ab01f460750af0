#!/usr/bin/python3
"""A backend that expects a PROXY header (v1 or v2), decodes it from the
spec alone (haproxy's doc/proxy-protocol.txt, TLVs included) and answers
one HTTP request with what it learnt, as JSON; each decoded header is also
printed as one JSON line.

  ppdecode.py PORT
"""
import json
import socket
import struct
import sys
import threading

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
SSL_SUB = {0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sig_alg", 0x25: "key_alg"}


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError("closed inside the header")
        b += x
    return b


def tlvs(data):
    out = []
    while data:
        t, ln = data[0], struct.unpack(">H", data[1:3])[0]
        out.append((t, data[3:3 + ln]))
        data = data[3 + ln:]
    return out


def decode(c):
    head = recv_exact(c, 12)
    if head == SIG:
        ver_cmd, fam, ln = struct.unpack(">BBH", recv_exact(c, 4))
        body = recv_exact(c, ln)
        d = {"version": 2, "command": ver_cmd & 0xf}
        if fam == 0x11:
            src, dst, sp, dp = body[0:4], body[4:8], body[8:10], body[10:12]
            d["src"] = socket.inet_ntop(socket.AF_INET, src)
            d["dst"] = socket.inet_ntop(socket.AF_INET, dst)
            rest = body[12:]
        elif fam == 0x21:
            src, dst, sp, dp = body[0:16], body[16:32], body[32:34], body[34:36]
            d["src"] = socket.inet_ntop(socket.AF_INET6, src)
            d["dst"] = socket.inet_ntop(socket.AF_INET6, dst)
            rest = body[36:]
        else:
            return d
        d["src_port"] = struct.unpack(">H", sp)[0]
        d["dst_port"] = struct.unpack(">H", dp)[0]
        for t, v in tlvs(rest):
            if t == 0x01:
                d["alpn"] = v.decode()
            elif t == 0x02:
                d["authority"] = v.decode()
            elif t == 0x20:
                d["ssl_client"] = v[0]
                d["ssl_verify"] = struct.unpack(">I", v[1:5])[0]
                for st, sv in tlvs(v[5:]):
                    d["ssl_" + SSL_SUB.get(st, hex(st))] = sv.decode()
            else:
                d["tlv_%#x" % t] = v.hex()
        return d
    line = head
    while not line.endswith(b"\r\n"):
        line += recv_exact(c, 1)
        if len(line) > 107:
            raise ValueError("v1 line too long")
    f = line.decode().split()
    d = {"version": 1, "proto": f[1]}
    if f[1] != "UNKNOWN":
        d.update(src=f[2], dst=f[3], src_port=int(f[4]), dst_port=int(f[5]))
    return d


def serve_one(c):
    try:
        d = decode(c)
        req = b""
        while b"\r\n\r\n" not in req:
            x = c.recv(4096)
            if not x:
                break
            req += x
        for ln in req.split(b"\r\n"):
            if ln.lower().startswith(b"x-forwarded-for:"):
                d["xff"] = ln.split(b":", 1)[1].strip().decode()
        print(json.dumps(d, sort_keys=True), flush=True)
        body = json.dumps(d, sort_keys=True).encode() + b"\n"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n" % len(body) + body)
    except Exception as e:  # a bad header: said, and the connection closed
        print(json.dumps({"error": str(e)}), flush=True)
    finally:
        c.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve_one, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
