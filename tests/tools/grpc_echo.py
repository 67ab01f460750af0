#!/usr/bin/python3
"""A gRPC echo service and its client (Debian's python3-grpcio), with no
generated code: methods carry raw bytes.

  grpc_echo.py serve PORT                 plain gRPC on 127.0.0.1:PORT
  grpc_echo.py call HOST:PORT plain       unary + server-streaming calls
  grpc_echo.py call HOST:PORT tls CA [NAME [CERT KEY]]

`call` prints "unary ok" and "stream ok N" and exits 0, or prints the
gRPC status and details and exits 1.
"""
import sys
import time
from concurrent import futures

import grpc


def serve(port):
    def say(req, ctx):
        return b"echo:" + req

    def many(req, ctx):
        for i in range(int(req.decode() or "0")):
            yield b"part-%d-" % i + b"x" * 1000

    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Many": grpc.unary_stream_rpc_method_handler(many),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def call(target, mode, ca=None, name=None, cert=None, key=None):
    if mode == "tls":
        creds = grpc.ssl_channel_credentials(
            root_certificates=open(ca, "rb").read(),
            private_key=open(key, "rb").read() if key else None,
            certificate_chain=open(cert, "rb").read() if cert else None)
        opts = [("grpc.ssl_target_name_override", name)] if name else []
        ch = grpc.secure_channel(target, creds, options=opts)
    else:
        ch = grpc.insecure_channel(target)
    try:
        say = ch.unary_unary("/test.Echo/Say")
        got = say(b"hello", timeout=10)
        if got != b"echo:hello":
            print("unary: wrong answer %r" % got)
            return 1
        print("unary ok")
        many = ch.unary_stream("/test.Echo/Many")
        n = 0
        for part in many(b"200", timeout=20):
            if not part.startswith(b"part-%d-" % n):
                print("stream: wrong part %d" % n)
                return 1
            n += 1
        if n != 200:
            print("stream: %d parts, not 200" % n)
            return 1
        print("stream ok %d" % n)
        return 0
    except grpc.RpcError as e:
        print("rpc failed: %s: %s" % (e.code(), e.details()))
        return 1
    finally:
        ch.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(call(*sys.argv[2:]))
