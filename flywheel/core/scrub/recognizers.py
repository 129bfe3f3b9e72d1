"""The regex layer's own recognizers, for what help-desk traces carry and Presidio does not know.

Each is a Presidio PatternRecognizer, so it runs inside the same analyzer pass as Presidio's own
pattern recognizers (email, phone, credit card, IBAN, IP, SSN, URL...).
"""

from __future__ import annotations

from presidio_analyzer import Pattern, PatternRecognizer

# entity type -> [(pattern name, regex, score)]
HELPDESK_PATTERNS: dict[str, list[tuple[str, str, float]]] = {
    "TICKET_ID": [
        ("prefixed ticket", r"(?i)\b(?:TCK|TKT|TICKET|INC|CASE|REQ|SR|ZD)[-_# ]?\d{4,10}\b", 0.85),
        ("hash ticket", r"(?<![\w&])#\d{4,10}\b", 0.6),
    ],
    "ACCOUNT_ID": [
        ("prefixed account", r"(?i)\b(?:ACC|ACCT|ACCOUNT)[-_#]?\d{4,12}\b", 0.85),
        ("customer object id", r"\b(?:cus|cust|acct)_[A-Za-z0-9]{6,24}\b", 0.85),
    ],
    "ORDER_ID": [("prefixed order", r"(?i)\bORD(?:ER)?[-_#]?\d{4,12}\b", 0.85)],
    "INVOICE_ID": [("prefixed invoice", r"(?i)\bINV[-_#]?(?:\d{2,4}[-_])?\d{3,10}\b", 0.85)],
    "PO_NUMBER": [("purchase order", r"\bP\.?O\.?(?:\s?(?:#|No\.?|number))?\s?[-:]?\s?\d{5,12}\b", 0.85)],
    "API_KEY": [
        ("stripe-style key", r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}\b", 0.95),
        ("aws access key", r"\bAKIA[0-9A-Z]{16}\b", 0.95),
        ("github token", r"\bgh[pousr]_[A-Za-z0-9]{20,}\b", 0.95),
        ("slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", 0.95),
        ("jwt", r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]{5,}\b", 0.95),
        ("bearer token", r"(?i)(?<=bearer )[A-Za-z0-9._~+/-]{16,}=*", 0.9),
    ],
}


def helpdesk_recognizers() -> list[PatternRecognizer]:
    return [
        PatternRecognizer(
            supported_entity=entity,
            name=f"flywheel_{entity.lower()}",
            patterns=[Pattern(name, regex, score) for name, regex, score in patterns],
        )
        for entity, patterns in HELPDESK_PATTERNS.items()
    ]


def all_recognizers() -> list[PatternRecognizer]:
    """Everything this module adds to Presidio's predefined recognizers."""
    return helpdesk_recognizers()
