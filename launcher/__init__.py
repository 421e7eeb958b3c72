"""Launcher: turns one validated YAML config into a distributed pretrain, finetune or evaluate run."""
