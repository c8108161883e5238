"""PyTorch implementations of DCGAN, WGAN-GP and CGAN, with explicit training loops."""
