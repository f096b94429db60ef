"""Training loops: the Mesh-VQ-VAE tokenizer (`mesh_vq`) and the VQ-HPS regressor (`hps`, `hps_data`)."""

from .hps import HPSTrainConfig, build_hps_model, run_train_hps, train_hps
from .mesh_vq import MeshVQTrainConfig, load_meshes, train_mesh_vq
