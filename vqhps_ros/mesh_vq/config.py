"""The Mesh-VQ-VAE architecture description, with the official "medium" configuration as default."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import InputError

# Official config_medium.yaml: 6890 -> 1925 -> 400 -> 54 points, latent 54 x 9.
MEDIUM_LAYERS = (
    "pool0", "pool1", "pool2", "pool3", "pool4", "pool5", "pool6",
    "unpool6", "unpool5", "unpool4", "unpool3", "unpool2", "unpool1", "unpool0",
)  # fmt: skip
MEDIUM_CHANNELS = (32, 32, 64, 64, 128, 128, 9, 128, 128, 64, 64, 32, 32, 3)
MEDIUM_WEIGHT_NUMS = (9, 0, 9, 0, 9, 0, 9, 9, 0, 9, 0, 9, 0, 9)
MEDIUM_RESIDUAL_RATES = (0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class MeshVQConfig:
    """Layer lists of the fully convolutional autoencoder and the quantizer's settings.

    The first half of the layers is the encoder, the second half the decoder (as in the official code).
    Point counts are not stored: they come from the connection matrices of each layer.
    """

    connection_layers: tuple[str, ...] = MEDIUM_LAYERS
    channels: tuple[int, ...] = MEDIUM_CHANNELS
    weight_nums: tuple[int, ...] = MEDIUM_WEIGHT_NUMS
    residual_rates: tuple[float, ...] = MEDIUM_RESIDUAL_RATES
    num_embeddings: int = 512
    commitment_cost: float = 0.25
    decay: float = 0.99
    epsilon: float = 1e-5

    def __post_init__(self):
        lengths = {len(self.connection_layers), len(self.channels), len(self.weight_nums),
                   len(self.residual_rates)}
        if len(lengths) != 1:
            raise InputError(
                "connection_layers, channels, weight_nums and residual_rates must have one entry per layer; "
                f"got lengths {len(self.connection_layers)}, {len(self.channels)}, {len(self.weight_nums)}, "
                f"{len(self.residual_rates)}"
            )
        if self.num_layers % 2:
            raise InputError(f"the autoencoder needs an even layer count (encoder, decoder), got {self.num_layers}")
        for index, rate in enumerate(self.residual_rates):
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"residual_rates[{index}] must be in [0, 1], got {rate}")
            if rate < 1.0 and self.weight_nums[index] <= 0:
                raise InputError(f"layer {index} has a convolution (residual rate {rate}) but weight_num 0")
        if self.channels[-1] != 3:
            raise InputError(f"the last layer must output 3 coordinates, got {self.channels[-1]} channels")

    @property
    def num_layers(self) -> int:
        return len(self.channels)

    @property
    def encoder_layers(self) -> int:
        return self.num_layers // 2

    @property
    def embedding_dim(self) -> int:
        """Latent channels per token: the output width of the encoder's last layer."""
        return self.channels[self.encoder_layers - 1]

    def to_dict(self) -> dict:
        data = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> MeshVQConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown Mesh-VQ-VAE configuration keys {sorted(unknown)}; known: {sorted(known)}")
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
        return cls(**values)
