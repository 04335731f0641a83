"""May a data subject's data of a type be erased on request (GDPR art. 17)? Pure: the answer
follows from the lawful basis (art. 6(1)) that the type's contract records.

Art. 17(3)(b): erasure does not apply where processing is necessary "for compliance with a
legal obligation ... or for the performance of a task carried out in the public interest or in
the exercise of official authority". So `legal-obligation` (local taxes: Codul de procedură
fiscală keeps them ten years) and `public-task` are exempt, and the request is answered with
that reason. For the other bases erasure applies once its art. 17(1) ground holds, which the
DPO establishes (the answer names the ground).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErasureAnswer:
    allowed: bool
    lawful_basis: str
    article: str
    reason: str


# lawful basis -> (erasure allowed, article, reason). Art. 6(1) a-f.
_BY_BASIS: dict[str, tuple[bool, str, str]] = {
    "consent": (True, "17(1)(b)",
                "processed on consent (art. 6(1)(a)): erased when the subject withdraws it"),
    "contract": (True, "17(1)(a)",
                 "processed for a contract (art. 6(1)(b)): erased once no longer necessary "
                 "for it"),
    "vital-interests": (True, "17(1)(a)",
                        "processed in vital interests (art. 6(1)(d)): erased once no longer "
                        "necessary"),
    "legitimate-interests": (True, "17(1)(c)",
                             "processed in legitimate interests (art. 6(1)(f)): erased on "
                             "objection unless overriding legitimate grounds exist (art. 21(1))"),
    "legal-obligation": (False, "17(3)(b)",
                         "kept under a legal obligation (art. 6(1)(c)): exempt from erasure "
                         "while the obligation lasts (art. 17(3)(b))"),
    "public-task": (False, "17(3)(b)",
                    "processed for a task in the public interest or in the exercise of official "
                    "authority (art. 6(1)(e)): exempt from erasure (art. 17(3)(b)); the subject "
                    "may object under art. 21(1)"),
}


def erasure(lawful_basis: str) -> ErasureAnswer:
    """The answer to an erasure request for data held under `lawful_basis`."""
    found = _BY_BASIS.get(lawful_basis)
    if found is None:
        return ErasureAnswer(False, lawful_basis, "6(1)",
                             f"unknown lawful basis {lawful_basis!r}: the DPO must decide")
    allowed, article, reason = found
    return ErasureAnswer(allowed, lawful_basis, article, reason)


def erasure_allowed(lawful_basis: str) -> bool:
    return erasure(lawful_basis).allowed


def portability_applies(lawful_basis: str) -> bool:
    """Art. 20(1)(a): the right to data portability covers consent and contract only."""
    return lawful_basis in ("consent", "contract")
