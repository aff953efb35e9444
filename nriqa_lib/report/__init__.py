"""The report stage: every declared claim and its verdict (:mod:`.claims`), the findings (:mod:`.summary`) and
published vs reproduced (:mod:`.published`)."""
