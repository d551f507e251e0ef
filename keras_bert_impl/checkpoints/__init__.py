"""Reading and writing checkpoints in the original TF1 format."""
