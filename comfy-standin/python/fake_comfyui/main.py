"""A small ComfyUI stand-in for the custom-node tests: it loads `custom_nodes/*` the way
ComfyUI does and answers the few routes comfydeck asks of a supervised ComfyUI.

- Every entry of `custom_nodes/` is imported as a module, like ComfyUI's loader: folders
  through their `__init__.py`, single `*.py` files directly; `__pycache__`, other files and
  names ending in `.disabled` are skipped (so `custom_nodes/.disabled/` is never loaded).
- A module's `NODE_CLASS_MAPPINGS` become node classes whose `python_module` is
  `custom_nodes.<folder>`, as in ComfyUI's `/object_info`.
- A module that raises prints its traceback and
  `Cannot import <path> module for custom nodes: <error>`, then the import-times list, the
  lines ComfyUI's log has.
- `GET /system_stats`, `/object_info`, `/object_info/<class>`, `/queue`, `/history` and
  `/embeddings` answer JSON; everything else is 404.

Run as `python main.py --listen 127.0.0.1 --port N [ComfyUI's other flags, ignored]` from the
folder that holds `custom_nodes/`, with the Python whose packages the nodes may import.
"""

import argparse
import importlib.util
import json
import os
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

BUILTIN = {"KSampler": "nodes", "CheckpointLoaderSimple": "nodes", "SaveImage": "nodes"}


def class_info(name, module):
    return {
        "input": {"required": {}},
        "input_order": {"required": []},
        "output": [],
        "output_is_list": [],
        "output_name": [],
        "name": name,
        "display_name": name,
        "description": "",
        "python_module": module,
        "category": "fake",
        "output_node": False,
    }


def load_custom_nodes(base):
    """Imports each custom-node module; returns {class: python_module}."""
    classes = {}
    folder = os.path.join(base, "custom_nodes")
    if not os.path.isdir(folder):
        return classes
    times = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name == "__pycache__" or name.endswith(".disabled"):
            continue
        if os.path.isfile(path) and os.path.splitext(path)[1] != ".py":
            continue
        started = time.perf_counter()
        module_name = os.path.splitext(name)[0]
        ok = False
        try:
            if os.path.isdir(path):
                init = os.path.join(path, "__init__.py")
                spec = importlib.util.spec_from_file_location(
                    module_name, init, submodule_search_locations=[path]
                )
            else:
                spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            for cls in getattr(module, "NODE_CLASS_MAPPINGS", {}) or {}:
                classes[cls] = "custom_nodes." + name
            ok = True
        except Exception as e:
            print(traceback.format_exc(), file=sys.stderr)
            print(f"Cannot import {path} module for custom nodes: {e}", file=sys.stderr)
        times.append((time.perf_counter() - started, path, ok))
    if times:
        print("\nImport times for custom nodes:", file=sys.stderr)
        for took, path, ok in sorted(times):
            failed = "" if ok else " (IMPORT FAILED)"
            print(f"{took:6.1f} seconds{failed}: {path}", file=sys.stderr)
        print("", file=sys.stderr)
    return classes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    args, _unknown = parser.parse_known_args()

    base = os.getcwd()
    sys.path.insert(0, base)
    classes = dict(BUILTIN)
    classes.update(load_custom_nodes(base))
    object_info = {name: class_info(name, module) for name, module in classes.items()}

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            path = unquote(urlparse(self.path).path).rstrip("/")
            if path.startswith("/api/"):
                path = path[len("/api"):]
            if path == "/system_stats":
                self.answer(200, {
                    "system": {
                        "os": "posix",
                        "python_version": sys.version,
                        "comfyui_version": "0.0.0-fake",
                        "embedded_python": False,
                        "argv": sys.argv,
                        "ram_total": 0,
                        "ram_free": 0,
                    },
                    "devices": [],
                })
            elif path == "/object_info":
                self.answer(200, object_info)
            elif path.startswith("/object_info/"):
                name = path[len("/object_info/"):]
                self.answer(200, {name: object_info[name]} if name in object_info else {})
            elif path == "/queue":
                self.answer(200, {"queue_running": [], "queue_pending": []})
            elif path in ("/history", "/embeddings"):
                self.answer(200, {} if path == "/history" else [])
            else:
                self.answer(404, {"error": "not found"})

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    print(f"To see the GUI go to: http://{args.listen}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
