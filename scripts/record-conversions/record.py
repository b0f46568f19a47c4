#!/usr/bin/env python3
"""Records what ComfyUI's own frontend makes of each official workflow template.

Serves the frontend's static files (from the `comfyui-frontend-package` wheel) and a minimal
ComfyUI API answered from the recorded fixtures (`object_info_full.json` and friends), opens
it in headless Chromium through Playwright, and for every template calls
`app.loadGraphData(template)` then `app.graphToPrompt()`. Each result is written as one JSON
file: {template, release, frontend, missing_classes, ui_workflow, api_prompt | frontend_error}.

Run through scripts/record-conversions.sh, which installs what this needs.
"""

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# Classes that only exist in the frontend (never looked up in object_info).
FRONTEND_ONLY = {"PrimitiveNode", "Reroute", "Note", "MarkdownNote"}
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def recorded(fixtures: Path, name: str):
    return json.loads((fixtures / name).read_text())["response"]["body_json"]


def api_answers(fixtures: Path) -> dict:
    """GET routes (without the `/api` prefix) → JSON body. Everything the frontend needs to
    boot; the recorded answers where the recording has them."""
    object_info = json.loads((fixtures / "object_info_full.json").read_text())
    users = recorded(fixtures, "get_users.json")
    # Single-user mode without a migration prompt.
    users = dict(users, migrated=True)
    return {
        "/object_info": object_info,
        "/system_stats": recorded(fixtures, "get_system_stats.json"),
        "/features": recorded(fixtures, "get_features.json"),
        "/embeddings": recorded(fixtures, "get_embeddings.json"),
        "/users": users,
        # No stored settings, but no first-run tutorial (it would load a template itself).
        "/settings": {"Comfy.TutorialCompleted": True},
        "/extensions": [],
        "/i18n": {},
        "/workflow_templates": {},
        "/models": recorded(fixtures, "get_models.json"),
        "/queue": {"queue_running": [], "queue_pending": []},
        "/prompt": {"exec_info": {"queue_remaining": 0}},
        "/history": {},
    }


def make_handler(static_dir: Path, answers: dict, log: list):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_json(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def api_path(self):
            path = urlsplit(self.path).path
            if path.startswith("/api/"):
                return path[4:]
            if path in answers:
                return path
            return None

        def do_GET(self):
            path = urlsplit(self.path).path
            api = self.api_path()
            if api is not None:
                if api in answers:
                    return self.send_json(200, answers[api])
                if api.startswith("/userdata"):
                    if api == "/userdata" or api.startswith("/userdata?"):
                        return self.send_json(200, [])
                    return self.send_json(404, {"error": "not found"})
                if api.startswith("/settings/"):
                    return self.send_json(200, None)
                if api != "/view":  # the templates' example inputs: not needed to convert
                    log.append(f"GET {api} (answered 404)")
                return self.send_json(404, {"error": "not recorded"})
            # Static files of the frontend.
            rel = path.lstrip("/") or "index.html"
            file = (static_dir / rel).resolve()
            if static_dir.resolve() not in file.parents or not file.is_file():
                if not rel.startswith("templates/"):
                    log.append(f"GET {self.path} (no such file)")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = file.read_bytes()
            ctype = {
                ".html": "text/html",
                ".js": "text/javascript",
                ".mjs": "text/javascript",
                ".css": "text/css",
                ".json": "application/json",
                ".svg": "image/svg+xml",
                ".woff2": "font/woff2",
                ".woff": "font/woff",
                ".ttf": "font/ttf",
                ".png": "image/png",
                ".webp": "image/webp",
                ".wasm": "application/wasm",
            }.get(file.suffix, "application/octet-stream")
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            api = self.api_path() or urlsplit(self.path).path
            if api.startswith("/settings") or api.startswith("/userdata"):
                return self.send_json(200, {})
            log.append(f"POST {self.path} (answered 404)")
            return self.send_json(404, {"error": "not recorded"})

        do_PUT = do_POST
        do_DELETE = do_POST

    return Handler


def node_classes(graph: dict, out: set):
    for node in graph.get("nodes") or []:
        t = node.get("type")
        if isinstance(t, str):
            out.add(t)
    for sub in (graph.get("definitions") or {}).get("subgraphs") or []:
        node_classes(sub, out)


def missing_classes(workflow: dict, object_info: dict) -> list:
    """Node types of the workflow (subgraphs included) that object_info does not have."""
    types = set()
    node_classes(workflow, types)
    subgraph_ids = set()

    def collect(g):
        for sub in (g.get("definitions") or {}).get("subgraphs") or []:
            if isinstance(sub.get("id"), str):
                subgraph_ids.add(sub["id"])
            collect(sub)

    collect(workflow)
    return sorted(
        t
        for t in types
        if t not in object_info and t not in FRONTEND_ONLY and t not in subgraph_ids
    )


CONVERT_JS = """
async ([workflow, name]) => {
  const app = window.app ?? window.comfyAPI?.app?.app;
  await app.loadGraphData(structuredClone(workflow), true, false, name, {
    showMissingNodesDialog: false,
    showMissingModelsDialog: false,
  });
  // Dynamic prompts ({a|b}) are resolved with Math.random; pin it so that the choice is the
  // first option every time (the comfydeck test resolves them the same way).
  const random = Math.random;
  Math.random = () => 0;
  try {
    const { output } = await app.graphToPrompt();
    return JSON.parse(JSON.stringify(output));
  } finally {
    Math.random = random;
  }
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--static", required=True, type=Path, help="the frontend's static/ folder")
    ap.add_argument("--fixtures", required=True, type=Path, help="the recorded ComfyUI fixtures")
    ap.add_argument("--templates", required=True, type=Path, help="folder of template .json files")
    ap.add_argument("--release", required=True, help="templates release (for the records)")
    ap.add_argument("--frontend", required=True, help="frontend version (for the records)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--only", default=None, help="regex: record only matching templates")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    answers = api_answers(args.fixtures)
    object_info = answers["/object_info"]
    log: list = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(args.static, answers, log))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    templates = sorted(
        p
        for p in args.templates.glob("*.json")
        if not p.name.startswith("index.") and (args.only is None or re.search(args.only, p.stem))
    )
    args.out.mkdir(parents=True, exist_ok=True)
    counts = {"recorded": 0, "frontend_error": 0, "with_missing_classes": 0}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True)
        page = browser.new_page()
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        page.goto(url)
        page.wait_for_function(
            "() => { const a = window.app ?? window.comfyAPI?.app?.app;"
            " return !!(a && a.graph && a.vueAppReady !== false); }",
            timeout=120_000,
        )
        page.wait_for_timeout(2000)
        for path in templates:
            workflow = json.loads(path.read_text())
            if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
                print(f"skip {path.name}: not a UI-format workflow", file=sys.stderr)
                continue
            record = {
                "template": path.stem,
                "release": args.release,
                "frontend": args.frontend,
                "missing_classes": missing_classes(workflow, object_info),
                "ui_workflow": workflow,
            }
            try:
                record["api_prompt"] = page.evaluate(CONVERT_JS, [workflow, path.stem])
                counts["recorded"] += 1
            except Exception as e:  # the frontend refused the template
                record["frontend_error"] = str(e).splitlines()[0]
                counts["frontend_error"] += 1
            if record["missing_classes"]:
                counts["with_missing_classes"] += 1
            (args.out / f"{path.stem}.json").write_text(
                json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
                + "\n"
            )
        browser.close()
    server.shutdown()
    for line in sorted(set(log)):
        print("server:", line, file=sys.stderr)
    errors = [c for c in console if c.startswith("pageerror")]
    for line in errors[:20]:
        print("page:", line, file=sys.stderr)
    print(json.dumps(dict(counts, release=args.release, templates=len(templates))))


if __name__ == "__main__":
    main()
