"""Tasks: small modules wiring the shared data, model, training and evaluation pieces."""
