#!/usr/bin/env python3
"""A DNS server for tests, from the RFC 1035 wire format alone (no library):
answers A queries with 127.0.0.1 (or what --map NAME=IP says), AAAA with
nothing, and TXT queries from a folder: the record of _acme-challenge.NAME
is the content of the file DIR/_acme-challenge.NAME (one value per line),
so a test or an ACME client's hook publishes a DNS-01 answer by writing a
file. UDP only, one port on 127.0.0.1.

  dns_stub.py PORT TXT_DIR [--map NAME=IP ...]
"""
import os, socket, struct, sys

port, txt_dir = int(sys.argv[1]), sys.argv[2]
amap = {}
for a in sys.argv[3:]:
    if a.startswith("--map="):
        a = a[6:]
    if "=" in a:
        k, v = a.split("=", 1)
        amap[k.lower()] = v


def qname(data, off):
    labels = []
    while True:
        n = data[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(data[off:off + n].decode("ascii", "replace"))
        off += n


def answer(data):
    tid, flags, qd = struct.unpack("!HHH", data[:6])
    name, off = qname(data, 12)
    qtype, qclass = struct.unpack("!HH", data[off:off + 4])
    question = data[12:off + 4]
    rrs = []
    lname = name.lower().rstrip(".")
    if qtype == 1:
        ip = amap.get(lname, "127.0.0.1")
        rrs.append(socket.inet_aton(ip))
    elif qtype == 16:
        path = os.path.join(txt_dir, lname)
        if os.path.isfile(path):
            for line in open(path).read().split():
                v = line.encode()
                rrs.append(bytes([len(v)]) + v)
    head = struct.pack("!HHHHHH", tid, 0x8180, 1, len(rrs), 0, 0)
    body = b""
    for rd in rrs:
        body += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 5, len(rd)) + rd
    return head + question + body


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
while True:
    data, peer = s.recvfrom(4096)
    try:
        s.sendto(answer(data), peer)
    except Exception as e:  # a malformed question gets no answer
        print("dns_stub:", e, file=sys.stderr)
