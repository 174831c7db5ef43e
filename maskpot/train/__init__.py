"""Finetuning on energies and forces: batching, normalisation, loss, checkpoints, metrics and plots."""
