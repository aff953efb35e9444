"""The pipeline machinery (not stages): how a stage is declared (:mod:`.spec`), the registry of every stage
(:mod:`.registry`) and the notebook stages (:mod:`.tables`), dvc.yaml rendered from them (:mod:`.dvcfile`), each
stage's code deps derived from its imports (:mod:`.declare`), and two tools that iterate the registry: the static site
(:mod:`.site`, ``make site``) and params profiles as DVC experiments (:mod:`.profiles`). What the declarations say
reaches dvc.yaml itself, so no stage lists these files as code deps."""
