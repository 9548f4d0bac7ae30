"""Run CPython's own ``test.test_asyncio.test_streams`` with asyncio's stream helpers swapped for
spargio.net's (``python tests/net/cpython_streams.py``; tests/net/test_cpython_streams.py runs it).

Prints one line, ``ran N failures F errors E skipped S ring R``: R is how many RingTransports the
run made, so a swap that did not take cannot pass for a success.
"""

from __future__ import annotations

import asyncio
import sys
import unittest

from spargio import net
from spargio.net import _transport

for name in ("open_connection", "start_server", "open_unix_connection", "start_unix_server"):
    setattr(asyncio, name, getattr(net, name))
    setattr(asyncio.streams, name, getattr(net, name))

made = 0
_init = _transport.RingTransport.__init__


def _counting_init(self: _transport.RingTransport, *args: object, **kwargs: object) -> None:
    global made
    made += 1
    _init(self, *args, **kwargs)  # type: ignore[arg-type]


_transport.RingTransport.__init__ = _counting_init  # type: ignore[method-assign]

from test.test_asyncio import test_streams  # noqa: E402  (after the swap)

result = unittest.TextTestRunner(stream=sys.stderr, verbosity=1).run(
    unittest.defaultTestLoader.loadTestsFromModule(test_streams)
)
for test, trace in result.failures + result.errors:
    print("FAILED", test.id(), trace.strip().splitlines()[-1][:300], file=sys.stderr)
print(
    f"ran {result.testsRun} failures {len(result.failures)} errors {len(result.errors)} "
    f"skipped {len(result.skipped)} ring {made}"
)
