"""Backbones: the torch-free name registry (:mod:`.registry`: specs, ``pretrained``, ``is_control``), the weights'
sources and checks (:mod:`.weights`), the models (:mod:`.models`: ``create_backbone``, ``Backbone``) and their counted
forward cost (``forward_gflops``). Import the module you use: a stage that only needs names then neither loads torch
nor depends on the model code in dvc.yaml."""
