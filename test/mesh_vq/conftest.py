import pytest
import torch

from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE, load_connections, load_mesh_vqvae_state


@pytest.fixture(scope="session")
def official_connections(reference):
    return load_connections(reference.connections, MeshVQConfig().connection_layers)


@pytest.fixture(scope="session")
def golden_mesh_vqvae(reference, official_connections):
    """The official architecture filled with the reference weights (eval mode)."""
    model = MeshVQVAE(MeshVQConfig(), official_connections).eval()
    load_mesh_vqvae_state(model, reference.state_dict("mesh_vqvae_54"))
    return model


@pytest.fixture(scope="session")
def vqvae_case(reference):
    return {key: torch.from_numpy(value) for key, value in reference.case("mesh_vqvae_54").items()}
