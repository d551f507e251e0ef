"""Training: the BERT optimizer recipe, distribution strategies, resumable pretraining runs."""
