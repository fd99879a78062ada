#!/usr/bin/env python3
"""permessage-deflate against a ferrows server, with Python's `websockets`.

Usage: deflate_client.py ws://127.0.0.1:PORT/

`websockets` offers permessage-deflate by default. Checks that the server
accepted it, then sends compressible text and binary messages (which the
client compresses) and expects each echo (which the server compresses) back
unchanged, over several messages so that context takeover is exercised in
both directions. Prints OK and exits 0 on success; exits 1 with a reason
otherwise, 2 when `websockets` is missing.
"""

import json
import sys

try:
    from websockets.sync.client import connect
except ImportError as error:
    print(f"the Python `websockets` package is required: pip install websockets ({error})", file=sys.stderr)
    sys.exit(2)

TIMEOUT = 10.0


def main(url):
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None) as ws:
        accepted = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if "permessage-deflate" not in accepted:
            print(f"the server did not accept permessage-deflate (response: {accepted!r})")
            return 1
        for i in range(20):
            text = json.dumps([{"id": n, "name": f"user-{n % 7}", "ok": n % 2 == 0} for n in range(i * 50)])
            ws.send(text)
            got = ws.recv(timeout=TIMEOUT)
            if got != text:
                print(f"text echo {i} differs: {len(got)} bytes back for {len(text)}")
                return 1
            binary = bytes(range(256)) * (i + 1) + b"\x00" * 4096
            ws.send(binary)
            got = ws.recv(timeout=TIMEOUT)
            if got != binary:
                print(f"binary echo {i} differs")
                return 1
        ws.close(1000, "done")
    if ws.close_code != 1000:
        print(f"close code {ws.close_code}, expected 1000")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
