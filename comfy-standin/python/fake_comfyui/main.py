"""A small ComfyUI stand-in for the custom-node tests and the "pod" browser tests: it loads
`custom_nodes/*` the way ComfyUI does and answers the routes comfydeck asks of a supervised
ComfyUI. Python's standard library only.

- Every entry of `custom_nodes/` is imported as a module, like ComfyUI's loader: folders
  through their `__init__.py`, single `*.py` files directly; `__pycache__`, other files and
  names ending in `.disabled` are skipped (so `custom_nodes/.disabled/` is never loaded).
- A module's `NODE_CLASS_MAPPINGS` become node classes whose `python_module` is
  `custom_nodes.<folder>`, as in ComfyUI's `/object_info`; their input spec is empty.
- A module that raises prints its traceback and
  `Cannot import <path> module for custom nodes: <error>`, then the import-times list, the
  lines ComfyUI's log has.
- Three built-in classes with ComfyUI's input specs (`input`, `input_order`, `output`,
  `output_name`, …): `CheckpointLoaderSimple` (its `ckpt_name` choices are the model files
  under the `checkpoints` folders, read again on every request, so a file downloaded later
  shows up without a restart), `KSampler` and `SaveImage`.
- The model folders come from `--extra-model-paths-config <yaml>` (each section's `base_path`
  joined with the sub-folders listed under a folder key, read with plain line parsing), plus
  `./models/<folder>` as in ComfyUI.
- `POST /prompt` checks what ComfyUI checks of the values given (known classes, a choice among
  the choices, numbers within min and max, at least one output node; unlike ComfyUI, every node
  is checked, and missing inputs are not) and answers 400 with ComfyUI's error body, or
  `{"prompt_id", "number", "node_errors": {}}`. An accepted prompt "runs" at once: it is in
  `GET /history` and `/history/<id>` as a success with no outputs, and `/queue` stays empty.
- `GET /ws?clientId=…` is ComfyUI's WebSocket: `status` (with the `sid`) and `feature_flags`
  when it opens; for each accepted prompt `status`, `execution_start`, `execution_cached`,
  `executing` per node, `execution_success`, `status` and `executing` with node null, sent to
  the socket whose clientId is the prompt's `client_id` (`status` goes to every socket), as
  ComfyUI does. Pings are answered; what the client sends is otherwise ignored.
- `GET /system_stats`, `/object_info`, `/object_info/<class>`, `/queue`, `/history`,
  `/history/<id>`, `/models`, `/models/<folder>` and `/embeddings` answer JSON, `/ws` upgrades;
  `POST /prompt`, `/history` (`delete`, `clear`) and `/interrupt` too; every route also
  under `/api/`; everything else is 404.

Run as `python main.py --listen 127.0.0.1 --port N [--extra-model-paths-config FILE]
[ComfyUI's other flags, ignored]` from the folder that holds `custom_nodes/`, with the Python
whose packages the nodes may import.
"""

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import struct
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

# ComfyUI's `supported_pt_extensions`: the files a model folder lists.
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
# The model folders ComfyUI always knows (a subset), each also under `./models/`.
MODEL_FOLDERS = ("checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "embeddings")

KSAMPLER = {
    "input": {
        "required": {
            "model": ["MODEL", {"tooltip": "The model used for denoising the input latent."}],
            "seed": ["INT", {
                "default": 0,
                "min": 0,
                "max": 0xFFFFFFFFFFFFFFFF,
                "control_after_generate": True,
                "tooltip": "The random seed used for creating the noise.",
            }],
            "steps": ["INT", {"default": 20, "min": 1, "max": 100}],
            "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
            "sampler_name": [["euler", "euler_ancestral", "dpmpp_2m"], {}],
            "scheduler": [["normal", "karras"], {}],
            "positive": ["CONDITIONING", {}],
            "negative": ["CONDITIONING", {}],
            "latent_image": ["LATENT", {}],
            "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
        }
    },
    "input_order": {
        "required": [
            "model", "seed", "steps", "cfg", "sampler_name", "scheduler",
            "positive", "negative", "latent_image", "denoise",
        ]
    },
    "output": ["LATENT"],
    "output_is_list": [False],
    "output_name": ["LATENT"],
    "display_name": "KSampler",
    "description": "Uses the provided model, positive and negative conditioning to denoise the latent image.",
    "category": "sampling",
    "output_node": False,
}

SAVE_IMAGE = {
    "input": {
        "required": {
            "images": ["IMAGE", {"tooltip": "The images to save."}],
            "filename_prefix": ["STRING", {"default": "ComfyUI"}],
        },
        "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
    },
    "input_order": {"required": ["images", "filename_prefix"], "hidden": ["prompt", "extra_pnginfo"]},
    "output": [],
    "output_is_list": [],
    "output_name": [],
    "display_name": "Save Image",
    "description": "Saves the input images to your ComfyUI output directory.",
    "category": "image",
    "output_node": True,
}


def checkpoint_loader(files):
    return {
        "input": {
            "required": {
                "ckpt_name": [list(files), {"tooltip": "The name of the checkpoint (model) to load."}],
            }
        },
        "input_order": {"required": ["ckpt_name"]},
        "output": ["MODEL", "CLIP", "VAE"],
        "output_is_list": [False, False, False],
        "output_name": ["MODEL", "CLIP", "VAE"],
        "display_name": "Load Checkpoint",
        "description": "Loads a diffusion model checkpoint, diffusion models are used to denoise latents.",
        "category": "loaders",
        "output_node": False,
    }


def class_info(name, module):
    """A pack's class: no inputs, no outputs."""
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


# -- model folders ----------------------------------------------------------------------------

def yaml_scalar(text):
    """A plain, 'single' or "double" quoted YAML scalar (one line), without its quotes."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        out, i, body = [], 0, text[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                out.append({"n": "\n", "t": "\t"}.get(body[i + 1], body[i + 1]))
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip()
    return text


def extra_model_paths(config):
    """{folder: [absolute paths]} from an extra_model_paths.yaml: every top-level section's
    `base_path` joined with the paths listed (a `|` block of lines, or one value) under each
    other key. Line parsing only: the shape comfydeck and ComfyUI's example file use."""
    with open(config, encoding="utf-8") as f:
        lines = f.read().splitlines()
    here = os.path.dirname(os.path.abspath(config))
    sections = []  # [(base_path, {key: [values]})]
    key, key_indent, block = None, 0, False
    for raw in lines:
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if block and indent > key_indent:
            sections[-1][1][key].append(yaml_scalar(line))
            continue
        block = False
        if indent == 0:
            sections.append((None, {}))
            continue
        if not sections or ":" not in line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name == "base_path":
            sections[-1] = (yaml_scalar(value), sections[-1][1])
        elif name == "is_default":
            continue
        elif value in ("|", "|-", "|+", ">", ">-"):
            key, key_indent, block = name, indent, True
            sections[-1][1][key] = []
        elif value:
            sections[-1][1][name] = [yaml_scalar(value)]
    folders = {}
    for base, keys in sections:
        base = os.path.expanduser(base) if base else ""
        if base and not os.path.isabs(base):
            base = os.path.join(here, base)
        for folder, paths in keys.items():
            for p in paths:
                if not p:
                    continue
                full = os.path.join(base, p) if base else p
                if not os.path.isabs(full):
                    full = os.path.join(here, full)
                folders.setdefault(folder, []).append(os.path.normpath(full))
    return folders


def model_folders(configs, base):
    """{folder: [paths]}: the yaml files' folders first, then `<base>/models/<folder>`."""
    folders = {}
    for config in configs:
        try:
            for folder, paths in extra_model_paths(config).items():
                folders.setdefault(folder, []).extend(paths)
        except OSError as e:
            print(f"Cannot read extra model paths {config}: {e}", file=sys.stderr)
    for folder in MODEL_FOLDERS:
        folders.setdefault(folder, []).append(os.path.join(base, "models", folder))
    return folders


def model_files(paths):
    """The model files under `paths`, recursively, as sorted relative paths with `/`."""
    found = set()
    for root in paths:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if os.path.splitext(name)[1].lower() in MODEL_EXTENSIONS:
                    rel = os.path.relpath(os.path.join(dirpath, name), root)
                    found.add(rel.replace(os.sep, "/"))
    return sorted(found)


# -- custom nodes -----------------------------------------------------------------------------

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


# -- prompts ----------------------------------------------------------------------------------

def prompt_error(kind, message, details="", node_errors=None):
    return {
        "error": {"type": kind, "message": message, "details": details, "extra_info": {}},
        "node_errors": node_errors or {},
    }


def value_errors(info, inputs):
    """ComfyUI's errors for the given (not linked) values that do not fit the input spec."""
    spec = dict(info["input"].get("required", {}))
    spec.update(info["input"].get("optional", {}))
    errors = []
    for name, value in inputs.items():
        config = spec.get(name)
        if config is None or (isinstance(value, list) and len(value) == 2):
            continue
        kind, options = config[0], (config[1] if len(config) > 1 else {})

        def error(kind_, message, details):
            errors.append({
                "type": kind_,
                "message": message,
                "details": details,
                "extra_info": {"input_name": name, "input_config": config, "received_value": value},
            })

        if isinstance(kind, list):
            if value not in kind:
                error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {kind!r}")
        elif kind in ("INT", "FLOAT") and isinstance(value, (int, float)) and not isinstance(value, bool):
            if "min" in options and value < options["min"]:
                error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name)
            if "max" in options and value > options["max"]:
                error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name)
    return errors


def check_prompt(prompt, object_info):
    """`(status, error body)` when ComfyUI would refuse `prompt`, else None; and the ids of its
    output nodes."""
    if not isinstance(prompt, dict):
        return prompt_error("no_prompt", "No prompt provided", "No prompt provided"), []
    for node_id, node in prompt.items():
        class_type = node.get("class_type") if isinstance(node, dict) else None
        if not class_type:
            return prompt_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            ), []
        if class_type not in object_info:
            return prompt_error(
                "invalid_prompt",
                f"Cannot execute because node {class_type} does not exist.",
                f"Node ID '#{node_id}'",
            ), []
    outputs = [i for i, n in prompt.items() if object_info[n["class_type"]]["output_node"]]
    if not outputs:
        return prompt_error("prompt_no_outputs", "Prompt has no outputs"), []
    node_errors = {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs") or {}
        errors = value_errors(object_info[node["class_type"]], inputs if isinstance(inputs, dict) else {})
        if errors:
            node_errors[node_id] = {
                "errors": errors,
                "dependent_outputs": outputs,
                "class_type": node["class_type"],
            }
    if node_errors:
        return prompt_error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", "", node_errors
        ), outputs
    return None, outputs


# -- the WebSocket (RFC 6455, server side: text frames out, pings answered) ------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Socket:
    """One open /ws connection."""

    def __init__(self, connection, client_id):
        self.connection = connection
        self.client_id = client_id
        self.lock = threading.Lock()

    def send(self, opcode, payload):
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self.lock:
            self.connection.sendall(head + payload)

    def send_json(self, message):
        self.send(0x1, json.dumps(message).encode())


def read_exact(stream, n):
    data = b""
    while len(data) < n:
        piece = stream.read(n - len(data))
        if not piece:
            raise EOFError
        data += piece
    return data


def read_frame(stream):
    """(opcode, payload) of the next frame from the client (masked, as clients send)."""
    b0, b1 = read_exact(stream, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(stream, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(stream, 8))[0]
    mask = read_exact(stream, 4) if b1 & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(read_exact(stream, n)))
    return b0 & 0x0F, payload


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--extra-model-paths-config", nargs="+", action="append", default=[])
    args, _unknown = parser.parse_known_args()

    base = os.getcwd()
    sys.path.insert(0, base)
    configs = [c for group in args.extra_model_paths_config for c in group]
    folders = model_folders(configs, base)
    packs = load_custom_nodes(base)
    static_info = {
        "KSampler": dict(KSAMPLER, name="KSampler", python_module="nodes"),
        "SaveImage": dict(SAVE_IMAGE, name="SaveImage", python_module="nodes"),
    }
    # A pack that maps a built-in class name replaces it, as the last import wins in ComfyUI.
    for name, module in packs.items():
        static_info[name] = class_info(name, module)

    def object_info():
        """Every class, with the checkpoint choices as they are on disk now."""
        info = {
            "CheckpointLoaderSimple": dict(
                checkpoint_loader(model_files(folders.get("checkpoints", []))),
                name="CheckpointLoaderSimple",
                python_module="nodes",
            )
        }
        info.update(static_info)
        return info

    lock = threading.Lock()
    history = {}  # prompt id -> entry, oldest first
    counter = [0]
    sockets = []  # open Socket objects

    def publish(message, client_id=None):
        """Sends to every socket, or to the sockets of `client_id` only."""
        with lock:
            targets = [s for s in sockets if client_id is None or s.client_id == client_id]
        for target in targets:
            try:
                target.send_json(message)
            except OSError:
                with lock:
                    if target in sockets:
                        sockets.remove(target)

    def status(sid=None):
        data = {"status": {"exec_info": {"queue_remaining": 0}}}
        if sid:
            data["sid"] = sid
        return {"type": "status", "data": data}

    def run_events(prompt_id, prompt, client_id):
        """The messages of a run that finishes at once, as ComfyUI sends them."""
        if not client_id:
            return
        now = int(time.time() * 1000)
        publish({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}})
        publish({"type": "execution_start", "data": {"prompt_id": prompt_id, "timestamp": now}}, client_id)
        publish({"type": "execution_cached", "data": {"nodes": [], "prompt_id": prompt_id, "timestamp": now}}, client_id)
        for node_id in prompt:
            publish({"type": "executing", "data": {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}}, client_id)
        publish({"type": "execution_success", "data": {"prompt_id": prompt_id, "timestamp": now}}, client_id)
        publish(status())
        publish({"type": "executing", "data": {"node": None, "prompt_id": prompt_id}}, client_id)

    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def route(self):
            url = urlparse(self.path)
            path = unquote(url.path).rstrip("/")
            if path.startswith("/api/"):
                path = path[len("/api"):]
            return path, parse_qs(url.query)

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw or b"null")
            except ValueError:
                return None

        def websocket(self, query):
            key = self.headers.get("Sec-WebSocket-Key")
            if not key or "websocket" not in (self.headers.get("Upgrade") or "").lower():
                self.answer(400, {"error": "not a WebSocket request"})
                return
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            # Written by hand: the handler's own status line would say HTTP/1.0.
            self.wfile.write(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
            )
            self.wfile.flush()
            client_id = (query.get("clientId") or [""])[0] or uuid.uuid4().hex
            socket = Socket(self.connection, client_id)
            self.close_connection = True
            try:
                socket.send_json(status(client_id))
                socket.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True, "max_upload_size": 104857600}})
                with lock:
                    sockets.append(socket)
                while True:
                    opcode, payload = read_frame(self.rfile)
                    if opcode == 0x8:
                        socket.send(0x8, payload[:2])
                        break
                    if opcode == 0x9:
                        socket.send(0xA, payload)
            except (EOFError, OSError, ValueError):
                pass
            finally:
                with lock:
                    if socket in sockets:
                        sockets.remove(socket)

        def do_GET(self):
            path, query = self.route()
            if path == "/ws":
                self.websocket(query)
            elif path == "/system_stats":
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
                self.answer(200, object_info())
            elif path.startswith("/object_info/"):
                name = path[len("/object_info/"):]
                info = object_info()
                self.answer(200, {name: info[name]} if name in info else {})
            elif path == "/queue":
                self.answer(200, {"queue_running": [], "queue_pending": []})
            elif path == "/history":
                with lock:
                    entries = list(history.items())
                try:
                    max_items = int(query.get("max_items", [""])[0])
                except ValueError:
                    max_items = None
                if max_items is not None and max_items >= 0:
                    entries = entries[len(entries) - max_items:] if max_items else []
                self.answer(200, dict(entries))
            elif path.startswith("/history/"):
                prompt_id = path[len("/history/"):]
                with lock:
                    entry = history.get(prompt_id)
                self.answer(200, {prompt_id: entry} if entry else {})
            elif path == "/models":
                self.answer(200, sorted(folders))
            elif path.startswith("/models/"):
                folder = path[len("/models/"):]
                if folder in folders:
                    self.answer(200, model_files(folders[folder]))
                else:
                    self.answer(404, {"error": "not found"})
            elif path == "/embeddings":
                self.answer(200, [])
            else:
                self.answer(404, {"error": "not found"})

        def do_POST(self):
            path, _query = self.route()
            body = self.body()
            if path == "/prompt":
                self.prompt(body if isinstance(body, dict) else {})
            elif path == "/history":
                with lock:
                    if isinstance(body, dict) and body.get("clear"):
                        history.clear()
                    for prompt_id in (body or {}).get("delete", []) if isinstance(body, dict) else []:
                        history.pop(prompt_id, None)
                self.answer(200, None)
            elif path in ("/interrupt", "/queue", "/free"):
                self.answer(200, None)
            else:
                self.answer(404, {"error": "not found"})

        def prompt(self, body):
            prompt = body.get("prompt")
            refused, outputs = check_prompt(prompt, object_info())
            if refused:
                self.answer(400, refused)
                return
            prompt_id = str(body.get("prompt_id") or uuid.uuid4())
            extra = dict(body.get("extra_data") or {})
            if body.get("client_id"):
                extra["client_id"] = body["client_id"]
            now = int(time.time() * 1000)
            with lock:
                number = counter[0]
                counter[0] += 1
                if body.get("front"):
                    number = -number
                history.pop(prompt_id, None)
                history[prompt_id] = {
                    "prompt": [number, prompt_id, prompt, extra, outputs],
                    "outputs": {},
                    "status": {
                        "status_str": "success",
                        "completed": True,
                        "messages": [
                            ["execution_start", {"prompt_id": prompt_id, "timestamp": now}],
                            ["execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": now}],
                            ["execution_success", {"prompt_id": prompt_id, "timestamp": now}],
                        ],
                    },
                    "meta": {},
                }
            self.answer(200, {"prompt_id": prompt_id, "number": number, "node_errors": {}})
            threading.Thread(
                target=run_events, args=(prompt_id, prompt, body.get("client_id")), daemon=True
            ).start()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((args.listen, args.port), Handler)
    print(f"To see the GUI go to: http://{args.listen}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
