"""pip install for use without ROS (the ROS 2 build uses package.xml and CMakeLists.txt)."""

from setuptools import find_packages, setup

setup(
    name="vqhps_ros",
    version="0.1.0",
    description="Real-time human mesh recovery (VQ-HPS) for ROS 2 robots",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["vqhps_ros", "vqhps_ros.*"]),
    package_data={
        "vqhps_ros.body": ["assets/*.pkl", "assets/*.npz", "assets/*.md", "assets/*.txt"],
        "vqhps_ros.models": ["*.pt", "*.json", "*.md"],
        "vqhps_ros.data": ["sample_bag/*.mcap", "sample_bag/*.yaml", "sample_bag/*.npz", "sample_bag/*.md"],
        "vqhps_ros.detect": ["assets/*.tflite", "assets/*.md", "assets/*.txt"],
    },
    # The .msg files stay at the repo root for rosidl; pip installs them where a ROS build does (share/<pkg>/msg).
    data_files=[("share/vqhps_ros/msg", ["msg/HumanMesh.msg", "msg/HumanMeshArray.msg", "msg/MeshTopology.msg"])],
    install_requires=[
        "numpy>=1.22",
        "torch>=2.1",
        "scipy>=1.8",
        "opencv-python-headless>=4.5",
        "tqdm>=4.60",
        "smplx>=0.1.28",
        "rosbags>=0.11",
        "tflite>=2.18",  # reads the shipped mediapipe .tflite weights of the built-in person detector
        "pyyaml>=5.4",
    ],
    extras_require={
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],
        "dev": ["pytest>=7", "ruff>=0.4", "ai-edge-litert>=1.0"],  # LiteRT: the detector parity tests' reference
        "anny": ["anny>=0.6.2"],
        "jetson": ["onnx>=1.14", "pycuda>=2022.1"],  # TensorRT itself comes from JetPack (python3-libnvinfer)
        "tensorrt": ["onnx>=1.14", "pycuda>=2022.1", "tensorrt>=8.6"],
    },
    entry_points={"console_scripts": ["vqhps-ros=vqhps_ros.cli:main"]},
)
