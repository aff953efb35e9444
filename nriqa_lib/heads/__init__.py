"""Heads: the torch-free registry of predictors (:mod:`.registry`: P1's presets, the activations, ridge), P1's MLP
heads (:mod:`.mlp`) and its activations, GatedBlend and our K-way per-channel selection (:mod:`.activations`).
Import the module you use: a stage that only needs names then neither loads torch nor depends on the head modules."""
