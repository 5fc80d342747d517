"""Built-in command ``kinefuse models``: ``list`` the registered models and whether their files are
installed, ``add PATH|URL --sha256 HASH`` (checks the hash; works fully offline from a path), ``check NAME``
(one inference on a test frame, with the latency of each stage; for an ONNX model first the CPU's int8
features and the int8 path chosen, cpu_features). Model files live in the data directory
(``kinefuse_plugins.camera.pose_models.model_dir``); nothing is ever downloaded implicitly."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from kinefuse.interfaces import CommandSpec


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="registered models, their kind and whether the file is installed")
    add = actions.add_parser("add", help="install a model file after checking its sha256")
    add.add_argument("source", help="a local file, or an http(s) URL to fetch explicitly")
    add.add_argument("--sha256", required=True, help="the file's expected SHA-256 (hex)")
    add.add_argument("--name", help="registry entry the file is for (default: found by its hash)")
    check = actions.add_parser(
        "check",
        help="print the CPU's int8 features and the int8 path, run one inference, print each stage's latency",
    )
    check.add_argument("name", help="a registered model")
    check.add_argument("--provider", action="append", help="execution provider, best first (default CPU)")


def run(args: argparse.Namespace) -> int:
    from kinefuse_plugins.camera import estimators, pose_models

    if args.action == "list":
        print(f"models in {pose_models.model_dir()}:")
        for model in pose_models.known_models().values():
            where = pose_models.installed_path(model)
            state = (
                "installed" if where else f"not installed (kinefuse models add FILE --sha256 {model.sha256})"
            )
            print(f"  {model.name:36s} {model.kind:9s} {model.size[0]}x{model.size[1]}  {state}")
        plugin_estimators = estimators.registered()
        if plugin_estimators:
            print("pose estimators from plugins:")
        for spec in plugin_estimators.values():
            print(f"  {spec.name:36s} {spec.keypoint_set:13s} {spec.doc}")
        return 0
    if args.action == "add":
        try:
            path = pose_models.add(args.source, args.sha256, args.name)
        except (OSError, ValueError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"installed {path}")
        return 0
    return _check(args)


def _check(args: argparse.Namespace) -> int:
    from kinefuse_plugins.camera import estimators, pose_models
    from kinefuse_plugins.camera.pose_runtime import PoseModel

    plugin_estimator = estimators.lookup(args.name)
    if plugin_estimator is not None:
        try:
            runner = plugin_estimator.factory({})
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return _time(runner, f"{args.name} (plugin)")
    try:
        model = pose_models.spec(args.name)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    path = pose_models.installed_path(model)
    if path is None:
        print(f"error: {model.name} is not installed in {pose_models.model_dir()}; "
              f"kinefuse models add FILE --sha256 {model.sha256}", file=sys.stderr)  # fmt: skip
        return 1
    try:
        runner = PoseModel(model, path, tuple(args.provider or ("CPUExecutionProvider",)))
    except ValueError as exc:  # an unknown provider or int8 path
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"cpu: {runner.runtime.cpu}")
    print(runner.runtime.describe())
    return _time(runner, f"{model.name} on {runner.session.get_providers()[0]}")


def _time(runner, label: str) -> int:
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    runner(frame)  # the first run allocates; time the second
    result = runner(frame)
    stages = ", ".join(f"{stage} {seconds * 1e3:.2f} ms" for stage, seconds in result.timings.items())
    print(f"{label}: {stages}")
    return 0


SPEC = CommandSpec("models", "list, add and check pose models (files in the data directory)", configure, run)
