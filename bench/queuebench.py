#!/usr/bin/env python3
"""Drives bench/queue.sh: jobs through a deck's queue against prompts sent straight to the
ComfyUI stand-ins the workers use. Standard library only.

  queuebench.py --deck URL --standins URL,URL,... --jobs N --sequential M --prompt FILE

Prints, for the queue and for direct submission:
  overhead  submit -> the ComfyUI receives the prompt, p50/p99, one at a time on an idle queue
  throughput  N jobs submitted by 8 threads until every one has finished, jobs/s
"""

import argparse
import json
import statistics
import threading
import time
import urllib.request
import uuid


def call(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
        return json.loads(text) if text else None


def now_ms():
    return time.time() * 1000.0


def received_at(standins):
    """prompt id -> when a stand-in received its POST /prompt (ms since the epoch)."""
    seen = {}
    for base in standins:
        for r in call("GET", base + "/__standin/requests"):
            if r["method"] == "POST" and r.get("prompt_id"):
                seen.setdefault(r["prompt_id"], r["at_ms"])
    return seen


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


def wait_job(deck, job_id):
    while True:
        job = call("GET", f"{deck}/api/jobs/get?id={job_id}")
        if job["state"] not in ("pending", "running"):
            return job
        time.sleep(0.005)


def wait_standin_idle(base, prompt_id):
    while True:
        history = call("GET", f"{base}/history/{prompt_id}")
        if history:
            return
        time.sleep(0.005)


def overhead_queue(deck, standins, prompt, n):
    sent = {}
    for _ in range(n):
        t = now_ms()
        answer = call("POST", deck + "/api/jobs/submit", {"workflow": prompt, "name": "bench"})
        sent[answer["prompt_id"]] = t
        job = wait_job(deck, answer["job_id"])
        if job["state"] != "succeeded":
            raise SystemExit(f"job {job['id']} ended {job['state']}: {job.get('error')}")
    seen = received_at(standins)
    return [seen[p] - t for p, t in sent.items() if p in seen]


def overhead_direct(standins, prompt, n):
    sent = {}
    for i in range(n):
        base = standins[i % len(standins)]
        prompt_id = str(uuid.uuid4())
        t = now_ms()
        call("POST", base + "/prompt", {"prompt": prompt, "prompt_id": prompt_id, "client_id": "bench"})
        sent[prompt_id] = t
        wait_standin_idle(base, prompt_id)
    seen = received_at(standins)
    return [seen[p] - t for p, t in sent.items() if p in seen]


def in_threads(n, work, threads=8):
    counter = iter(range(n))
    lock = threading.Lock()
    errors = []

    def run():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                work(i)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} submissions failed, first: {errors[0]}")


def throughput_queue(deck, prompt, n):
    ids = []
    t0 = time.time()
    in_threads(n, lambda i: ids.append(
        call("POST", deck + "/api/jobs/submit", {"workflow": prompt, "name": "bench"})["job_id"]))
    while True:
        status = call("GET", deck + "/api/queue/status")
        if status["pending"] == 0 and status["running"] == 0:
            break
        time.sleep(0.02)
    elapsed = time.time() - t0
    failed = [j for j in ids[-20:] if call("GET", f"{deck}/api/jobs/get?id={j}")["state"] != "succeeded"]
    if failed:
        raise SystemExit(f"jobs did not succeed: {failed}")
    return n / elapsed


def throughput_direct(standins, prompt, n):
    ids = [[] for _ in standins]
    t0 = time.time()

    def submit(i):
        k = i % len(standins)
        prompt_id = str(uuid.uuid4())
        call("POST", standins[k] + "/prompt", {"prompt": prompt, "prompt_id": prompt_id, "client_id": "bench"})
        ids[k].append(prompt_id)

    in_threads(n, submit)
    for k, base in enumerate(standins):
        for prompt_id in ids[k][-1:]:
            wait_standin_idle(base, prompt_id)
        while True:
            queue = call("GET", base + "/queue")
            if not queue["queue_running"] and not queue["queue_pending"]:
                break
            time.sleep(0.02)
    return n / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deck", required=True)
    ap.add_argument("--standins", required=True)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--sequential", type=int, default=100)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--label", default="queue")
    ap.add_argument("--direct", action="store_true", help="also measure direct submission")
    args = ap.parse_args()
    standins = args.standins.split(",")
    with open(args.prompt) as f:
        prompt = json.load(f)["request"]["body_json"]["prompt"]

    q = overhead_queue(args.deck, standins, prompt, args.sequential)
    rate = throughput_queue(args.deck, prompt, args.jobs)
    print(f"{args.label:>8}: {rate:7.1f} jobs/s through {len(standins)} workers; "
          f"submit -> ComfyUI p50 {pct(q, 50):6.1f} ms, p99 {pct(q, 99):6.1f} ms ({len(q)} jobs)")
    if args.direct:
        d = overhead_direct(standins, prompt, args.sequential)
        drate = throughput_direct(standins, prompt, args.jobs)
        print(f"{'direct':>8}: {drate:7.1f} prompts/s to {len(standins)} stand-ins; "
              f"send -> ComfyUI p50 {pct(d, 50):6.1f} ms, p99 {pct(d, 99):6.1f} ms")
        print(f"{'ratio':>8}: throughput {rate / drate:.2f}x direct; "
              f"queue overhead p50 +{pct(q, 50) - pct(d, 50):.1f} ms, p99 +{pct(q, 99) - pct(d, 99):.1f} ms")


if __name__ == "__main__":
    main()
