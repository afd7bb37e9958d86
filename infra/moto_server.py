"""moto server, with requests applied one at a time.

moto's DynamoDB applies TransactWriteItems without a lock, so two concurrent transactions
may both pass `attribute_not_exists` (seen: 8 of 16 concurrent creates of one email won).
Real DynamoDB serialises conflicting transactions. Running every request under one lock makes
moto model that, so the concurrency tests check our code, not moto's races.

Usage: python moto_server.py -H 127.0.0.1 -p 5005   (the same arguments as moto_server)
"""

import threading

import moto.server

_lock = threading.Lock()
_run_simple = moto.server.run_simple


def _serialised(app):
    def handle(environ, start_response):
        with _lock:
            return list(app(environ, start_response))

    return handle


def _run_simple_serialised(host, port, application, **kwargs):
    return _run_simple(host, port, _serialised(application), **kwargs)


moto.server.run_simple = _run_simple_serialised

if __name__ == "__main__":
    moto.server.main()
