"""VQ-HPS: person crops -> mesh tokens, rotation, camera, and meshes (backbones, transformer, heads, geometry)."""

from .backbones import (
    BACKBONE_NAMES,
    PRETRAINED_BACKBONES,
    BackbonePair,
    ComputeCost,
    backbone_channels,
    build_backbone,
    build_backbone_pair,
    compute_cost,
    load_pretrained_backbones,
)
from .camera import cam_crop_to_full, fit_weak_perspective, project_points, weak_perspective_project
from .checkpoint import load_model, load_official_model, pose_init_from_mesh, save_model
from .crops import (
    BOX_RESCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropGeometry,
    PersonCrops,
    apply_affines,
    as_rgb_float_image,
    crop_geometry,
    crop_geometry_from_boxes,
    crop_geometry_from_center_scale,
    crop_people_cv2,
    crop_people_torch,
    crop_to_normalized,
    invert_affines,
    normalized_to_crop,
    valid_box_mask,
    validate_boxes,
    warp_crops_cv2,
    warp_crops_torch,
)
from .keypoint_placement import KeypointPlacement, PlacementSettings
from .keypoint_regressor import KeypointMeshRegressor, KeypointRegressorConfig
from .mirror_average import MirrorAverage, mirrored_names, vertex_mirror
from .mobilenet import MobileNetV2, MobileNetV2Trunk, load_imagenet_mobilenet_v2
from .model import ARGMAX, EXPECTED, TOKEN_DECODINGS, VQHPS, HPSOutput
from .predict import PersonMesh, crop_people, place_people, predict_people
from .regressor import CROP_SIZE, MeshRegressor, RegressorConfig, RegressorOutput
from .rotation import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix
from .transformer import TransformerDims
