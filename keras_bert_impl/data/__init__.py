"""Input pipelines: pretraining corpora and TFRecords, fine-tuning readers."""
