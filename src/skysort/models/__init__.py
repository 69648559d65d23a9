"""Network architectures and the model file format."""
