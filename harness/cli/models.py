"""Commands about weights and networks: ``checkpoints``, ``models``, ``profile``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.common import EPILOG, EXIT_FAILED, EXIT_OK, parse_quality, parse_size, say
from harness.errors import HarnessError, UsageError


def _read_weights(codec_name: str, path) -> dict:
    """Read a checkpoint the way the codec will (some take more than plain state_dicts)."""
    from harness.checkpoints import read_state_dict
    from harness.registry import codec_entries, create_codec

    codec = create_codec(codec_name) if codec_name in codec_entries() else None
    reader = getattr(codec, "read_weights", None)
    return reader(path) if reader is not None else read_state_dict(path)


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from harness import checkpoints as ck

    if args.action == "add":
        path = Path(args.path).resolve()
        sha256 = ck.sha256_of(path) if path.is_file() else None
        if sha256 is None:
            raise UsageError(f"{path} does not exist")
        from harness.registry import codec_entries, create_codec
        from harness.user_models import released_mixing_warning

        entry = codec_entries().get(args.codec)
        if entry is not None and entry.kind == "model":
            raise UsageError(f"{args.codec} is a model of your own: its checkpoints are"
                             f" loaded into its architecture when added, with `harness models"
                             f" add {args.codec} --replace --arch ARCH --checkpoints FILE ...`")
        _read_weights(args.codec, path)  # refuse unsafe or unreadable files now
        if entry is not None:
            warning = released_mixing_warning(create_codec(args.codec), args.quality, sha256)
            if warning:
                say(f"warning: {warning}")
        manifest = ck.manifest_for(args.codec) or ck.Manifest(args.codec, [])
        manifest.entries = [e for e in manifest.entries if e.quality != float(args.quality)]
        manifest.entries.append(ck.CheckpointEntry(float(args.quality), str(path), args.url,
                                                   sha256, args.metric, args.lmbda))
        written = ck.write_manifest(manifest)
        print(f"{args.codec} q={args.quality:g}: {path} (sha256 {sha256[:16]}...) -> {written}")
        return EXIT_OK
    folder = ck.manifests_dir()
    paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if args.codec:
        paths = [p for p in paths if p.stem in args.codec]
    if not paths:
        print(f"no checkpoint manifests in {folder} ($HARNESS_CHECKPOINTS)")
        return EXIT_OK if args.action == "list" else EXIT_FAILED
    failed = False
    for path in paths:
        manifest = ck.read_manifest(path)
        print(f"{manifest.codec} ({path})")
        for entry in sorted(manifest.entries, key=lambda e: e.quality):
            where = entry.path or entry.url
            state = ""
            if args.action == "verify":
                try:
                    ck.verify_entry(entry, manifest.codec)
                    _read_weights(manifest.codec, entry.path)
                    state = "ok"
                except HarnessError as exc:
                    state, failed = f"FAILED: {exc}", True
            print(f"  q={entry.quality:g}  {where}  {state}".rstrip())
    return EXIT_FAILED if failed else EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from harness import user_models
    from harness.checkpoints import manifests_dir

    if args.action == "add":
        manifest = user_models.add_model(args.name, args.arch, args.checkpoints, args.lambdas,
                                         args.description, args.metric, args.replace)
        print(f"model {manifest.codec}: {len(manifest.entries)} checkpoints of"
              f" {manifest.architecture}, qualities 1..{len(manifest.entries)} -> {manifest.path}"
              f"\nmeasure it: harness run --codecs {manifest.codec} --datasets kodak")
        return EXIT_OK
    if args.action == "remove":
        print(f"removed {user_models.remove_model(args.name)} (the checkpoint files are kept)")
        return EXIT_OK
    found = list(user_models.model_manifests())
    if args.action == "show":
        found = [m for m in found if m[0] == args.name]
        if not found:
            known = ", ".join(m[0] for m in user_models.model_manifests()) or "none"
            raise UsageError(f"no model named {args.name} (models: {known})")
    if not found:
        print(f"no models in {manifests_dir()} (harness models add NAME --arch ARCH --checkpoints"
              " FILE ...)")
    for name, path, manifest, error in found:
        if manifest is None:
            print(f"{name}  UNREADABLE: {error}")
            continue
        print(f"{name}  {manifest.architecture}, {len(manifest.entries)} checkpoints  ({path})")
        if args.action == "show":
            if manifest.description:
                print(f"  {manifest.description}")
            for entry in sorted(manifest.entries, key=lambda e: e.quality):
                lmbda = "" if entry.lmbda is None else f"  lambda {entry.lmbda:g}"
                state = "" if Path(entry.path).is_file() else "  MISSING"
                print(f"  q={entry.quality:g}{lmbda}  {entry.path}  sha256"
                      f" {(entry.sha256 or '')[:16]}...{state}")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    from harness import api
    from harness.profile import format_text

    result = api.profile(args.codec, args.size, device=args.device or "cpu",
                         checkpoint=args.checkpoint, quality=args.quality, runs=args.runs,
                         threads=args.threads, memory=not args.no_memory, store=args.store)
    print(json.dumps(result.as_dict(), indent=2) if args.format == "json"
          else format_text(result))
    return EXIT_OK


def add_parsers(commands) -> None:
    ckpt = commands.add_parser("checkpoints", help="register, list and verify checkpoints")
    ckpt_actions = ckpt.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = ckpt_actions.add_parser("add", help="register a checkpoint file for a quality point")
    add.add_argument("codec")
    add.add_argument("--quality", type=parse_quality, required=True)
    add.add_argument("--path", required=True, metavar="FILE")
    add.add_argument("--url", help="where the file was published")
    add.add_argument("--metric", choices=["mse", "ms-ssim"])
    add.add_argument("--lambda", dest="lmbda", type=float, metavar="L")
    for action in ("list", "verify"):
        sub = ckpt_actions.add_parser(action, help=f"{action} the registered checkpoints")
        sub.add_argument("codec", nargs="*")
    ckpt.set_defaults(handler=cmd_checkpoints)

    models = commands.add_parser(
        "models", epilog=EPILOG, help="models of your own: one named codec, many checkpoints",
        description="Register a model of your own: a name, a learned architecture and one"
                    " checkpoint per rate point. It is then a codec like the built-in ones"
                    " (harness run --codecs NAME), measured at qualities 1..n, one curve.")
    model_actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = model_actions.add_parser(
        "add", help="register checkpoints (loaded strictly into the architecture first)")
    add.add_argument("name", help="the codec name of your model (not a built-in codec's)")
    add.add_argument("--arch", required=True, metavar="ARCH",
                     help="the learned codec whose network the files fit (bmshj2018-factorized,"
                          " mbt2018, cheng2020-attn, stf, wacnn, tcm, tic, shen2023,"
                          " entroformer ...); widths such as TCM's N are read from the files")
    add.add_argument("--checkpoints", nargs="+", required=True, metavar="FILE",
                     help="one file per rate point, lowest rate first (quality 1, 2, ...)")
    add.add_argument("--lambdas", nargs="+", type=float, metavar="L",
                     help="the lambda of each checkpoint (labels, same order)")
    add.add_argument("--description", help="one line for `harness codecs` and the report")
    add.add_argument("--metric", choices=["mse", "ms-ssim"], help="what it was trained for")
    add.add_argument("--replace", action="store_true", help="overwrite a model of that name")
    model_actions.add_parser("list", help="list your models")
    for action in ("show", "remove"):
        sub = model_actions.add_parser(
            action, help="show a model's checkpoints" if action == "show"
            else "forget a model (its files are kept)")
        sub.add_argument("name")
    models.set_defaults(handler=cmd_models)

    prof = commands.add_parser(
        "profile", epilog=EPILOG, help="complexity of a learned codec: parameters, kMAC/pixel,"
                                       " time, memory",
        description="Parameters (total and per part), kMAC per pixel of the forward pass, of"
                    " encoding and of decoding, median encode / decode time and peak memory of"
                    " a learned codec at one input size. Without --checkpoint the network is"
                    " built in its released layout with random weights.")
    prof.add_argument("codec")
    prof.add_argument("--size", type=parse_size, default=(512, 768), metavar="HxW",
                      help="input size (default 512x768, Kodak's)")
    prof.add_argument("--device", metavar="DEVICE", help="cpu (default) or cuda")
    prof.add_argument("--checkpoint", metavar="PATH")
    prof.add_argument("--quality", type=parse_quality, metavar="Q",
                      help="quality point of the released layout (default: the first)")
    prof.add_argument("--runs", type=int, default=3, help="timed calls (default 3)")
    prof.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    prof.add_argument("--no-memory", action="store_true",
                      help="skip the two fresh processes that measure peak memory")
    prof.add_argument("--format", default="text", choices=["text", "json"])
    prof.add_argument("--store", metavar="PATH",
                      help="also keep the profile in this results store: its report's"
                           " complexity table shows it")
    prof.set_defaults(handler=cmd_profile)
