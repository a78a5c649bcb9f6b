"""Benchmark: nerv.homelab.proxmox against community.proxmox's inventory plugin on the same fake cluster.

    python3 bench/inventory.py              # 300 and 1,000 VMs, 20 ms per request (a few minutes)
    python3 bench/inventory.py --quick      # 30 VMs, no latency: a smoke test (under a minute once installed)
    python3 bench/inventory.py --json       # the same, as JSON on stdout (progress stays on stderr)

In one process tree and one run: makes or reuses bench/.venv (the `ansible` package, which bundles
community.proxmox, on the project's ansible-core, plus fakepve) and re-executes itself there; serves a
fakepve on a thread of this process (loopback only) with VMs on three nodes, half running with a guest
agent that reports an IPv4 address, half stopped, and an API token; then runs `ansible-inventory --list`
with each plugin against the same fake state, clearing the fake's request log before each run and
counting it after. nerv.homelab.proxmox runs twice: with an empty cache, then with the cache it wrote.
Each run is killed after --timeout seconds. The wall time is that of the whole ansible-inventory
process, start-up included, as a user sees it.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV = BENCH / ".venv"
VENV_BIN = VENV / "bin"
REQUIREMENTS = (BENCH / "requirements.txt", REPO / "requirements.txt")
STAMP = VENV / ".bench-requirements.sha256"
NERV_PLUGIN = REPO / "plugins" / "inventory" / "proxmox.py"
COLLECTIONS = REPO / "collections"

COMMUNITY = "community.proxmox.proxmox"
NERV = "nerv.homelab.proxmox"
# What a community.proxmox user writes to get ansible_host from the guest agent: the first address of the
# first interface that is not lo (proxmox_agent_interfaces exists only with want_facts and an agent).
COMMUNITY_ANSIBLE_HOST = (
    "(proxmox_agent_interfaces | rejectattr('name', 'equalto', 'lo') | map(attribute='ip-addresses')"
    " | flatten | first).split('/') | first"
)


def log(message):
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ venv


def requirements_digest():
    digest = hashlib.sha256()
    for path in REQUIREMENTS:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv():
    """bench/.venv with bench/requirements.txt installed (again only when the requirements changed)."""
    python = VENV_BIN / "python"
    if not python.exists():
        log(f"bench: creating {VENV.relative_to(REPO)}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    digest = requirements_digest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        log("bench: installing bench/requirements.txt into bench/.venv (about a minute, once)")
        pip_log = VENV / "pip.log"
        with pip_log.open("w") as out:
            rc = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(REQUIREMENTS[0])],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc:
            log("".join(pip_log.read_text().splitlines(keepends=True)[-20:]))
            sys.exit(f"bench: pip install failed (exit {rc}); full log in {pip_log}")
        STAMP.write_text(digest + "\n")
    return python


def in_bench_venv():
    return Path(sys.prefix).resolve() == VENV.resolve()


# ------------------------------------------------------------------------------------------- versions


def versions():
    from importlib import metadata

    found = {}
    for dist in ("ansible", "ansible-core", "proxmoxer", "requests", "fakepve"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    found["community.proxmox"] = None
    for entry in sys.path:
        manifest = Path(entry) / "ansible_collections" / "community" / "proxmox" / "MANIFEST.json"
        if manifest.is_file():
            found["community.proxmox"] = json.loads(manifest.read_text())["collection_info"]["version"]
            break
    galaxy = (REPO / "galaxy.yml").read_text()
    match = re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy, re.M)
    found["nerv.homelab"] = match.group(1) if match else None

    def git(*args):
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if head and git("status", "--porcelain", "--", "plugins"):
        head += " with uncommitted changes in plugins/"
    found["nerv.homelab commit"] = head
    return found


def machine():
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# --------------------------------------------------------------------------------------------- a run


def config_for(tool, url, secret, cafile, cache_dir):
    """The inventory source each plugin reads (JSON is YAML), asking each for agent addresses."""
    from _fake import ADDRESSES, TOKEN_ID, TOKEN_NAME, TOKEN_USER

    if tool == COMMUNITY:
        # No ca_path option: TLS is verified against REQUESTS_CA_BUNDLE, set in the run's environment.
        return {
            "plugin": COMMUNITY,
            "url": url,
            "user": TOKEN_USER,
            "token_id": TOKEN_NAME,
            "token_secret": secret,
            "validate_certs": True,
            "want_facts": True,
            "qemu_extended_statuses": True,
            "want_proxmox_nodes_ansible_host": True,
            "compose": {"ansible_host": COMMUNITY_ANSIBLE_HOST},
        }
    return {
        "plugin": NERV,
        "url": url,
        "token_id": TOKEN_ID,
        "token_secret": secret,
        "validate_certs": True,
        "ca_path": cafile,
        "cidr": [str(ADDRESSES)],
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(cache_dir),
    }


def run_env(workdir, tool, cafile):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PROXMOX_"))}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV),
        ANSIBLE_CONFIG=str(workdir / "ansible.cfg"),
        ANSIBLE_HOME=str(workdir / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_INVENTORY_ENABLED=tool,
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="true",
        ANSIBLE_NOCOLOR="1",
        REQUESTS_CA_BUNDLE=cafile,
        CURL_CA_BUNDLE=cafile,
        NO_PROXY="127.0.0.1,localhost",
    )
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(proxy, None)
    return env


def untag(obj):
    """ansible-inventory --output keeps data tags: {"__ansible_unsafe": "x"} is plain "x" here."""
    return obj["__ansible_unsafe"] if obj.keys() == {"__ansible_unsafe"} else obj


def all_hosts(listing):
    hosts = set(listing.get("_meta", {}).get("hostvars", {}))
    for name, group in listing.items():
        if name != "_meta" and isinstance(group, dict):
            hosts.update(group.get("hosts", ()))
    return hosts


def check_listing(listing, expected):
    """Guests found and guests whose ansible_host is their agent address; 'ok' when all are as expected."""
    hosts = all_hosts(listing)
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    found = sum(1 for name in expected if name in hosts)
    right = wrong = 0
    for name, address in expected.items():
        got = hostvars.get(name, {}).get("ansible_host")
        if got is None:
            continue
        if got == address:
            right += 1
        else:
            wrong += 1
    running = sum(1 for a in expected.values() if a)
    problems = []
    if found != len(expected):
        problems.append(f"{found}/{len(expected)} guests listed")
    if right != running:
        problems.append(f"{right}/{running} running guests with their agent address as ansible_host")
    if wrong:
        problems.append(f"{wrong} guests with a wrong ansible_host")
    return {"hosts": found, "ansible_host": right, "check": "; ".join(problems) or "ok"}


def endpoint(path):
    path = path.split("?", 1)[0].removeprefix("/api2/json")
    path = re.sub(r"^/nodes/[^/]+", "/nodes/{node}", path)
    path = re.sub(r"/(qemu|lxc)/\d+", r"/\1/{vmid}", path)
    return re.sub(r"^/pools/.+", "/pools/{pool}", path)


def run_inventory(fake, tool, label, workdir, cafile, secret, cache_dir, timeout, expected):
    """One ansible-inventory --list run against fake, with its request log cleared first."""
    name = re.sub(r"\W+", "-", f"{fake.count}-{label}").strip("-")
    # One source file per plugin and size: the inventory cache is keyed by the source's path, so the
    # warm-cache run must read the very file the cold run wrote its cache for.
    source = workdir / (re.sub(r"\W+", "-", f"{fake.count}-{tool}").strip("-") + ".proxmox.yml")
    source.write_text(json.dumps(config_for(tool, fake.url, secret, cafile, cache_dir), indent=2) + "\n")
    source.chmod(0o600)
    output = workdir / f"{name}.json"
    errors = workdir / f"{name}.stderr"
    command = [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list", "--output", str(output)]
    fake.reset_log()
    result = {"vms": fake.count, "tool": label, "plugin": tool}
    started = time.perf_counter()
    with errors.open("w") as err:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=run_env(workdir, tool, cafile),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    result["seconds"] = round(time.perf_counter() - started, 2)
    requests = fake.log()
    result["requests"] = len(requests)
    breakdown = {}
    for method, path, _body in requests:
        key = f"{method} {endpoint(path)}"
        breakdown[key] = breakdown.get(key, 0) + 1
    result["by_endpoint"] = dict(sorted(breakdown.items(), key=lambda kv: (-kv[1], kv[0])))
    if rc is None:
        result.update(status=f"timeout after {timeout} s", hosts=None, ansible_host=None)
    elif rc:
        tail = errors.read_text(errors="replace").strip().splitlines()[-5:]
        result.update(status=f"failed (exit {rc}): " + " | ".join(tail), hosts=None, ansible_host=None)
    else:
        listing = json.loads(output.read_text(), object_hook=untag)
        checked = check_listing(listing, expected)
        result.update(status=checked.pop("check"), **checked)
    return result


# ------------------------------------------------------------------------------------------ the bench


def nerv_present():
    return NERV_PLUGIN.is_file()


def bench(args):
    from _fake import Serving, expected_hosts
    from fakepve.certs import make_cert

    report = {
        "command": "python3 bench/inventory.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "versions": versions(),
        "settings": {
            "sizes": args.sizes,
            "latency_seconds": args.latency,
            "timeout_seconds": args.timeout,
            "nodes": 3,
            "layout": "even VMs running with agent: 1 and an agent reporting one IPv4 address; odd VMs stopped,"
            " no agent configured",
            "community_config": {k: v for k, v in config_for(COMMUNITY, "URL", "", "", "").items() if k != "url"}
            | {"token_secret": "***"},
        },
        "results": [],
        "comparisons": [],
    }
    with tempfile.TemporaryDirectory(prefix="nerv-bench-") as tmp:
        if args.keep:
            tmp = tempfile.mkdtemp(prefix="nerv-bench-")
            log(f"bench: keeping the inventory sources, outputs and logs in {tmp}")
        workdir = Path(tmp)
        (workdir / "ansible.cfg").write_text("[defaults]\n")
        cafile, keyfile, _der = make_cert(tmp, hosts=("127.0.0.1",))
        secret = secrets.token_hex(16)
        tools = [(COMMUNITY, "community.proxmox")]
        if nerv_present():
            tools.append((NERV, "nerv.homelab.proxmox"))
        else:
            log(f"bench: {NERV_PLUGIN.relative_to(REPO)} not present: the nerv.homelab side is skipped")

        # Warm-up, not measured: the first run of each plugin compiles and caches its Python files.
        with Serving(3, 0, cafile, keyfile, secret) as fake:
            for tool, label in tools:
                cache_dir = workdir / "warmup-cache" / label
                warm = run_inventory(
                    fake, tool, "warmup " + label, workdir, cafile, secret, cache_dir, args.timeout, expected_hosts(3)
                )
                log(f"bench: warm-up {label}: {warm['seconds']} s, {warm['requests']} requests, {warm['status']}")

        for count in args.sizes:
            expected = expected_hosts(count)
            with Serving(count, args.latency, cafile, keyfile, secret) as fake:
                log(f"bench: fakepve {fake.url}: {count} VMs on 3 nodes, {args.latency * 1000:g} ms per request")
                rows = {}
                for tool, label in tools:
                    cache_dir = workdir / f"cache-{count}-{label}"
                    runs = [label, label + " (warm cache)"] if tool == NERV else [label]
                    for run_label in runs:
                        if run_label.endswith("(warm cache)") and rows[label]["status"] != "ok":
                            result = {"vms": count, "tool": run_label, "plugin": tool}
                            result["status"] = "skipped: the run that fills the cache did not succeed"
                            report["results"].append(result)
                            continue
                        result = run_inventory(
                            fake, tool, run_label, workdir, cafile, secret, cache_dir, args.timeout, expected
                        )
                        log(
                            f"bench: {count} VMs, {run_label}: {result['seconds']} s, "
                            f"{result['requests']} requests, {result['status']}"
                        )
                        report["results"].append(result)
                        rows[run_label] = result
                if NERV not in dict(tools):
                    report["results"].append(
                        {"vms": count, "tool": "nerv.homelab.proxmox", "plugin": NERV, "status": "plugin not present"}
                    )
                report["comparisons"].append(compare(count, rows))
    return report


def compare(count, rows):
    """community / nerv (cold cache) for time and requests, and the issue's targets."""
    community = rows.get("community.proxmox")
    nerv = rows.get("nerv.homelab.proxmox")
    warm = rows.get("nerv.homelab.proxmox (warm cache)")
    out = {"vms": count, "time_ratio": None, "request_ratio": None}
    if not (community and nerv) or community["status"] != "ok" or nerv["status"] != "ok":
        out["note"] = "no ratio: a side did not run or did not list the expected inventory"
        return out
    out["time_ratio"] = round(community["seconds"] / nerv["seconds"], 1)
    out["request_ratio"] = round(community["requests"] / nerv["requests"], 1) if nerv["requests"] else None
    running = (count + 1) // 2
    out["targets"] = {
        "nerv requests <= 3 + running agent VMs": f"{nerv['requests']} <= {3 + running}: "
        + ("met" if nerv["requests"] <= 3 + running else "NOT met"),
        "warm cache makes 0 requests": f"{warm and warm['requests']}: "
        + ("met" if warm and warm["status"] == "ok" and warm["requests"] == 0 else "NOT met"),
        "at least 20x faster (stated for 300 VMs, 20 ms)": f"{out['time_ratio']}x: "
        + ("met" if out["time_ratio"] >= 20 else "NOT met"),
    }
    return out


def table(report):
    lines = []
    head = f"{'VMs':>5}  {'tool':<36} {'wall s':>8} {'requests':>9} {'hosts':>6} {'ansible_host':>12}  status"
    lines += [head, "-" * len(head)]
    for r in report["results"]:
        if "seconds" not in r:
            lines.append(f"{r['vms']:>5}  {r['tool']:<36} {'-':>8} {'-':>9} {'-':>6} {'-':>12}  {r['status']}")
            continue
        hosts = "-" if r["hosts"] is None else r["hosts"]
        with_host = "-" if r["ansible_host"] is None else r["ansible_host"]
        lines.append(
            f"{r['vms']:>5}  {r['tool']:<36} {r['seconds']:>8.2f} {r['requests']:>9} {hosts:>6} {with_host:>12}"
            f"  {r['status']}"
        )
    lines.append("")
    for c in report["comparisons"]:
        if c["time_ratio"] is None:
            lines.append(f"{c['vms']:>5} VMs: {c['note']}")
            continue
        req = "n/a" if c["request_ratio"] is None else f"{c['request_ratio']}x"
        lines.append(
            f"{c['vms']:>5} VMs: community.proxmox / nerv.homelab.proxmox: time {c['time_ratio']}x, requests {req}"
        )
        for name, verdict in c["targets"].items():
            lines.append(f"{'':>7}target {name}: {verdict}")
    return "\n".join(lines)


def header(report):
    v, m, s = report["versions"], report["machine"], report["settings"]
    return (
        f"{m['date']}; {m['cpus']} CPUs; Python {m['python']}; ansible {v['ansible']} (community.proxmox "
        f"{v['community.proxmox']}), ansible-core {v['ansible-core']}, fakepve {v['fakepve']}, proxmoxer "
        f"{v['proxmoxer']}, requests {v['requests']}; nerv.homelab {v['nerv.homelab']} at {v['nerv.homelab commit']}\n"
        f"fakepve: 3 nodes, {s['latency_seconds'] * 1000:g} ms per request; per-run timeout {s['timeout_seconds']} s\n"
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bench/inventory.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 VMs and no latency: a smoke test")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (sources, outputs, stderr)")
    parser.add_argument("--sizes", help="comma-separated VM counts (default 300,1000; --quick: 30)")
    parser.add_argument("--latency", type=float, help="seconds added to every response (default 0.02; --quick: 0)")
    parser.add_argument("--timeout", type=float, help="seconds before a run is killed (default 600; --quick: 120)")
    args = parser.parse_args(argv)
    args.sizes = [int(n) for n in (args.sizes or ("30" if args.quick else "300,1000")).split(",")]
    if any(n < 1 for n in args.sizes):
        parser.error("--sizes: VM counts must be positive")
    args.latency = args.latency if args.latency is not None else (0.0 if args.quick else 0.02)
    args.timeout = args.timeout if args.timeout is not None else (120.0 if args.quick else 600.0)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not in_bench_venv():
        python = ensure_venv()
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])
    report = bench(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(header(report))
        print(table(report))
    failed = [
        r for r in report["results"] if r["status"] != "ok" and not r["status"].startswith(("plugin not", "skipped"))
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
