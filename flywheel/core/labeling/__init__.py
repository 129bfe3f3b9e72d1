"""Station 3: the failure taxonomy, the review queue and labels. Nothing enters the eval set unreviewed."""
