"""deepiso's training package: datasets, augmentation, the LSTM, losses, the training loop."""
