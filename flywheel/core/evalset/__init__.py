"""Station 4, the versioned eval set: fold-in, versions and exports, regression results, the gate, retirement.
Feeds `eval/eval_rows`, `eval/versions`, `eval/retirement`, `regression/results` and `regression/pass_rates`.
"""
