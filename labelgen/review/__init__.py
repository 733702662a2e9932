"""The human review loop: labels the model is unsure of go to Label Studio as pre-annotated
tasks (`export`), and the annotators' answers come back as per-annotator `TurnAnnotation`s in
the canonical log (`ingest`), where consensus, evaluation and fine-tuning read them.

`labelgen review export` and `labelgen review import` are the commands; `config` holds the
labeling config the two sides share.
"""
