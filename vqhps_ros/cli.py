"""`vqhps-ros <command>`: the package's command line. Each command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .config import TOKEN_DECODING_CHOICES
from .errors import InputError, VqhpsError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "vqhps_official"


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
    _add_replay(commands)
    _add_node(commands)
    _add_score(commands)
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


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="a configuration file (config/estimator.yaml lists every key)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key, e.g. --set model.backend=pytorch (repeatable)")


def _config_from_args(args):
    from .config import load_config

    return load_config(args.config, args.overrides)


def _add_replay(commands) -> None:
    replay = commands.add_parser("replay", help="a recorded ROS 2 bag through the estimator into an output bag")
    replay.add_argument("bag", type=Path, help="input rosbag2 folder or .mcap / .db3 file")
    replay.add_argument("--out", type=Path, required=True, help="output rosbag2 folder (MCAP), must not exist")
    replay.add_argument("--image-topic", help="image topic (default: the bag's only Image/CompressedImage topic)")
    replay.add_argument("--camera-info-topic", help="camera_info topic ('' to ignore camera_info)")
    replay.add_argument("--detections-topic", help="Detection2DArray topic ('' to ignore detections)")
    replay.add_argument("--copy-inputs", action="store_true", help="also write the input topics into the output")
    replay.add_argument("--video", type=Path, help="write an overlay video (.mp4)")
    replay.add_argument("--png-every", type=int, default=0, metavar="N", help="write every N-th overlay as PNG")
    replay.add_argument("--png-dir", type=Path, help="folder for the PNG key frames (default: OUT_frames)")
    replay.add_argument("--summary", type=Path, help="summary JSON file (default: OUT.summary.json)")
    replay.add_argument("--max-frames", type=int, help="stop after this many frames")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(replay)
    replay.set_defaults(run=_run_replay)


def _run_replay(args) -> int:
    from .replay import ReplayOptions, replay_bag, write_summary

    png_dir = args.png_dir or args.out.with_name(args.out.name + "_frames")
    options = ReplayOptions(args.image_topic, args.camera_info_topic, args.detections_topic, args.copy_inputs,
                            args.video, args.png_every, png_dir, args.max_frames, not args.no_progress)
    summary = replay_bag(args.bag, args.out, _config_from_args(args), options)
    summary_path = args.summary or args.out.with_name(args.out.name + ".summary.json")
    write_summary(summary, summary_path)
    print(json.dumps(summary, indent=2))
    print(f"output bag: {args.out}; summary: {summary_path}")
    return 0


def _add_score(commands) -> None:
    score = commands.add_parser("score", help="a replay's output bag against ground truth: MPJPE, PVE, id switches")
    score.add_argument("replay", type=Path, help="an output bag of `vqhps-ros replay`")
    score.add_argument("--truth", type=Path, required=True, help="ground_truth.npz (the sample bag's format)")
    score.add_argument("--output", type=Path, help="folder for scores.json, scores.md, error_per_frame.png "
                                                   "(default: beside the replay)")
    score.add_argument("--humans-topic", help="HumanMeshArray topic (default: the bag's only one)")
    score.set_defaults(run=_run_score)


def _run_score(args) -> int:
    from .scoring import markdown_table, score_replay, write_score_outputs

    output = args.output or args.replay.with_name(args.replay.name + "_scores")
    summary = write_score_outputs(score_replay(args.replay, args.truth, args.humans_topic), output, str(args.replay))
    print(markdown_table(summary), end="")
    print(f"scores.json, scores.md and error_per_frame.png in {output}")
    return 0


def _add_node(commands) -> None:
    node = commands.add_parser("node", help="start the ROS 2 node without ros2 launch (needs rclpy and the built "
                                            "vqhps_ros messages)")
    node.add_argument("--config", type=Path, help="parameter file (config/estimator.yaml lists every key)")
    node.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="set one parameter, e.g. --set inputs.compressed=true (repeatable)")
    node.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                      help="rename an input, e.g. --remap image:=/camera/color/image_raw (repeatable)")
    node.add_argument("--no-autostart", action="store_true",
                      help="stay unconfigured: drive the lifecycle with `ros2 lifecycle set`")
    node.set_defaults(run=_run_node)


def _run_node(args) -> int:
    from .ros.node import main as node_main

    ros_args = ["--ros-args"]
    if args.config:
        ros_args += ["--params-file", str(args.config)]
    for override in args.overrides:
        key, _, value = override.partition("=")
        ros_args += ["-p", f"{key.strip()}:={value.strip()}"]
    for remap in args.remap:
        ros_args += ["-r", remap]
    return node_main(["vqhps-ros-node", *([] if args.no_autostart else ["--autostart"]), *ros_args])


def _add_demo(commands) -> None:
    demo = commands.add_parser("demo", help="the bundled model on the sample bag: output bag, video, scores")
    demo.add_argument("--bag", type=Path, help="a ROS 2 bag (default: the shipped sample bag)")
    demo.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for everything it writes")
    demo.add_argument("--max-frames", type=int, help="stop after this many frames")
    _add_config_options(demo)
    demo.set_defaults(run=_run_demo)

    parity = commands.add_parser(
        "parity", help="the Mesh-VQ-VAE on the official reference cases: tokens and meshes against the official code"
    )
    parity.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE_DIR,
                        help="reference directory with the official cases, weight generator and connections")
    parity.set_defaults(run=_run_parity)

    tokenize = commands.add_parser("tokenize", help="meshes -> tokens -> meshes with a Mesh-VQ-VAE checkpoint")
    tokenize.add_argument("--checkpoint", type=Path, required=True, help="official or this package's checkpoint")
    tokenize.add_argument("--connections", type=Path, help="connection folder, for official checkpoints")
    tokenize.add_argument("--meshes", type=Path, required=True, help=".npz with 'vertices' (M, N, 3)")
    tokenize.set_defaults(run=_run_tokenize)


def _run_demo(args) -> int:
    from .data import sample_bag_path
    from .demo import DemoPaths, run_demo

    summary = run_demo(args.bag or sample_bag_path(), args.output, _config_from_args(args), args.max_frames)
    print(json.dumps(summary, indent=2))
    paths = DemoPaths(args.output)
    print(f"output bag: {paths.replay}\noverlay video: {paths.video}\nkey frames: {paths.frames}\n"
          f"summary and scores: {paths.summary}")
    return 0


def _run_parity(args) -> int:
    from .parity import round_trip_reference

    print(round_trip_reference(args.reference))
    return 0


def _run_tokenize(args) -> int:
    from .parity import round_trip_checkpoint

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
    from .train.settings import MeshVQTrainConfig  # torch-free: building the parser imports no training code

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
    from .train.settings import HPSTrainConfig  # torch-free: building the parser imports no training code

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
    train.add_argument("--pretrained-backbone", action="store_true",
                       help="start the backbones from ImageNet weights (mobilenet_v2; see the README)")
    # None: TransformerDims' own defaults (the official dimensions), applied by run_train_hps.
    train.add_argument("--model-dim", type=int, help="transformer width (default: the official, TransformerDims')")
    train.add_argument("--nhead", type=int, help="attention heads (default: the official, TransformerDims')")
    train.add_argument("--feedforward-dim", type=int,
                       help="feed-forward width (default: the official, TransformerDims')")
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
    # Options left out (None) take export_command's defaults, so the numbers live in the library only.
    export.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                        help="fp32: ONNX Runtime, TensorRT <= 10.11; fp16: TensorRT 10.12+/11; int8: ONNX Runtime CPU "
                             "(default: runtime.commands.export_command's)")
    export.add_argument("--max-persons", type=int,
                        help="most people per frame the TensorRT profile covers (default: runtime.DEFAULT_MAX_BATCH)")
    export.add_argument("--opset", type=int, help="ONNX opset (default: runtime.DEFAULT_OPSET)")
    export.add_argument("--calibration-dataset", type=Path, help="dataset folder of person crops (int8)")
    export.add_argument("--token-decoding", choices=TOKEN_DECODING_CHOICES,
                        help="how the graph decodes its mesh: expected (probability-weighted codebook rows) or argmax "
                             "(the official implementation's) (default: runtime.commands.export_command's)")
    export.add_argument("--calibration-count", type=int,
                        help="person crops int8 calibrates on (default: runtime.commands.DEFAULT_CALIBRATION_COUNT)")
    export.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from .runtime.commands import export_command

    path = export_command(args.model, args.output, calibration_dataset=args.calibration_dataset,
                          **_given_options(args, "precision", "max_persons", "opset", "calibration_count",
                                           "token_decoding"))
    print(f"wrote {path}")
    return 0


def _add_build_engine(commands) -> None:
    build = commands.add_parser("build-engine", help="build the TensorRT engine of an exported graph into the cache")
    build.add_argument("--onnx", type=Path, required=True)
    # Options left out (None) take the library's defaults, so the numbers live there only.
    build.add_argument("--cache-dir", type=Path, help="engine cache folder (default: runtime.default_cache_dir())")
    build.add_argument("--precision", choices=("fp16", "fp32"),
                       help="engine precision (default: runtime.tensorrt_engine.DEFAULT_PRECISION)")
    build.add_argument("--max-persons", type=int, help="top of the batch profile (default: the graph's)")
    build.add_argument("--opt-persons", type=int, help="batch TensorRT tunes for (default: TensorRTEngine's choice)")
    build.add_argument("--device", type=int, help="CUDA device index (default: build_engine_command's)")
    build.add_argument("--workspace-mb", type=int,
                       help="builder scratch memory, MiB (default: runtime.tensorrt_engine.DEFAULT_WORKSPACE_BYTES)")
    build.set_defaults(run=_run_build_engine)


def _run_build_engine(args) -> int:
    from .runtime.commands import build_engine_command

    report = build_engine_command(args.onnx, args.cache_dir, max_persons=args.max_persons,
                                  opt_persons=args.opt_persons,
                                  **_given_options(args, "precision", "device", "workspace_mb"))
    print(f"{'built' if report.built else 'cached'}: {report.engine_path}\n{report.description}")
    return 0


def _add_evaluate(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="a model file on a dataset: token accuracy, MPJPE, PA-MPJPE, PVE")
    evaluate.add_argument("--model", type=Path, required=True)
    evaluate.add_argument("--dataset", type=Path, required=True, help="a dataset folder in the train-hps format")
    from .train.settings import EVALUATION_BATCH_SIZE  # torch-free, and evaluate_model_file's default

    evaluate.add_argument("--batch-size", type=int, default=EVALUATION_BATCH_SIZE, help="default: %(default)s")
    evaluate.add_argument("--token-decoding", choices=TOKEN_DECODING_CHOICES, default="argmax",
                          help="mesh of the argmax tokens (the official evaluation, default) or of the expected "
                               "codebook rows, as the estimator decodes by default")
    evaluate.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from .train.hps import evaluate_model_file

    print(json.dumps(evaluate_model_file(args.model, args.dataset, args.batch_size, args.token_decoding), indent=2))
    return 0


def _add_evaluate_mesh_vq(commands) -> None:
    evaluate = commands.add_parser("evaluate-mesh-vq",
                                   help="a Mesh-VQ-VAE on canonical meshes: reconstruction V2V, PA-V2V, perplexity")
    evaluate.add_argument("--model", type=Path, required=True, help="a Mesh-VQ-VAE file")
    evaluate.add_argument("--connections", type=Path, help="connection folder, for an official Mesh-VQ-VAE file")
    evaluate.add_argument("--meshes", type=Path, required=True, help=".npz with 'vertices' (M, N, 3) or a folder")
    from .train.settings import MESH_VQ_EVALUATION_BATCH_SIZE  # torch-free, and mesh_vq.validate's default

    evaluate.add_argument("--batch-size", type=int, default=MESH_VQ_EVALUATION_BATCH_SIZE, help="default: %(default)s")
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
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(field.default), default=field.default,
                            help="default: %(default)s")


def _dataclass_from_args(config_class, args):
    return config_class(**{name: getattr(args, name) for name in config_class.__dataclass_fields__})


def _given_options(args, *names: str) -> dict:
    """The options among `names` the user gave (not None): the library function's own defaults fill the rest."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


if __name__ == "__main__":
    sys.exit(main())
