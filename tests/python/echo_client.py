#!/usr/bin/env python3
"""An echo round trip against a ferrows server, with Python's `websockets`.

Usage: echo_client.py ws://127.0.0.1:PORT/ [CAFILE]
       echo_client.py wss://127.0.0.1:PORT/ CAFILE

For wss://, the server's certificate is verified against CAFILE (and the
host name in the URL), with Python's own `ssl` module.

Sends a text message and a binary message and expects each back unchanged,
sends a Ping and waits for its Pong, then closes with 1000 and expects the
server's Close to carry 1000 and the TCP connection to end. Prints OK and
exits 0 on success; prints what went wrong and exits 1 otherwise, or 2 when
the `websockets` package is missing.
"""

import ssl
import sys

try:
    import websockets
    from websockets.sync.client import connect
except ImportError as error:
    print(
        f"the Python `websockets` package is required: pip install websockets ({error})",
        file=sys.stderr,
    )
    sys.exit(2)

TIMEOUT = 10.0


class Failure(Exception):
    pass


def expect(what, got, expected):
    if got != expected:
        shown_got = got if len(repr(got)) < 200 else f"{type(got).__name__} of {len(got)}"
        shown_expected = expected if len(repr(expected)) < 200 else f"{type(expected).__name__} of {len(expected)}"
        raise Failure(f"{what}: got {shown_got!r}, expected {shown_expected!r}")


def round_trip(url, cafile):
    text = "naïve café — 日本語 ✓ 🦀"
    binary = bytes(range(256)) * 257
    options = {}
    if url.startswith("wss:"):
        # Verifies the chain against the test CA and the URL's host against the certificate.
        options["ssl"] = ssl.create_default_context(cafile=cafile)
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None, **options) as ws:
        ws.send(text)
        expect("text echo", ws.recv(timeout=TIMEOUT), text)
        ws.send(binary)
        expect("binary echo", ws.recv(timeout=TIMEOUT), binary)

        pong = ws.ping(b"python ping")
        if not pong.wait(TIMEOUT):
            raise Failure("no Pong for the Ping")

        ws.close(code=1000, reason="done")
        received = ws.protocol.close_rcvd
        if received is None:
            raise Failure("the server sent no Close")
        expect("the server's close code", received.code, 1000)
    # close() returns once the TCP connection is closed.
    expect("connection state after close", ws.protocol.state.name, "CLOSED")


def main():
    if len(sys.argv) not in (2, 3) or (sys.argv[1].startswith("wss:") and len(sys.argv) != 3):
        print(f"usage: {sys.argv[0]} ws://HOST:PORT/ | wss://HOST:PORT/ CAFILE", file=sys.stderr)
        return 1
    try:
        round_trip(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
    except Failure as failure:
        print(f"FAIL: {failure}", file=sys.stderr)
        return 1
    except Exception as error:  # Any other error is a failure too, with its type shown.
        print(f"FAIL: {type(error).__name__}: {error} (websockets {websockets.__version__})", file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
