"""Export for serving: TorchScript modules and a Triton model repository for the ranker."""
