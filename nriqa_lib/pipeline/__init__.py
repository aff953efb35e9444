"""The pipeline machinery (not stages): how a stage is declared (:mod:`.spec`), the registry of every stage
(:mod:`.registry`) and the notebook stages (:mod:`.tables`), dvc.yaml rendered from them (:mod:`.dvcfile`) and each
stage's code deps derived from its imports (:mod:`.declare`). Their content reaches dvc.yaml itself, so no stage lists
these files as code deps."""
