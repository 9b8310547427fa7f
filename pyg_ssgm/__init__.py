"""pyg_ssgm: self-supervised, generative, partial graph matching of keypoint graphs."""
__version__ = "0.1.0"
