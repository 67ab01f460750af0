#!/usr/bin/python3
"""What systemd's notify socket would receive: binds a datagram socket at
PATH and prints each message on one line (newlines shown as ' | ').

  notify_sink.py PATH
"""
import socket
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    msg, _ = s.recvfrom(4096)
    print(msg.decode(errors="replace").replace("\n", " | "), flush=True)
