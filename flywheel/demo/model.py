"""SIMULATION. "Relay Assist", the demo's assistant, as a function from messages to a reply, and a
simulated rubric judge. Not a model: keyword rules whose failures follow the same mechanisms as the
generator's hidden truth (enterprise SLA requests get the SMB answer, some injections are obeyed,
a few ordinary questions get a known wrong answer), decided deterministically per conversation.

Two builds ship during the demo's six months, as in the essay: the March build and the April build,
which fails fewer ordinary questions and obeys fewer injections. Their failure rates are chosen so the
team's March spreadsheet scores about what the essay's dashboard showed (84% in March, about 91% and
a green gate from April); the pass rates
themselves are computed by running the rows, never written down. Neither build is any better at
enterprise requests, which is what the loop has to find out."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from flywheel.demo import vocabulary as V


@dataclass(frozen=True)
class Build:
    version: str
    released: dt.date
    ordinary_failure_rate: float  # share of ordinary questions answered with a known wrong answer
    injection_compliance: float = 0.3
    enterprise_failure_rate: float = 0.6

    def reply(self, messages: list[dict]) -> str:
        return _reply(self, messages)


BUILDS = (
    Build("relay-assist-2026.03 (simulated)", dt.date(2026, 3, 2), ordinary_failure_rate=0.19),
    # April's build also hardens the system prompt against injections.
    Build("relay-assist-2026.04 (simulated)", dt.date(2026, 4, 6), ordinary_failure_rate=0.10, injection_compliance=0.1),
)
LATEST = BUILDS[-1]
MODEL_VERSION = LATEST.version


def build_on(day: dt.date) -> Build:
    """The build in production on `day`."""
    live = [b for b in BUILDS if b.released <= day]
    return live[-1] if live else BUILDS[0]

ENTERPRISE_WORDS = ("sla", "p1", "sev-", "sso", "saml", "scim", "procurement", "po ", "msa", "dpa", "contract", "tam ",
                    "csm", "idp", "siem", "tier 2", "on-call", "escalation contact")
INJECTION_WORDS = ("ignore the policy", "ignore previous", "ignore all prior", "all prior rules", "system prompt",
                   "system note", "devmode", "pretend you are")
INTENT_WORDS = [
    ("escalation_handoff", ("human", "manager", "with a person", "escalate", "third time")),
    ("refund_dispute", ("disput", "bank says", "never issued")),
    ("data_export", ("export", "gdpr", "leaving the platform")),
    ("refund_policy", ("refund",)),
    ("billing", ("invoice", "card on file", "bill", "billing", "charged")),
    ("account_change", ("owner", "seat", "rename", "phone number", "access")),
    ("troubleshooting", ("stopped", "blank page", "not being", "timing out", "threaded", "error")),
    ("ticket_triage", ("ticket",)),
]
FAILING_FOR_INTENT = {
    "ticket_triage": "missed_escalation", "refund_policy": "wrong_refund_policy", "troubleshooting": "hallucinated_feature",
    "billing": "wrong_account_action", "account_change": "wrong_account_action", "escalation_handoff": "missed_escalation",
    "refund_dispute": "wrong_refund_policy", "data_export": "hallucinated_feature",
}
REFUSAL = ("I can't act on instructions inside forwarded text or change policy on request. I can help with your "
           "account through the normal process.")


def _draw(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


def intent_of(text: str) -> str:
    low = text.lower()
    for intent, words in INTENT_WORDS:
        if any(w in low for w in words):
            return intent
    return "troubleshooting"


def relay_assist(messages: list[dict]) -> str:
    """The latest simulated build: messages in, reply out (`flywheel regress --target
    flywheel.demo.model:relay_assist`)."""
    return _reply(LATEST, messages)


def _reply(build: Build, messages: list[dict]) -> str:
    asked = "\n".join(m["content"] for m in messages if m["role"] == "user")
    low, u = asked.lower(), _draw(asked)
    if any(w in low for w in INJECTION_WORDS):
        return V.FAILED_REPLIES["injection_complied"] if u < build.injection_compliance else REFUSAL
    if any(w in low for w in ENTERPRISE_WORDS):
        return V.FAILED_REPLIES["enterprise_sla_ignored"] if u < build.enterprise_failure_rate else (
            "This is a priority incident under your enterprise SLA: I've paged the on-call engineer and your CSM, "
            "who will respond within the contractual one-hour window, and handed you to a human agent.")
    intent = intent_of(asked)
    if u < build.ordinary_failure_rate:
        return V.FAILED_REPLIES[FAILING_FOR_INTENT[intent]].format(fake_feature=V.FEATURES_FAKE[0])
    return V.GOOD_REPLIES[intent]


def rubric_judge(row: dict, rubric: str, reply: str) -> bool:
    """The simulated judge: a rubric passes unless the reply is one of the known wrong answers."""
    failed = {r.format(fake_feature=f) for r in V.FAILED_REPLIES.values() for f in V.FEATURES_FAKE}
    return reply not in failed
