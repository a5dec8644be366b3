"""`tinysense deploy`: compile firmware/ for the node and copy what changed; with --model,
--meta and --app also what the app runs (docs/app.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tinysense.cli import add_target_args, env_default
from tinysense.errors import TinysenseError
from tinysense.flash.romfs import MODELS_DIR as _MODELS
from tinysense.node import open_node
from tinysense.node.deploy import deploy
from tinysense.progress import Progress

# the node's model directory, as deploy --romfs and the app use it (flash/romfs.py)
MODELS_DIR = "/" + _MODELS


def _app_files(args, board) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
    """({name.tsm: package}, [(node path, bytes)] of the metas and app.json), all read and
    checked before anything is copied: a .tflite is converted for the node's board, a meta is
    slimmed to what the node reads, app.json must be a JSON object."""
    from tinysense.demo import node_meta

    models, files = {}, []
    paths = [Path(m) for m in args.model or ()]
    metas = [Path(m) for m in args.meta or ()]
    if len(metas) > len(paths):
        raise TinysenseError(f"{len(metas)} --meta for {len(paths)} --model: give one meta per "
                             "model, in the same order")
    for i, path in enumerate(paths):
        if not path.is_file():
            raise TinysenseError(f"--model {path}: no such file")
        name = path.stem + ".tsm"
        if path.suffix == ".tflite":
            from tinysense.convert import convert_model

            models[name] = convert_model(path, board=board).package
        else:
            models[name] = path.read_bytes()
        if i < len(metas):
            try:
                meta = json.loads(metas[i].read_text())
                slim = node_meta(meta)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise TinysenseError(f"--meta {metas[i]}: not a model meta.json ({exc})") from None
            files.append((f"{MODELS_DIR}/{path.stem}.json",
                          json.dumps(slim, separators=(",", ":")).encode()))
    if args.app:
        try:
            app = json.loads(Path(args.app).read_text())
        except (OSError, ValueError) as exc:
            raise TinysenseError(f"--app {args.app}: cannot read it as JSON ({exc})") from None
        if not isinstance(app, dict):
            raise TinysenseError(f"--app {args.app}: app.json must be a JSON object")
        files.append(("/app.json", json.dumps(app).encode()))
    return models, files


def _record_model(node, args, app: dict | None) -> None:
    """Tell the gateway registry which model the node's app runs (its class labels then name
    the device's results in uplinks, the monitor and --publish), when the node is provisioned
    and its device is in the registry; otherwise say why not, in one line."""
    from tinysense.gateway.run import set_device_model
    from tinysense.gateway.store import DEFAULT_DB

    pairs = list(zip(args.model or (), args.meta or ()))
    if not pairs:
        return
    db = Path(args.db) if args.db else DEFAULT_DB
    try:
        uplink = json.loads(node.get("/uplink.json")) if node.exists("/uplink.json") else None
        if app is None and node.exists("/app.json"):
            app = json.loads(node.get("/app.json"))
    except ValueError:
        uplink = None
    if not uplink or "device_id" not in uplink or not db.exists():
        print(f"registry: not updated (the node is not provisioned, or no gateway database at "
              f"{db}); later: tinysense devices model ID META_JSON")
        return
    app = app or {}
    running = Path(str(app.get("model", ""))).stem
    chosen = next(((m, meta) for m, meta in pairs if Path(m).stem == running), pairs[0])
    try:
        rec = set_device_model(str(db), int(uplink["device_id"]), chosen[1],
                               int(app.get("model_id", 1)), Path(chosen[0]).stem)
    except TinysenseError as exc:
        print(f"registry: not updated: {exc}")
        return
    print(f"registry: device 0x{rec.device_id:08x} runs {rec.name} as model {rec.model_id} "
          f"(labels: {', '.join(rec.labels) or 'none'})")


def cmd_deploy(args) -> int:
    with open_node(args.target, args.board) as node:
        print(f"target: {node.target.kind} {node.target.url} ({node.target.reason})")
        models, files = _app_files(args, node.board)
        if args.romfs:
            import tempfile

            from tinysense.flash.romfs import deploy_romfs

            with tempfile.TemporaryDirectory(prefix="tinysense-deploy-") as tmp:
                staged = []
                for name, data in models.items():
                    staged.append(Path(tmp) / name)
                    staged[-1].write_bytes(data)
                deploy_romfs(node, staged)
        else:
            with Progress() as progress:    # one updating line on a terminal
                deploy(node, force=args.force, prune=not args.keep_stale, progress=progress)
            files = [(f"{MODELS_DIR}/{n}", d) for n, d in models.items()] + files
        if files:
            if any(p.startswith(MODELS_DIR + "/") for p, _ in files):
                node.mkdir(MODELS_DIR)
            for remote, data in files:
                node.put(data, remote)
                print(f"  {remote} ({len(data)} B)")
            print(f"app files: {len(files)} copied to the filesystem"
                  + (" (the models are in ROMFS, /rom/models/)" if args.romfs and models
                     else ""))
        if args.meta:
            app = json.loads(Path(args.app).read_text()) if args.app else None
            _record_model(node, args, app)
    return 0


def register(sub) -> None:
    p = sub.add_parser("deploy", help="compile firmware/ with mpy-cross and copy what changed",
                       description="Compile firmware/ for the node's arch and copy what "
                                   "changed; --model, --meta and --app put what the app runs "
                                   "on the node as well (docs/app.md).")
    add_target_args(p)
    p.add_argument("--force", action="store_true", help="copy every file, changed or not")
    p.add_argument("--keep-stale", action="store_true",
                   help="keep node files under tsnode/ that firmware/ no longer has")
    p.add_argument("--romfs", action="store_true",
                   help="put the compiled package and --model files in ROMFS (/rom); falls back "
                        "to the filesystem, and says so, where the board has no ROMFS partition")
    p.add_argument("--model", action="append", metavar="MODEL",
                   help="a .tsm package, or a .tflite converted for the node's board, copied to "
                        "/models/<name>.tsm (in ROMFS with --romfs); repeatable")
    p.add_argument("--meta", action="append", metavar="META_JSON",
                   help="the model's meta.json, the one after the same --model: its part the "
                        "node reads goes to /models/<name>.json; repeatable")
    p.add_argument("--app", metavar="APP_JSON", help="the app config, copied to /app.json")
    p.add_argument("--db", default=env_default("TINYSENSE_GATEWAY_DB"),
                   help="gateway database whose registry learns the model a --meta describes "
                        "(default STATE_DIR/gateway.db; env TINYSENSE_GATEWAY_DB)")
    p.set_defaults(func=cmd_deploy)
