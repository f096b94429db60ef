"""`vqhps-ros <command>`: the package's command line. Each command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .errors import InputError, VqhpsError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "vqhps_official"
SAMPLE_BAG = REPO_ROOT / "data" / "sample_bag"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args) or 0
    except VqhpsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vqhps-ros", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_demo(commands)
    _add_train_mesh_vq(commands)
    _add_build_connections(commands)
    _add_train_hps(commands)
    _add_synth(commands)
    _add_free_body(commands)
    _add_evaluate(commands)
    _add_evaluate_mesh_vq(commands)
    _add_strip(commands)
    _add_export(commands)
    _add_build_engine(commands)
    return parser


def _add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="a model on a bag: meshes in the camera frame, overlays and scores")
    demo.add_argument("--model", type=Path,
                      help="a model file (train-hps output or save_model; default: the bundled free-body model)")
    demo.add_argument("--bag", type=Path, default=SAMPLE_BAG, help="a ROS 2 bag (default: the sample bag)")
    demo.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for overlays and summary")
    demo.add_argument("--overlay-every", type=int, default=15, help="write an overlay every N frames")
    demo.add_argument("--max-frames", type=int, help="stop after this many frames")
    demo.set_defaults(run=_run_demo)

    parity = commands.add_parser(
        "parity", help="the Mesh-VQ-VAE on the official reference cases: tokens and meshes against the official code"
    )
    parity.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR,
                        help="reference directory with the official cases, weight generator and connections")
    parity.set_defaults(run=_run_parity)

    tokenize = commands.add_parser("tokenize", help="meshes -> tokens -> meshes with a Mesh-VQ-VAE checkpoint")
    tokenize.add_argument("--checkpoint", type=Path, required=True, help="official or this package's checkpoint")
    tokenize.add_argument("--connections", type=Path, help="connection matrix folder, for official checkpoints")
    tokenize.add_argument("--meshes", type=Path, required=True, help=".npz with 'vertices' (M, N, 3)")
    tokenize.set_defaults(run=_run_tokenize)


def _run_demo(args) -> int:
    from .bag_demo import run_bag_demo
    from .models import demo_model_path

    model = args.model or demo_model_path()
    print(json.dumps(run_bag_demo(model, args.bag, args.output, args.overlay_every, args.max_frames), indent=2))
    print(f"overlays and summary.json in {args.output}")
    return 0


def _run_parity(args) -> int:
    from .demo import round_trip_reference

    print(round_trip_reference(args.reference))
    return 0


def _run_tokenize(args) -> int:
    from .demo import round_trip_checkpoint

    print(round_trip_checkpoint(args.checkpoint, args.connections, args.meshes))
    return 0


def _add_train_mesh_vq(commands) -> None:
    train = commands.add_parser("train-mesh-vq", help="train a Mesh-VQ-VAE on canonical meshes")
    train.add_argument("--meshes", type=Path, required=True, help=".npz with 'vertices' (M, N, 3) or a folder")
    train.add_argument("--validation", type=Path, help="validation meshes (default: hold out --val-fraction)")
    train.add_argument("--val-fraction", type=float, default=0.1)
    train.add_argument("--connections", type=Path, required=True, help="folder of _pool*/_unpool* matrices")
    train.add_argument("--output", type=Path, required=True, help="checkpoint to write (official layout)")
    train.add_argument("--resume", type=Path, help="a checkpoint written by this command")
    train.add_argument("--config", type=Path, help="JSON of MeshVQConfig fields (default: official 'medium')")
    from .train.mesh_vq import MeshVQTrainConfig

    _add_dataclass_options(train, MeshVQTrainConfig)
    train.set_defaults(run=_run_train_mesh_vq)


def _run_train_mesh_vq(args) -> int:
    import numpy as np

    from .mesh_vq import MeshVQConfig, MeshVQVAE, load_connections
    from .train.mesh_vq import MeshVQTrainConfig, load_meshes, train_mesh_vq

    config = MeshVQConfig.from_dict(json.loads(args.config.read_text())) if args.config else MeshVQConfig()
    model = MeshVQVAE(config, load_connections(args.connections, config.connection_layers))
    meshes = load_meshes(args.meshes)
    if args.validation:
        train_meshes, validation_meshes = meshes, load_meshes(args.validation)
    else:
        order = np.random.default_rng(0).permutation(len(meshes))
        held_out = max(1, int(round(args.val_fraction * len(meshes))))
        train_meshes, validation_meshes = meshes[order[held_out:]], meshes[order[:held_out]]
    history = train_mesh_vq(model, train_meshes, validation_meshes, args.output,
                            _dataclass_from_args(MeshVQTrainConfig, args), resume=args.resume)
    print(json.dumps(history.validation[-1]))
    return 0


def _add_build_connections(commands) -> None:
    build = commands.add_parser("build-connections",
                                help="connection matrices (mesh hierarchy) for any template mesh")
    build.add_argument("--template", type=Path, required=True, help=".npz with 'vertices' (V, 3) and 'faces' (F, 3)")
    build.add_argument("--levels", type=int, nargs="+", required=True,
                       help="points per coarser level, e.g. 1925 400 54 (the finest level is the template)")
    build.add_argument("--output", type=Path, required=True, help="folder for the _pool*/_unpool* files")
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(run=_run_build_connections)


def _run_build_connections(args) -> int:
    import numpy as np

    from .mesh_vq.hierarchy import build_mesh_hierarchy, save_hierarchy

    with np.load(args.template, allow_pickle=False) as template:
        missing = {"vertices", "faces"} - set(template.files)
        if missing:
            raise InputError(f"{args.template}: expected arrays 'vertices' and 'faces', missing {sorted(missing)}")
        vertices, faces = template["vertices"], template["faces"]
    hierarchy = build_mesh_hierarchy(vertices, faces, (len(vertices), *args.levels), seed=args.seed)
    save_hierarchy(args.output, hierarchy)
    print(f"wrote {len(hierarchy.connections)} connection matrices to {args.output}")
    return 0


def _add_train_hps(commands) -> None:
    from .train.hps import HPSTrainConfig

    train = commands.add_parser("train-hps", help="train the VQ-HPS regressor on a dataset (see the README)")
    train.add_argument("--dataset", type=Path, required=True, help="training dataset folder")
    train.add_argument("--validation", type=Path, help="validation dataset folder")
    train.add_argument("--mesh-vqvae", type=Path, required=True, help="a trained Mesh-VQ-VAE (kept frozen)")
    train.add_argument("--connections", type=Path, help="connection folder, for an official Mesh-VQ-VAE file")
    train.add_argument("--h36m-regressor", type=Path, required=True,
                       help="(17, V) H36M joint regressor (.npy/.npz) for pose_init and evaluation")
    train.add_argument("--tpose", type=Path, required=True, help="(V, 3) T-pose mesh (.npy) for pose_init")
    train.add_argument("--template", type=Path, help="template .npz whose 'faces' the model file keeps (overlays)")
    train.add_argument("--backbone", default="resnet18")
    train.add_argument("--model-dim", type=int, default=512, help="transformer width (official: 512)")
    train.add_argument("--nhead", type=int, default=8, help="attention heads (official: 8)")
    train.add_argument("--feedforward-dim", type=int, default=1024, help="feed-forward width (official: 1024)")
    train.add_argument("--output", type=Path, required=True, help="model file to write")
    train.add_argument("--resume", type=Path, help="a model file written by this command")
    _add_dataclass_options(train, HPSTrainConfig)
    train.set_defaults(run=_run_train_hps)


def _run_train_hps(args) -> int:
    from .train.hps import HPSTrainConfig, run_train_hps

    history = run_train_hps(args, _dataclass_from_args(HPSTrainConfig, args))
    print(json.dumps(history.validation[-1] if history.validation else {}))
    return 0


def _add_synth(commands) -> None:
    synth = commands.add_parser("synth", help="render a synthetic training dataset of free-body people")
    synth.add_argument("--output", type=Path, required=True, help="new dataset folder (annotations.npz + images/)")
    synth.add_argument("--frames", type=int, required=True, help="number of frames to render")
    synth.add_argument("--seed", type=int, default=0, help="the same seed gives the same dataset")
    synth.add_argument("--mesh-vqvae", type=Path,
                       help="a Mesh-VQ-VAE of the free body: its tokens are stored with every person")
    synth.add_argument("--connections", type=Path, help="connection folder, for a Mesh-VQ-VAE file without them")
    synth.add_argument("--width", type=int, default=640)
    synth.add_argument("--height", type=int, default=480)
    synth.add_argument("--min-people", type=int, default=1)
    synth.add_argument("--max-people", type=int, default=3)
    synth.add_argument("--image-format", choices=("jpg", "png"), default="jpg")
    synth.add_argument("--device", default="cpu", help="torch device for posing, rendering and tokens (e.g. cuda)")
    synth.set_defaults(run=_run_synth)


def _run_synth(args) -> int:
    from .synth import SceneSettings, write_dataset

    tokenizer = None
    if args.mesh_vqvae:
        from .mesh_vq import load_mesh_vqvae

        tokenizer = load_mesh_vqvae(args.mesh_vqvae, connections_dir=args.connections).to(args.device)
    settings = SceneSettings(image_size=(args.height, args.width), min_people=args.min_people,
                             max_people=args.max_people)
    info = write_dataset(args.output, args.frames, args.seed, tokenizer=tokenizer, settings=settings,
                         image_format=args.image_format, device=args.device)
    print(json.dumps({key: info[key] for key in ("num_frames", "num_records", "seed", "num_vertices", "tokens")}))
    return 0


def _add_export(commands) -> None:
    export = commands.add_parser("export", help="export the whole VQ-HPS network (crops -> meshes) to ONNX")
    export.add_argument("--model", type=Path, required=True, help="model file written by vqhps_ros (save_model)")
    export.add_argument("--output", type=Path, required=True)
    export.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="fp32: ONNX Runtime, TensorRT <= 10.11; fp16: TensorRT 10.12+/11; int8: ONNX Runtime CPU")
    export.add_argument("--max-persons", type=int, default=16)
    export.add_argument("--opset", type=int, default=17)
    export.add_argument("--calibration-dataset", type=Path, help="dataset folder of person crops (int8)")
    export.add_argument("--calibration-count", type=int, default=64)
    export.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from .runtime.commands import export_command

    path = export_command(args.model, args.output, precision=args.precision, max_persons=args.max_persons,
                          opset=args.opset, calibration_dataset=args.calibration_dataset,
                          calibration_count=args.calibration_count)
    print(f"wrote {path}")
    return 0


def _add_build_engine(commands) -> None:
    build = commands.add_parser("build-engine", help="build the TensorRT engine of an exported graph into the cache")
    build.add_argument("--onnx", type=Path, required=True)
    build.add_argument("--cache-dir", type=Path, help="default ~/.cache/vqhps_ros/engines")
    build.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    build.add_argument("--max-persons", type=int, help="top of the batch profile (default: the graph's)")
    build.add_argument("--opt-persons", type=int, help="batch TensorRT tunes for (default 2)")
    build.add_argument("--device", type=int, default=0)
    build.add_argument("--workspace-mb", type=int, default=1024)
    build.set_defaults(run=_run_build_engine)


def _run_build_engine(args) -> int:
    from .runtime.commands import build_engine_command

    report = build_engine_command(args.onnx, args.cache_dir, args.precision, args.max_persons,
                                  args.opt_persons, args.device, args.workspace_mb)
    print(f"{'built' if report.built else 'cached'}: {report.engine_path}\n{report.description}")
    return 0


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="a model file on a dataset: token accuracy, MPJPE, PA-MPJPE, PVE")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--dataset", type=Path, required=True, help="a dataset folder in the train-hps format")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from .train.hps import evaluate_model_file

    print(json.dumps(evaluate_model_file(args.model, args.dataset, args.batch_size), indent=2))
    return 0


def _add_evaluate_mesh_vq(commands) -> None:
    evaluate = commands.add_parser("evaluate-mesh-vq",
                                   help="a Mesh-VQ-VAE on canonical meshes: reconstruction V2V, PA-V2V, perplexity")
    evaluate.add_argument("--model", type=Path, required=True, help="a Mesh-VQ-VAE file")
    evaluate.add_argument("--connections", type=Path, help="connection folder, for an official Mesh-VQ-VAE file")
    evaluate.add_argument("--meshes", type=Path, required=True, help=".npz with 'vertices' (M, N, 3) or a folder")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.set_defaults(run=_run_evaluate_mesh_vq)


def _run_evaluate_mesh_vq(args) -> int:
    from .mesh_vq import load_mesh_vqvae
    from .train.mesh_vq import load_meshes, validate

    model = load_mesh_vqvae(args.model, args.connections)
    print(json.dumps(validate(model, load_meshes(args.meshes), args.batch_size), indent=2))
    return 0


def _add_strip(commands) -> None:
    strip = commands.add_parser("strip", help="an inference-only copy of a model or Mesh-VQ-VAE file, for shipping")
    strip.add_argument("--model", type=Path, required=True, help="a file written by train-hps or train-mesh-vq")
    strip.add_argument("--output", type=Path, required=True)
    strip.add_argument("--storage", choices=("float32", "float16"), default="float32",
                       help="dtype the weights are stored in (loading casts them back to float32)")
    strip.set_defaults(run=_run_strip)


def _run_strip(args) -> int:
    from .checkpoints import atomic_torch_save, inference_checkpoint, read_checkpoint

    atomic_torch_save(inference_checkpoint(read_checkpoint(args.model), args.storage), args.output)
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.1f} MB, weights as {args.storage})")
    return 0


def _add_free_body(commands) -> None:
    body = commands.add_parser("free-body", help="write the free body's template, T-pose and H36M regressor files")
    body.add_argument("--output", type=Path, required=True,
                      help="folder for template.npz (vertices, faces), tpose.npy and J_regressor_h36m.npy")
    body.set_defaults(run=_run_free_body)


def _run_free_body(args) -> int:
    import numpy as np

    from .atomic_files import atomic_write
    from .body import load_free_body_data

    body = load_free_body_data()
    # The T-pose is centred on its vertex centroid: the canonical frame of the Mesh-VQ-VAE and of pose_init.
    vertices = body.v_template.astype(np.float64)
    tpose = vertices - vertices.mean(axis=0)
    files = {
        "template.npz": lambda stream: np.savez(stream, vertices=tpose, faces=body.faces),
        "tpose.npy": lambda stream: np.save(stream, tpose),
        "J_regressor_h36m.npy": lambda stream: np.save(stream, body.J_regressor_h36m),
    }
    for name, write in files.items():
        atomic_write(args.output / name, write)
    print(f"wrote {', '.join(files)} to {args.output} ({len(tpose)} vertices, {len(body.faces)} faces)")
    return 0


def _add_dataclass_options(parser: argparse.ArgumentParser, config_class) -> None:
    """One --option per field of a training-settings dataclass, defaulting to the field's default."""
    for name, field in config_class.__dataclass_fields__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(field.default), default=field.default)


def _dataclass_from_args(config_class, args):
    return config_class(**{name: getattr(args, name) for name in config_class.__dataclass_fields__})


if __name__ == "__main__":
    sys.exit(main())
