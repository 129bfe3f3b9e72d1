"""Station 3, labelling: the failure taxonomy, the review queue, labels and siblings; nothing enters unreviewed.
Feeds `label/taxonomy`, `label/review_queue` (weekly partitions) and `label/labels`.
"""
