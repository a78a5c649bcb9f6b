"""Benchmark: memory of an ISO upload by nerv.homelab's ProxmoxClient.upload against a naive requests upload.

    python3 bench/upload.py                 # a 2 GiB file (sparse, in a temp dir); limit: peak RSS < 150 MiB
    python3 bench/upload.py --size 256M     # another size (K, M, G suffixes; bytes without one)
    python3 bench/upload.py --json          # the rows as JSON on stdout (progress stays on stderr)

Three processes, all on loopback: the sink, a tiny HTTPS server that checks the API token header, refuses a
body without a Content-Length (chunked), reads the body in 1 MiB pieces and throws it away, and answers with
what it received (bytes, and the multipart fields in the order they came); and, one after the other, two
uploader children that report their own peak RSS (getrusage ru_maxrss) and wall time:

  nerv   ProxmoxClient.upload (plugins/module_utils/proxmox/client.py) with the fields nerv.homelab.proxmox_iso sends,
         after computing the sha256 the way the module does (streaming, proxmox/iso_plan.py file_sha256);
  naive  requests.post(files=...), which builds the whole multipart body in memory.

The file is made with truncate (sparse: it takes no disk space, and reads cost no disk I/O, so the wall times
measure the client and TLS on loopback, not a disk). Runs with the project venv (.venv: proxmoxer, requests,
requests-toolbelt, ansible-core); started by another Python, it re-executes itself with .venv/bin/python.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
MIB = 1024**2
LIMIT_MIB = 150
TOKEN_ID = "bench@pve!upload"
SECRET_ENV = "NERV_BENCH_TOKEN_SECRET"
UPLOAD_PATH = "/nodes/bench/storage/local/upload"
NAME = "bench-upload.iso"
PLACEHOLDER_SHA = "0" * 64
READ = MIB


def log(message):
    print(message, file=sys.stderr, flush=True)


def ensure_venv():
    """Re-run under the project venv when this Python lacks the client's libraries."""
    try:
        import proxmoxer  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
        import requests_toolbelt  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
            os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
        sys.exit(f"upload.py: needs proxmoxer and requests-toolbelt: run it with {VENV_PYTHON} (make venv)")


def parse_size(text):
    units = {"K": 1024, "M": MIB, "G": 1024**3}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------------------------------------ sink


def run_sink(certfile, keyfile, secret):
    """Serve until killed: print the port, then accept uploads and discard them."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # pylint: disable=import-outside-toplevel

    expected = f"PVEAPIToken={TOKEN_ID}={secret}"

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
            pass

        def answer(self, status, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802
            if self.headers.get("Authorization") != expected:
                self.close_connection = True
                return self.answer(401, {"data": None, "message": "invalid token"})
            if "Transfer-Encoding" in self.headers or self.headers.get("Content-Length") is None:
                self.close_connection = True
                return self.answer(411, {"data": None, "message": "a Content-Length is required (no chunked body)"})
            length, received, head = int(self.headers["Content-Length"]), 0, b""
            while received < length:
                block = self.rfile.read(min(READ, length - received))
                if not block:
                    break
                if len(head) < 65536:
                    head += block[: 65536 - len(head)]
                received += len(block)
            parts = []
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-disposition: form-data;"):
                    text = line.decode("latin-1")
                    field = text.split('name="', 1)[1].split('"', 1)[0]
                    parts.append(field + (" (file)" if 'filename="' in text else ""))
                    if 'filename="' in text:
                        break
            status = 200 if received == length else 400
            self.answer(status, {"data": {"received": received, "content_length": length, "parts": parts}})
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def make_cert(directory):
    """(certfile, keyfile) of a throwaway certificate for 127.0.0.1, which is also the CA clients trust."""
    cert, key = str(Path(directory) / "sink.pem"), str(Path(directory) / "sink.key")
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key
    from fakepve.certs import make_cert as fake_cert  # pylint: disable=import-outside-toplevel

    return fake_cert(directory, name="sink", hosts=("127.0.0.1",))[:2]


# ------------------------------------------------------------------------------------------------ uploaders


def run_uploader(kind, url, path, cafile):
    """Upload path once; print {tool, ...} as JSON."""
    secret = os.environ[SECRET_ENV]
    baseline = peak_rss_mib()
    if kind == "nerv":
        sys.path.insert(0, str(REPO / "collections"))
        from ansible_collections.nerv.homelab.plugins.module_utils.proxmox import (  # pylint: disable=import-outside-toplevel
            iso_plan,
        )
        from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.client import (  # pylint: disable=import-outside-toplevel
            ProxmoxClient,
        )
        from ansible_collections.nerv.homelab.plugins.module_utils.proxmox.settings import (  # pylint: disable=import-outside-toplevel
            ProxmoxSettings,
        )

        baseline = peak_rss_mib()
        started = time.monotonic()
        sha256 = iso_plan.file_sha256(path)
        hashed = time.monotonic() - started
        client = ProxmoxClient(ProxmoxSettings(url=url, token_id=TOKEN_ID, token_secret=secret, ca_path=cafile))
        started = time.monotonic()
        answer = client.upload(UPLOAD_PATH, iso_plan.upload_fields(sha256), "filename", path, NAME, timeout=600)
        wall = time.monotonic() - started
    else:
        import requests  # pylint: disable=import-outside-toplevel

        baseline = peak_rss_mib()
        hashed = None
        fields = {"content": "iso", "checksum": PLACEHOLDER_SHA, "checksum-algorithm": "sha256"}
        started = time.monotonic()
        with open(path, "rb") as handle:
            response = requests.post(
                url.rstrip("/") + "/api2/json" + UPLOAD_PATH,
                data=fields,
                files={"filename": (NAME, handle, "application/octet-stream")},
                headers={"Authorization": f"PVEAPIToken={TOKEN_ID}={secret}"},
                verify=cafile,
                timeout=(30, 600),
            )
        wall = time.monotonic() - started
        response.raise_for_status()
        answer = response.json()["data"]
    print(json.dumps({"tool": kind, "wall": wall, "sha256_s": hashed, "peak_rss_mib": peak_rss_mib(),
                      "baseline_rss_mib": baseline, "answer": answer}))  # fmt: skip


# ------------------------------------------------------------------------------------------------ parent

TOOLS = {"nerv": "nerv ProxmoxClient.upload", "naive": "requests.post(files=...)"}


def measure(kind, url, path, cafile, env):
    argv = [sys.executable, __file__, "--uploader", kind, "--url", url, "--file", path, "--ca", cafile]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        return {"tool": kind, "status": f"failed (rc {done.returncode}): {done.stderr.strip()[-300:]}"}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    answer, size = row.pop("answer"), os.path.getsize(path)
    ok = isinstance(answer, dict) and answer.get("received") == answer.get("content_length")
    order = answer.get("parts") if isinstance(answer, dict) else None
    row["status"] = (
        "ok"
        if ok and order == ["content", "checksum", "checksum-algorithm", "filename (file)"]
        else (f"bad answer {answer!r}")
    )
    row["body_bytes"] = answer.get("received") if isinstance(answer, dict) else None
    row["mib_per_s"] = size / MIB / row["wall"] if row["wall"] else None
    return row


def table(rows, size):
    lines = [
        f"file: {size / MIB:,.0f} MiB (sparse), uploaded over HTTPS on loopback to a discarding sink",
        "",
        f"{'uploader':<28}{'wall s':>8}{'MiB/s':>8}{'sha256 s':>10}{'RSS before MiB':>16}{'peak RSS MiB':>14}  status",
        "-" * 92,
    ]
    for row in rows:
        if "wall" not in row:
            lines.append(f"{TOOLS[row['tool']]:<28}{'':>56}  {row['status']}")
            continue
        hashed = f"{row['sha256_s']:.2f}" if row.get("sha256_s") is not None else "-"
        lines.append(
            f"{TOOLS[row['tool']]:<28}{row['wall']:>8.2f}{row['mib_per_s']:>8.0f}{hashed:>10}"
            f"{row['baseline_rss_mib']:>16.1f}{row['peak_rss_mib']:>14.1f}  {row['status']}"
        )
    by = {row["tool"]: row for row in rows if "wall" in row}
    lines.append("")
    if "nerv" in by and "naive" in by:
        nerv, naive = by["nerv"], by["naive"]
        lines.append(
            f"naive / nerv: peak RSS {naive['peak_rss_mib'] / nerv['peak_rss_mib']:.1f}x, "
            f"upload time {naive['wall'] / nerv['wall']:.2f}x"
        )
    if "nerv" in by:
        peak = by["nerv"]["peak_rss_mib"]
        verdict = "met" if peak < LIMIT_MIB and by["nerv"]["status"] == "ok" else "NOT met"
        lines.append(f"limit: nerv uploader peak RSS {peak:.1f} MiB < {LIMIT_MIB} MiB: {verdict}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G, 512M (default 2G)")
    parser.add_argument("--tools", default="nerv,naive", help="comma-separated: nerv, naive (default both)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--uploader", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return run_sink(args.cert, args.key, os.environ[SECRET_ENV])
    ensure_venv()
    if args.uploader:
        return run_uploader(args.uploader, args.url, args.file, args.ca)

    size = parse_size(args.size)
    env = {**os.environ, SECRET_ENV: secrets.token_hex(16)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="nerv-bench-upload-") as temp:
        path = str(Path(temp) / "installer.iso")
        with open(path, "wb") as handle:
            handle.truncate(size)
        cert, key = make_cert(temp)
        sink_argv = [sys.executable, __file__, "--sink", "--cert", cert, "--key", key]
        with subprocess.Popen(sink_argv, env=env, stdout=subprocess.PIPE, text=True) as sink:
            try:
                port = int(sink.stdout.readline())
                url = f"https://127.0.0.1:{port}"
                for kind in [tool.strip() for tool in args.tools.split(",") if tool.strip()]:
                    log(f"upload.py: {TOOLS[kind]}: {size / MIB:,.0f} MiB to {url} ...")
                    rows.append(measure(kind, url, path, cert, env))
            finally:
                sink.terminate()
                sink.wait(10)
    context = (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    if args.json:
        print(json.dumps({"size": size, "context": context, "rows": rows}, indent=1))
    else:
        print(context)
        print(table(rows, size))
    nerv = [row for row in rows if row["tool"] == "nerv"]
    return 0 if all(row.get("status") == "ok" and row["peak_rss_mib"] < LIMIT_MIB for row in nerv) else 1


if __name__ == "__main__":
    sys.exit(main())
