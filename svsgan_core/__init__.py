"""svsgan_core: the SVS-GAN method (Seyam et al. 2024) in PyTorch, with no ROS imports."""
__version__ = "0.1.0"
