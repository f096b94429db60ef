"""Body-model helpers: joint regressors and joint orders."""

from .free_body import (
    FREE_BODY_PATH,
    FreeBodyData,
    free_body_h36m_regressor,
    free_body_smpl_regressor,
    load_free_body,
    load_free_body_data,
    save_free_body_data,
)
from .joints import (
    H36M_17_JOINT_NAMES,
    H36M_TO_J14,
    H36M_TO_J17,
    SMPL_24_JOINT_NAMES,
    SMPL_VERTEX_COUNT,
    ChumpyArray,
    JointRegressor,
    load_h36m_regressor,
    load_regressor_matrix,
    load_restricted_pickle,
    load_smpl_regressor,
)
from .pose_landmarks import FITTED_LANDMARKS_PATH, free_body_pose_landmarks, prior_pose_landmarks

__all__ = [
    "FITTED_LANDMARKS_PATH",
    "free_body_pose_landmarks",
    "prior_pose_landmarks",
    "ChumpyArray",
    "H36M_17_JOINT_NAMES",
    "H36M_TO_J14",
    "H36M_TO_J17",
    "JointRegressor",
    "SMPL_24_JOINT_NAMES",
    "SMPL_VERTEX_COUNT",
    "load_h36m_regressor",
    "load_regressor_matrix",
    "load_restricted_pickle",
    "load_smpl_regressor",
    "FREE_BODY_PATH",
    "FreeBodyData",
    "free_body_h36m_regressor",
    "free_body_smpl_regressor",
    "load_free_body",
    "load_free_body_data",
    "save_free_body_data",
]
