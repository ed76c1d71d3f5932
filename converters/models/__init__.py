"""PyTorch module definitions for real pretrained weights that ship without importable code."""
