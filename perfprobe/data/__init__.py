"""Input data for requests: generated tensors and preprocessed images."""
