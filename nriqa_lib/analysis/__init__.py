"""The tables: pure functions of saved predictions, features and scores (no training, no model inference).

Each table module declares ``PARAMS``, the params it reads (its notebook stage declares the same in dvc.yaml).
"""
