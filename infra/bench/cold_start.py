"""Cold start of one Lambda binary: exec to first response, under a minimal local Lambda
Runtime API (the same HTTP protocol the real runtime speaks). The function builds its SDK
client and answers one API Gateway v2 event (GET /admin/customers/{id}) against DynamoDB on
moto.

usage: cold_start.py BINARY EVENT_JSON RUNS
env:   AWS_ENDPOINT_URL, TABLE_NAME (and AWS credentials/region) for the function
"""

import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

binary, event_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
event = open(event_path, "rb").read()


class Runtime(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served = False
    answered = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/invocation/next") and not Runtime.served:
            Runtime.served = True
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 10000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
            self.send_header("Content-Length", str(len(event)))
            self.end_headers()
            self.wfile.write(event)
        else:
            time.sleep(30)  # park the second poll; the process is killed first

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Runtime.answered = (time.perf_counter(), self.path, body)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
server.handle_error = lambda request, address: None  # killed functions drop their connections
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

timings = []
for run in range(runs):
    Runtime.served, Runtime.answered = False, None
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", AWS_LAMBDA_FUNCTION_NAME="bench",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1", RUST_LOG="warn")
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while Runtime.answered is None and time.perf_counter() - started < 10:
        time.sleep(0.0005)
    process.kill()
    _, stderr = process.communicate()
    if Runtime.answered is None:
        sys.exit(f"no response from {binary}: {stderr.decode()[-2000:]}")
    finished, path, body = Runtime.answered
    if run == 0:
        status = json.loads(body).get("statusCode") if path.endswith("/response") else path
        print(f"first response: {path} statusCode={status}")
    timings.append((finished - started) * 1000)

timings.sort()
print(f"cold start (exec -> first response), {runs} runs: median {statistics.median(timings):.1f} ms, "
      f"min {timings[0]:.1f} ms, max {timings[-1]:.1f} ms")
server.shutdown()
