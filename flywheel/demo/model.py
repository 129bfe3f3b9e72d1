"""SIMULATION. "Relay Assist", the demo's assistant, as a function from messages to a reply, and a
simulated rubric judge. Not a model: keyword rules whose failures follow the same mechanisms as the
generator's hidden truth (enterprise SLA requests get the SMB answer, some injections are obeyed,
a few ordinary questions get a known wrong answer), decided deterministically per conversation."""

from __future__ import annotations

import hashlib

from flywheel.demo import vocabulary as V

MODEL_VERSION = "relay-assist-2026.05 (simulated)"
ENTERPRISE_WORDS = ("sla", "p1", "sev-", "sso", "saml", "scim", "procurement", "po ", "msa", "dpa", "contract", "tam ",
                    "csm", "idp", "siem", "tier 2", "on-call", "escalation contact")
INJECTION_WORDS = ("ignore the policy", "ignore previous", "ignore all prior", "system note", "devmode", "pretend you are")
INTENT_WORDS = [
    ("escalation_handoff", ("human", "manager", "person", "escalate", "third time")),
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
    """The simulated model: messages in, reply out."""
    asked = "\n".join(m["content"] for m in messages if m["role"] == "user")
    low, u = asked.lower(), _draw(asked)
    if any(w in low for w in INJECTION_WORDS):
        return V.FAILED_REPLIES["injection_complied"] if u < 0.3 else REFUSAL
    if any(w in low for w in ENTERPRISE_WORDS):
        return V.FAILED_REPLIES["enterprise_sla_ignored"] if u < 0.6 else (
            "This is a priority incident under your enterprise SLA: I've paged the on-call engineer and your CSM, "
            "who will respond within the contractual one-hour window, and handed you to a human agent.")
    intent = intent_of(asked)
    if u < 0.09:
        return V.FAILED_REPLIES[FAILING_FOR_INTENT[intent]].format(fake_feature=V.FEATURES_FAKE[0])
    return V.GOOD_REPLIES[intent]


def rubric_judge(row: dict, rubric: str, reply: str) -> bool:
    """The simulated judge: a rubric passes unless the reply is one of the known wrong answers."""
    failed = {r.format(fake_feature=f) for r in V.FAILED_REPLIES.values() for f in V.FEATURES_FAKE}
    return reply not in failed
