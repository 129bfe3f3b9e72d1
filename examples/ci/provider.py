"""promptfoo's provider for the CI example: hands each test's conversation to your model.

Set FLYWHEEL_TARGET to `module:function`, the same function `flywheel regress --target` takes: a list
of {role, content} in, the reply out. The prompt file flywheel exports renders the conversation as
JSON, which arrives here as `prompt`.
"""

import importlib
import json
import os
import sys

sys.path.insert(0, os.getcwd())  # `mybot:reply` finds mybot.py in the folder promptfoo runs from
_module, _, _name = os.environ.get("FLYWHEEL_TARGET", "mybot:reply").partition(":")
reply = getattr(importlib.import_module(_module), _name)


def call_api(prompt, options, context):
    return {"output": reply(json.loads(prompt))}
