"""After training: a checkpoint's model exported (ONNX, torch.export), compressed (int8
quantisation, magnitude pruning) and measured against the original on the run's own test split.
Every result is a row of a table in the run's directory (results.py)."""
