"""Training on cached features and fine-tuning: many heads at once (:mod:`.trainer`), the heads of a backbone and
cross-dataset (:mod:`.protocol`), P1's regimes (:mod:`.finetune`, :mod:`.fused`, :mod:`.regimes`, :mod:`.pixels`),
T5's input policies (:mod:`.resolution`) and what a trained head looks at (:mod:`.explain`)."""
