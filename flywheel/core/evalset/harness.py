"""The eval set where tests run: promptfoo, Inspect AI and OpenAI Evals files from a version.

Each row's typed criterion becomes the harness's own assertion (README, "Run the eval set in your
harness", has the table). Every exported row carries `row_id` and `eval_version` in its metadata, so
the harness's results come back to the row they judge (flywheel.core.evalset.harness_results).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

HARNESSES = ("promptfoo", "inspect", "openai-evals")

# promptfoo renders assertion values with nunjucks: a value holding template syntax is kept literal.
_TEMPLATE_MARKS = ("{{", "}}", "{%", "%}", "{#", "#}")

# The regression runner's `equals`: whitespace collapsed, case folded.
_EQUALS_JS = ("String(output).split(/\\s+/).filter(Boolean).join(' ').toLowerCase() === "
              "String(context.vars.flywheel_expected).split(/\\s+/).filter(Boolean).join(' ').toLowerCase()")

PROMPT_FILE = "flywheel_prompt.json"
PROMPT = "{{ messages | dump }}\n"


@dataclass
class Exported:
    path: Path
    rows: int
    written: list[Path] = field(default_factory=list)  # every file written, the main one first
    unmapped: list[dict] = field(default_factory=list)  # rows the harness cannot check: {row_id, criterion, why}


def _literal(value: str) -> str:
    return f"{{% raw %}}{value}{{% endraw %}}" if any(m in value for m in _TEMPLATE_MARKS) else value


def _refusal_js() -> str:
    """flywheel's refusal check as a promptfoo javascript assertion. promptfoo's own `is-refusal` has
    another phrase list: on the demo's eval set it judged 4 of 34 rows differently from
    `flywheel regress` ("I can't act on instructions inside forwarded text ..." is no refusal to it),
    and the gate must not depend on which runner ran the rows."""
    from flywheel.core.evalset.regression import REFUSAL_PHRASES

    # Two lines: promptfoo runs a multi-line value as a function body (one line would be `return <it>`).
    return ("const low = String(output).toLowerCase().replace(/\u2019/g, \"'\");\n"
            f"return {json.dumps(list(REFUSAL_PHRASES))}.some(p => low.includes(p));")


def promptfoo_assertion(criterion_type: str, value: str | None) -> dict:
    """One criterion as a promptfoo assertion."""
    if criterion_type == "contains":
        return {"type": "icontains", "value": _literal(value)}
    if criterion_type == "not_contains":
        return {"type": "not-icontains", "value": _literal(value)}
    if criterion_type == "regex":
        return {"type": "regex", "value": _literal(value)}
    if criterion_type == "equals":  # promptfoo's `equals` is case-sensitive; ours is not
        return {"type": "javascript", "value": _EQUALS_JS}
    if criterion_type == "refusal":
        return {"type": "javascript", "value": _refusal_js()}
    if criterion_type == "rubric":
        return {"type": "llm-rubric", "value": _literal(value)}
    raise ValueError(f"unknown criterion type {criterion_type!r}")


def _metadata(row: dict) -> dict:
    return {"row_id": row["row_id"], "eval_version": int(row["eval_version"]), "taxonomy_code": row["taxonomy_code"],
            "adversarial": bool(row["adversarial"]), "criterion_type": row["criterion_type"],
            "criterion_value": row["criterion_value"]}


def promptfoo(rows: list[dict], path: Path, version: int, provider: str | None = None,
              label: str | None = None) -> Exported:
    """A promptfoo tests file (JSON Lines, one test a row), and beside it the chat prompt that hands the
    conversation to the provider and a ready promptfooconfig.yaml (written only when none is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            test = {"description": f"{row['row_id']} {row['taxonomy_code'] or ''}".strip(),
                    "vars": {"messages": row["input"], "flywheel_expected": row["criterion_value"] or ""},
                    "assert": [promptfoo_assertion(row["criterion_type"], row["criterion_value"])],
                    "metadata": _metadata(row)}
            fh.write(json.dumps(test, ensure_ascii=False) + "\n")
    prompt = path.parent / PROMPT_FILE
    prompt.write_text(PROMPT, encoding="utf-8")
    out = Exported(path, len(rows), [path, prompt])
    config = path.parent / "promptfooconfig.yaml"
    if not config.exists():
        config.write_text(_promptfoo_config(path.name, version, provider, label), encoding="utf-8")
        out.written.append(config)
    out.unmapped = [{"row_id": r["row_id"], "criterion": "rubric", "why": "llm-rubric needs a grader provider "
                     "(defaultTest.options.provider); without one promptfoo reports the row as an error"}
                    for r in rows if r["criterion_type"] == "rubric"]
    return out


def _promptfoo_config(tests: str, version: int, provider: str | None, label: str | None) -> str:
    provider = provider or "file://provider.py"
    label = json.dumps(label or "my-model")
    return f"""# Written by `flywheel evalset export --format promptfoo` for eval set v{version}.
# The provider answers each test's conversation (vars.messages, rendered by {PROMPT_FILE}); a Python
# provider's call_api(prompt, options, context) gets the messages as JSON in `prompt`.
description: flywheel eval set v{version}
prompts:
  - file://{PROMPT_FILE}
providers:
  - id: {provider}
    label: {label}   # becomes the model_version of the imported results
tests: file://{tests}
"""


# The regression runner's criteria, for Inspect's scorer: the same rules, in the task file itself so
# it runs where flywheel is not installed.
_INSPECT_TASK = '''"""Written by `flywheel evalset export --format inspect` for eval set v{version}.

    inspect eval {task} --model <provider/model> --log-format json
    FLYWHEEL_TARGET=mybot:reply python {task} [LOG_DIR]    # your own Python function as the model

The scorer applies flywheel's own criteria (contains, not_contains, regex, equals, refusal; a rubric
row is left unscored unless you add a grader), so `flywheel results import` reads the log back.
"""

import importlib
import os
import re
import sys
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import GenerateConfig, ModelAPI, ModelOutput, modelapi
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, scorer
from inspect_ai.solver import TaskState, generate

REFUSAL_PHRASES = {refusal!r}


def judge(kind, value, reply):
    text = reply or ""
    if kind == "contains":
        return value.casefold() in text.casefold()
    if kind == "not_contains":
        return value.casefold() not in text.casefold()
    if kind == "regex":
        return re.search(value, text) is not None
    if kind == "equals":
        return " ".join(text.split()).casefold() == " ".join(value.split()).casefold()
    if kind == "refusal":
        low = text.casefold().replace("\\u2019", "'")
        return any(p in low for p in REFUSAL_PHRASES)
    return None  # rubric: needs a grader


@scorer(metrics=[accuracy()])
def flywheel_criterion():
    async def score(state: TaskState, target: Target) -> Score:
        verdict = judge(state.metadata["criterion_type"], state.metadata.get("criterion_value"),
                        state.output.completion)
        if verdict is None:
            return None  # a rubric needs a grader: left unscored, and flywheel import says so
        return Score(value=CORRECT if verdict else INCORRECT, answer=state.output.completion)

    return score


@task
def flywheel_eval_set():
    return Task(dataset=json_dataset(str(Path(__file__).parent / "{dataset}")), solver=generate(),
                scorer=flywheel_criterion())


@modelapi(name="flywheel_target")
class FlywheelTarget(ModelAPI):
    """The function `flywheel regress --target` takes, as Inspect's model: FLYWHEEL_TARGET=module:function,
    a list of {{role, content}} in, the reply out."""

    def __init__(self, model_name, base_url=None, api_key=None, config=GenerateConfig(), **model_args):
        super().__init__(model_name, base_url, api_key, [], config)
        module, _, name = model_name.partition(":")
        sys.path.insert(0, os.getcwd())
        self.reply = getattr(importlib.import_module(module), name)

    async def generate(self, input, tools, tool_choice, config):
        messages = [{{"role": m.role, "content": m.text}} for m in input]
        return ModelOutput.from_content(model=self.model_name, content=self.reply(messages))


if __name__ == "__main__":
    # `inspect eval --model` resolves the model before it reads this file, so a model defined here runs
    # through Inspect's Python API. The log is JSON; a run that did not succeed exits 1.
    from inspect_ai import eval as inspect_eval

    logs = inspect_eval(flywheel_eval_set(), model=f"flywheel_target/{{os.environ['FLYWHEEL_TARGET']}}",
                        log_dir=sys.argv[1] if len(sys.argv) > 1 else "logs", log_format="json", display="none")
    sys.exit(0 if all(log.status == "success" for log in logs) else 1)
'''


def inspect(rows: list[dict], path: Path, version: int) -> Exported:
    """An Inspect AI dataset (JSON Lines: input as chat messages, target, id, metadata with the
    criterion) and beside it a ready task file whose scorer applies flywheel's criteria."""
    from flywheel.core.evalset.regression import REFUSAL_PHRASES

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"id": row["row_id"], "input": row["input"], "target": row["expected_behaviour"],
                                 "metadata": _metadata(row)}, ensure_ascii=False) + "\n")
    task = path.parent / "flywheel_task.py"
    task.write_text(_INSPECT_TASK.format(version=version, task=task.name, dataset=path.name,
                                         refusal=tuple(REFUSAL_PHRASES)), encoding="utf-8")
    out = Exported(path, len(rows), [path, task])
    out.unmapped = [{"row_id": r["row_id"], "criterion": "rubric", "why": "the task's scorer leaves rubric rows "
                     "unscored (no grader)"} for r in rows if r["criterion_type"] == "rubric"]
    return out


def openai_evals(rows: list[dict], path: Path, version: int) -> Exported:
    """OpenAI Evals samples ({"input": [...], "ideal": ...}) for the rows whose criterion maps: an
    `equals` row's value is the ideal answer (the Match eval), a `contains` row's the text the answer
    must hold (the Includes eval). The rest cannot be expressed there and are listed, not dropped silently."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = Exported(path, 0, [path])
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            kind = row["criterion_type"]
            if kind in ("equals", "contains"):
                fh.write(json.dumps({"input": row["input"], "ideal": row["criterion_value"],
                                     "metadata": _metadata(row)}, ensure_ascii=False) + "\n")
                out.rows += 1
            else:
                out.unmapped.append({"row_id": row["row_id"], "criterion": kind, "why": {
                    "not_contains": "no OpenAI Evals template checks that a text is absent",
                    "regex": "no OpenAI Evals template matches a regular expression",
                    "refusal": "no OpenAI Evals template checks a refusal",
                    "rubric": "needs a model-graded eval spec of its own"}.get(kind, "not expressible")})
    return out
